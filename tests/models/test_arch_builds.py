"""Random-weight builds of the published architectures (rft.models.arch): shapes and parameter
counts on the meta device (nothing of real size is materialised), tokenizer ids, sharded weights,
and a whole build of a scaled-down spec that transformers loads.

Run: `.venv/bin/python -m pytest tests/models/test_arch_builds.py -q`.
"""

from __future__ import annotations

import json

import pytest
import torch

from rft.models import arch
from rft.models.loading import ModelNotFoundError, resolve_model_path

# Parameter counts of the released checkpoints (tied embeddings once).
PUBLISHED_PARAMETERS = {"qwen2vl_2b": 2_208_985_600, "qwen25vl_3b": 3_754_622_976, "qwen2vl_7b": 8_291_375_616, "qwen25vl_7b": 8_292_166_656}


@pytest.mark.parametrize("name", arch.NAMES)
def test_meta_device_parameter_count_matches_the_release(name):
    config = arch.published_config(name)
    assert arch.parameter_count(config) == PUBLISHED_PARAMETERS[name]


def test_two_billion_and_three_billion_are_the_sizes_the_issue_names():
    assert round(PUBLISHED_PARAMETERS["qwen2vl_2b"] / 1e9, 1) == 2.2
    assert round(PUBLISHED_PARAMETERS["qwen25vl_3b"] / 1e9, 2) == 3.75


@pytest.mark.parametrize("name", arch.NAMES)
def test_published_shapes_are_consistent(name):
    config = arch.published_config(name)
    text, vision = config.text_config, config.vision_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert head_dim == 128
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert text.vocab_size in (151936, 152064)
    assert (vision.depth, vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) == (32, 14, 2, 2)
    assert config.image_token_id == 151655 and config.video_token_id == 151656
    assert config.vision_start_token_id == 151652 and config.vision_end_token_id == 151653
    assert config.tie_word_embeddings == name.endswith(("2b", "3b"))


def test_two_b_spec_values():
    spec = arch.PUBLISHED["qwen2vl_2b"]
    text = spec.text
    assert (text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]) == (1536, 8960, 28)
    assert (text["num_attention_heads"], text["num_key_value_heads"]) == (12, 2)
    assert (spec.vision["embed_dim"], spec.vision["hidden_size"], spec.vision["num_heads"]) == (1280, 1536, 16)
    assert (spec.min_pixels, spec.max_pixels) == (3136, 12845056)


def test_three_b_spec_values():
    spec = arch.PUBLISHED["qwen25vl_3b"]
    text = spec.text
    assert (text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]) == (2048, 11008, 36)
    assert (text["num_attention_heads"], text["num_key_value_heads"]) == (16, 2)
    vision = spec.vision
    assert (vision["hidden_size"], vision["intermediate_size"], vision["out_hidden_size"]) == (1280, 3420, 2048)
    assert (vision["window_size"], vision["fullatt_block_indexes"]) == (112, [7, 15, 23, 31])


def test_tokenizer_puts_special_tokens_at_the_published_ids():
    tokenizer = arch.build_arch_tokenizer()
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|video_pad|>", "<|file_sep|>"])
    assert ids == [151643, 151644, 151645, 151652, 151655, 151656, 151664]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (151645, 151643)
    assert len(tokenizer) <= 151936
    text = "How many circles? <think>3</think><answer>3</answer>"
    encoded = tokenizer(text).input_ids
    assert max(encoded) < 151936 and tokenizer.decode(encoded) == text
    assert all(i < 2048 or i >= 151643 for i in encoded)  # filler entries are never produced


def test_shards_stay_under_the_limit():
    shapes = {"a": (10, 10), "b": (30, 10), "c": (5,), "d": (100, 10)}
    shards = arch.plan_shards(shapes, shard_bytes=800)
    assert shards == [["a", "b"], ["c"], ["d"]]
    assert [n for s in shards for n in s] == list(shapes)


def test_random_tensors_are_reproducible_per_name():
    a = arch.random_tensor("model.layers.0.mlp.up_proj.weight", (64, 32), seed=0)
    assert a.dtype == torch.bfloat16 and torch.equal(a, arch.random_tensor("model.layers.0.mlp.up_proj.weight", (64, 32), seed=0))
    assert not torch.equal(a, arch.random_tensor("model.layers.0.mlp.up_proj.weight", (64, 32), seed=1))
    assert abs(float(a.float().std()) - arch.INIT_STD) < 0.005
    assert torch.equal(arch.random_tensor("model.norm.weight", (8,), 0), torch.ones(8, dtype=torch.bfloat16))
    assert torch.equal(arch.random_tensor("visual.blocks.0.attn.qkv.bias", (8,), 0), torch.zeros(8, dtype=torch.bfloat16))


@pytest.fixture
def mini_spec(monkeypatch):
    """A scaled-down spec with the real vocabulary and special ids, so a whole build is cheap."""
    spec = arch.ArchSpec(
        "rft/mini",
        "qwen2vl",
        {
            **arch.PUBLISHED["qwen2vl_2b"].text,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "mrope_section": [4, 6, 6],
        },
        {**arch.PUBLISHED["qwen2vl_2b"].vision, "depth": 1, "embed_dim": 64, "num_heads": 2, "hidden_size": 128},
        3136,
        50176,
    )
    monkeypatch.setitem(arch.PUBLISHED, "mini", spec)
    monkeypatch.setattr(arch, "SHARD_BYTES", 8 << 20)  # several shards
    return spec


def test_a_whole_build_loads_in_transformers(mini_spec, tmp_path, make_image):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = arch.build_arch_model("mini", tmp_path / "mini")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    info = json.loads((out / arch.BUILD_INFO).read_text())
    # vLLM picks its model class and runner from this; a build without it is refused as "not generative"
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Qwen2VLForConditionalGeneration"]
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    assert model.config.text_config.vocab_size == 151936
    norm = model.model.language_model.norm.weight
    assert torch.equal(norm, torch.ones_like(norm))  # loaded from the files, not re-initialised
    processor = AutoProcessor.from_pretrained(out)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[make_image(112, 112)], return_tensors="pt")
    assert int((inputs["input_ids"] == 151655).sum()) == 16  # 112 x 112 px -> 4 x 4 merged tokens
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == 151936 and torch.isfinite(logits).all()


def test_unknown_arch_names_fail_in_one_line():
    with pytest.raises(ModelNotFoundError, match=r"^model.path=arch:nope: unknown architecture 'nope'; expected one of qwen2vl_2b"):
        resolve_model_path("arch:nope")


def test_model_qwen2vl_2b_composes_with_the_build_as_path():
    from tests.rft_test_helpers import compose

    cfg = compose(["model=qwen2vl_2b", "model.path=arch:qwen2vl_2b"])
    assert cfg.model.path == "arch:qwen2vl_2b" and cfg.model.arch == "qwen2vl"
    assert arch.name_of_hub_id("Qwen/Qwen2-VL-2B-Instruct") == "qwen2vl_2b"
