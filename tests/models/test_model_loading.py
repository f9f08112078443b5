"""rft.models.loading: resolving model.path, loading model/processor, checkpoint names, HF generate.

Run: `.venv/bin/python -m pytest tests/models/test_model_loading.py -q`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rft.models import loading, tiny
from rft.models.loading import ModelNotFoundError, checkpoint_state_dict, load_model, load_processor, resolve_model_path

BUDGET = (3136, 50176)  # conf/model/tiny_*.yaml


def _messages(n_images: int, text: str = "How many red squares?"):
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


# ------------------------------------------------------------------------------------- resolving


def test_tiny_names_resolve_to_the_cached_builds(tiny_dirs):
    assert resolve_model_path("tiny:qwen2vl") == str(tiny_dirs["qwen2vl"])
    assert resolve_model_path("tiny:qwen25vl:tiny") == str(tiny_dirs["qwen25vl"])
    assert resolve_model_path("tiny", arch_hint="qwen25vl") == str(tiny_dirs["qwen25vl"])
    assert resolve_model_path(str(tiny_dirs["qwen2vl"])) == str(tiny_dirs["qwen2vl"])
    assert loading.arch_of("tiny:qwen25vl") == "qwen25vl"


def test_bad_tiny_name_is_a_model_not_found_error():
    with pytest.raises(ModelNotFoundError, match=r"^model\.path=tiny:qwen2vl:huge: "):
        resolve_model_path("tiny:qwen2vl:huge")


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("kind", ["missing", "no-config"])
def test_local_folder_without_a_model_names_the_folder(tmp_path, kind):
    folder = tmp_path / "Qwen2-VL-2B-Instruct"
    if kind == "no-config":
        folder.mkdir()
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path(str(folder), arch_hint="qwen2vl")
    message = _one_line(err)
    assert message.startswith(f"model.path={folder}: folder {folder} ")
    assert "no config.json" in message if kind == "no-config" else "does not exist" in message
    assert "model.path=/path/to/Qwen2-VL-2B-Instruct" in message


def test_unknown_hub_id_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path("Qwen/Qwen2.5-VL-3B-Instruct", arch_hint="qwen25vl")
    message = _one_line(err)
    assert message.startswith("model.path=Qwen/Qwen2.5-VL-3B-Instruct: ")
    assert "HF_HUB_OFFLINE" in message and "model.path=/path/to/Qwen2.5-VL-3B-Instruct" in message


def test_hub_id_in_the_local_cache_resolves_offline(monkeypatch, tmp_path, tiny_dirs):
    repo = tmp_path / "models--Qwen--Qwen2-VL-2B-Instruct"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "config.json").write_bytes((tiny_dirs["qwen2vl"] / "config.json").read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert resolve_model_path("Qwen/Qwen2-VL-2B-Instruct") == str(snapshot)


def test_hub_id_unreachable_or_reachable(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))

    def unreachable(url, timeout=None, **kw):
        assert timeout == loading.HUB_TIMEOUT_S
        raise ConnectionError("no route")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", unreachable)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path("someone/Some-VL-Model")
    message = _one_line(err)
    assert message.startswith("model.path=someone/Some-VL-Model: ") and "unreachable" in message
    assert "model.path=/path/to/Some-VL-Model" in message

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url, timeout=None, **kw: object())
    assert resolve_model_path("someone/Some-VL-Model") == "someone/Some-VL-Model"


# ------------------------------------------------------------------------------------- loading


def test_load_model_options(tiny_dirs):
    model = load_model(str(tiny_dirs["qwen2vl"]), dtype="bfloat16", freeze_vision=True, gradient_checkpointing=True)
    assert model.dtype == torch.bfloat16
    assert model.is_gradient_checkpointing
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("model.visual.") for n in frozen)
    assert len(frozen) == len(list(model.model.visual.parameters()))
    auto = load_model("tiny:qwen2vl", dtype="auto", attn_implementation="eager")
    assert auto.dtype == loading.resolve_dtype("auto") and not auto.is_gradient_checkpointing


def test_auto_dtype_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(loading, "native_bf16", lambda: True)
    assert loading.resolve_dtype("auto") == torch.bfloat16
    monkeypatch.setattr(loading, "native_bf16", lambda: False)
    assert loading.resolve_dtype("auto") == torch.float32
    assert loading.resolve_dtype("bfloat16") == torch.bfloat16  # an explicit choice stands
    with pytest.raises(ValueError, match="model.dtype=int8"):
        loading.resolve_dtype("int8")


def test_gradient_checkpointing_by_size_unless_set():
    small, real = 44_000_000, 2_200_000_000
    assert not loading.wants_checkpointing(None, small) and loading.wants_checkpointing(None, real)
    assert loading.wants_checkpointing(True, small) and not loading.wants_checkpointing(False, real)


def test_load_processor_applies_the_pixel_budget(tiny_dirs, make_image):
    processor = load_processor(str(tiny_dirs["qwen2vl"]), *BUDGET)
    assert loading.pixel_budget(processor) == BUDGET
    assert processor.video_processor.size["longest_edge"] == BUDGET[1]
    grid = processor.image_processor(images=[make_image(448, 448)], return_tensors="pt")["image_grid_thw"]
    assert grid.tolist() == [[1, 16, 16]]  # 448x448 -> 224x224 = 50176 pixels, 16x16 patches of 14
    default = load_processor(str(tiny_dirs["qwen2vl"]))
    assert loading.pixel_budget(default) == (tiny.DEFAULT_MIN_PIXELS, tiny.DEFAULT_MAX_PIXELS)


def test_load_processor_overrides_a_legacy_pixel_config(tiny_dirs, tmp_path):
    """Checkpoints from the hub store min_pixels/max_pixels, which win over `size` unless overridden."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    for f in tiny_dirs["qwen2vl"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "processor_config.json").read_text())
    for sub in ("image_processor", "video_processor"):
        config[sub].update(min_pixels=3136, max_pixels=12845056, size={"min_pixels": 3136, "max_pixels": 12845056})
    (folder / "processor_config.json").write_text(json.dumps(config))
    assert loading.pixel_budget(load_processor(str(folder))) == (3136, 12845056)
    assert loading.pixel_budget(load_processor(str(folder), *BUDGET)) == BUDGET


def test_vllm_kwargs_carry_the_same_budget():
    assert loading.vllm_mm_processor_kwargs(*BUDGET) == {"min_pixels": 3136, "max_pixels": 50176}


@pytest.mark.parametrize("arch", ["qwen2vl", "qwen25vl"])
def test_hf_generates_with_images(arch, tiny_dirs, make_image):
    model = load_model(f"tiny:{arch}")
    processor = load_processor(f"tiny:{arch}", *BUDGET)
    images = [make_image(448, 336), make_image(224, 224, color=(30, 30, 220))]
    for n in (1, 2):
        text = processor.apply_chat_template(_messages(n), add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=images[:n], return_tensors="pt")
        assert inputs["image_grid_thw"].shape == (n, 3)
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        assert 1 <= len(new) <= 8
        assert isinstance(processor.decode(new, skip_special_tokens=True), str)


# ------------------------------------------------------------------------------------- checkpoint names


@pytest.mark.parametrize("arch", ["qwen2vl", "qwen25vl"])
def test_checkpoint_state_dict_equals_save_pretrained(arch, tmp_path):
    from safetensors.torch import load_file

    model = load_model(f"tiny:{arch}")
    names = checkpoint_state_dict(model)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert sorted(names) == sorted(saved)
    assert all(torch.equal(names[k], saved[k]) for k in saved)
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names
    assert any(k.startswith("visual.") for k in names)
    assert not any(k.startswith(("model.language_model.", "model.visual.")) for k in names)
    # the names of the files the builder wrote, too (what vLLM loads)
    built = load_file(Path(resolve_model_path(f"tiny:{arch}")) / "model.safetensors")
    assert sorted(built) == sorted(names)
    # a gathered copy (no shared storage, e.g. from ZeRO-3) gives the same names
    copies = {k: v.clone() for k, v in model.state_dict().items()}
    assert sorted(checkpoint_state_dict(model, copies)) == sorted(names)


def test_checkpoint_state_dict_keeps_an_untied_lm_head(tmp_path):
    from safetensors.torch import load_file

    tokenizer = tiny.build_tokenizer()
    config = tiny.build_config("qwen2vl", tiny.SIZES["tiny"], tokenizer)
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = False
    model = tiny.build_weights("qwen2vl", config, seed=0)
    names = checkpoint_state_dict(model)
    model.save_pretrained(tmp_path)
    assert "lm_head.weight" in names
    assert sorted(names) == sorted(load_file(tmp_path / "model.safetensors"))


def test_write_checkpoint_folder_is_a_loadable_checkpoint(tmp_path, tiny_dirs):
    model = load_model("tiny:qwen25vl")
    with torch.no_grad():
        model.model.language_model.norm.weight.add_(1.0)
    out = loading.write_checkpoint_folder(checkpoint_state_dict(model), tmp_path / "sync", tiny_dirs["qwen25vl"])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in tiny_dirs["qwen25vl"].iterdir())  # nothing partial left
    again = load_model(str(out))
    assert torch.equal(again.model.language_model.norm.weight, model.model.language_model.norm.weight)
    assert loading.pixel_budget(load_processor(str(out))) == loading.pixel_budget(load_processor("tiny:qwen25vl"))
