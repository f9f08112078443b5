"""LoRA pieces without Ray, vLLM or DeepSpeed: which modules get adapters, the reference with
adapters off, the adapter folder and its weights, merging (`python -m rft.models.merge`) and the
LoRA settings' checks. The end-to-end runs are in tests/weights/test_lora_sync.py."""

from __future__ import annotations

import pytest
import torch
from rft_test_helpers import compose

from rft.errors import ConfigError
from rft.learner.lora import LoRASettings, adapter_config, adapter_params, adapters_off, base_model, gathered_state, wrap
from rft.models.adapter import adapter_bytes, adapter_rank, checkpoint_model, is_adapter_folder, load_adapter_weights, write_adapter
from rft.models.loading import load_model, resolve_model_path
from rft.models.merge import main as merge_main
from rft.weights.modes import WeightSync, resolve_mode

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RANK = 8


def _lora(path: str):
    model = wrap(load_model(path), LoRASettings(RANK, 16.0, 0.0, TARGETS))
    with torch.no_grad():  # PEFT starts B at zero (adapter = identity); move it
        gen = torch.Generator().manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model


@pytest.fixture(scope="module", params=["qwen2vl", "qwen25vl"])
def tiny_path(request) -> str:
    return str(resolve_model_path(f"tiny:{request.param}"))


@pytest.fixture(scope="module")
def qwen2vl_path() -> str:
    return str(resolve_model_path("tiny:qwen2vl"))


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[1, 5, 9, 30, 44, 2, 17, 80]])


def test_adapters_on_language_linears_only(tiny_path):
    model = _lora(tiny_path)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    config = base_model(model).config.text_config
    per_layer = sum(RANK * (i + o) for i, o in _linear_shapes(base_model(model), config))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == per_layer * config.num_hidden_layers
    assert trainable and all("language_model" in name and "lora_" in name for name in trainable)
    assert not any("visual" in name for name, _ in model.named_modules() if "lora_" in name)  # Qwen2.5-VL's vision MLP too
    assert hasattr(base_model(model).model, "get_rope_index")  # what the learner's feature cache calls


def _linear_shapes(model, config):
    layer = model.model.language_model.layers[0]
    mods = [
        layer.self_attn.q_proj,
        layer.self_attn.k_proj,
        layer.self_attn.v_proj,
        layer.self_attn.o_proj,
        layer.mlp.gate_proj,
        layer.mlp.up_proj,
        layer.mlp.down_proj,
    ]
    return [(m.base_layer.in_features, m.base_layer.out_features) for m in mods]


def test_reference_is_the_base_with_adapters_off(qwen2vl_path):
    base = load_model(qwen2vl_path)
    model = _lora(qwen2vl_path)
    with adapters_off(model):
        assert torch.equal(_logits(model, IDS), _logits(base, IDS))
    assert (_logits(model, IDS) - _logits(base, IDS)).abs().max() > 1e-3


def test_adapter_folder_applies_and_merges_like_the_learner(qwen2vl_path, tmp_path, capsys):
    model = _lora(qwen2vl_path)
    state = gathered_state(model, zero_stage=0, rank=0)
    assert set(state) == set(adapter_params(model)) and all(".default." not in name for name in state)
    size = write_adapter(state, adapter_config(model), tmp_path / "step_1" / "adapter")
    folder = tmp_path / "step_1" / "adapter"
    assert is_adapter_folder(folder) and adapter_rank(folder) == RANK
    assert size == adapter_bytes(folder) and size < sum(t.numel() * 4 for t in state.values()) + 20_000
    assert gathered_state(model, zero_stage=0, rank=1) is None  # only rank 0 holds it
    expected = _logits(model, IDS)
    # applied to a fresh base (the HF rollout engine), then replaced in place by a second version
    applied = load_adapter_weights(load_model(qwen2vl_path), folder)
    assert torch.allclose(_logits(applied, IDS), expected, atol=1e-5)
    assert load_adapter_weights(applied, folder) is applied
    # merged into a plain HF model: the CLI, and a checkpoint folder's model for eval
    assert merge_main([str(tmp_path / "step_1"), "--out", str(tmp_path / "merged")]) == 0
    from transformers import AutoModelForImageTextToText

    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged")
    assert torch.allclose(_logits(merged, IDS), expected, atol=1e-4)
    assert (tmp_path / "merged" / "preprocessor_config.json").is_file() or (tmp_path / "merged" / "processor_config.json").is_file()
    assert checkpoint_model(tmp_path / "step_1") == tmp_path / "step_1" / "hf"
    assert merge_main([str(tmp_path / "merged"), "--out", str(tmp_path / "x")]) == 2
    assert "holds no LoRA adapter" in capsys.readouterr().err


def test_targets_that_match_nothing_are_refused(qwen2vl_path):
    with pytest.raises(ValueError, match="match no language-model linear"):
        wrap(load_model(qwen2vl_path), LoRASettings(RANK, 16.0, 0.0, ("no_such_proj",)))


def test_lora_settings_are_checked():
    assert compose(["learner.lora.rank=8"]).learner.lora.target_modules == list(TARGETS)
    with pytest.raises(ConfigError, match="learner.lora.target_modules"):
        compose(["learner.lora.rank=8", "learner.lora.target_modules=[]"])
    with pytest.raises(ConfigError, match="learner.lora.rank"):
        compose(["learner.lora.rank=1000"])
    with pytest.raises(ConfigError, match="rollout.weight_sync: nccl loads model weights only"):
        compose(["learner.lora.rank=8", "rollout.weight_sync=nccl", "rollout.gpus_per_worker=1", "learner.gpus_per_worker=1"])
    gpus = ["rollout.gpus_per_worker=1", "learner.gpus_per_worker=1", "learner.lora.rank=8"]
    assert resolve_mode(compose(gpus)) == WeightSync.gloo  # the adapter streams over gloo on GPUs too


def test_engine_serves_ranks_vllm_offers():
    from rft.rollout.vllm_engine import lora_options

    assert lora_options(0) == {}
    assert lora_options(8)["max_lora_rank"] == 8 and lora_options(9)["max_lora_rank"] == 16
    assert lora_options(4) == {"enable_lora": True, "max_lora_rank": 8, "max_loras": 1}
