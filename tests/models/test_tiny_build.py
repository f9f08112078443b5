"""The tiny-model builder (rft.models.tiny): determinism, sizes, tokenizer, chat template, cache.

Run: `.venv/bin/python -m pytest tests/models/test_tiny_build.py -q`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rft.models import tiny
from rft.models.vocab import REASONING_TAGS, TRANCE_FUNCTIONS


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("arch", tiny.ARCHS)
def test_same_seed_gives_identical_files(arch, tiny_dirs, tmp_path):
    """A second build, by the CLI in another process (other hash seed), is byte-identical."""
    again = tmp_path / "again"
    cli = [sys.executable, "-m", "rft.models.tiny", "--arch", arch, "--out", str(again), "--seed", "0"]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"built {arch}-tiny (seed 0)" in done.stdout
    first, second = _files(tiny_dirs[arch]), _files(again)
    assert sorted(first) == sorted(second)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert first[name] == second[name], name
    assert first == second


def test_other_seed_gives_other_weights(tiny_dirs, tmp_path):
    other = tiny.build_tiny_model("qwen2vl", tmp_path / "seed1", seed=1)
    base = tiny_dirs["qwen2vl"]
    assert (other / "model.safetensors").read_bytes() != (base / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("arch", tiny.ARCHS)
@pytest.mark.parametrize(("size", "low", "high"), [("tiny", 0.4e6, 1.0e6), ("small", 4e6, 6.5e6), ("bench", 30e6, 60e6)])
def test_sizes_have_the_documented_parameter_counts(arch, size, low, high):
    tokenizer = tiny.build_tokenizer()
    config = tiny.build_config(arch, tiny.SIZES[size], tokenizer)
    with torch.device("meta"):
        model = tiny.build_weights(arch, config, seed=0)
    assert low <= tiny.parameter_count(model) <= high
    text = config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert head_dim >= 32  # vLLM's CPU attention rejects smaller heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert config.tie_word_embeddings


def test_tokenizer_vocabulary_and_special_ids(tiny_dirs):
    from transformers import AutoConfig, AutoTokenizer

    folder = tiny_dirs["qwen2vl"]
    tok = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    assert config.text_config.vocab_size == len(tok) <= tiny.MAX_VOCAB
    ids = {t: tok.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS}
    assert all(0 <= i < len(tok) for i in ids.values())
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert config.image_token_id == ids["<|image_pad|>"]
    assert config.vision_start_token_id == ids["<|vision_start|>"]
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [ids["<|im_end|>"], ids["<|endoftext|>"]]
    assert set(generation) <= {"bos_token_id", "eos_token_id", "pad_token_id", "transformers_version"}
    for tag in REASONING_TAGS + list(TRANCE_FUNCTIONS) + ["Position", "Confidence"]:
        assert len(tok.tokenize(tag)) <= 2, tag
    assert tok.tokenize("2024") == ["2", "0", "2", "4"]  # digits one by one, as Qwen2's
    text = '<think> 3 red cubes </think><answer>[{"Position": [1, 2, 3, 4], "Confidence": 0.9}]</answer>'
    assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_renders_images_and_generation_prompt(tiny_dirs):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dirs["qwen25vl"])
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}]},
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    vision = "<|vision_start|><|image_pad|><|vision_end|>"
    assert text == (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{vision}{vision}Same?<|im_end|>\n<|im_start|>assistant\n")
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<answer>1</answer>"},
    ]
    assert processor.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<answer>1</answer><|im_end|>\n"
    )


def test_ensure_tiny_model_builds_once_when_processes_race(tmp_path):
    code = "from rft.models.tiny import ensure_tiny_model; print(ensure_tiny_model('qwen2vl'))"
    env = {**os.environ, "RFT_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    paths = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(paths) == 1
    models = tmp_path / "models"
    built = [p for p in models.iterdir() if p.is_dir()]
    assert [p.name for p in built] == [Path(paths.pop()).name]  # no temporary folder left behind
    assert (built[0] / tiny.BUILD_INFO).is_file()


def test_unknown_arch_or_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="arch"):
        tiny.build_tiny_model("llava", tmp_path)
    with pytest.raises(ValueError, match="size"):
        tiny.ensure_tiny_model("qwen2vl", "huge")
