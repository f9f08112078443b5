"""Random-weight builds of the exact published Qwen2-VL / Qwen2.5-VL architectures.

    python -m rft.models.arch --name qwen2vl_2b [--out DIR] [--seed 0]
    model.path=arch:qwen2vl_2b          # built into RFT_CACHE on first use, then reused

Like `rft.models.tiny`, but with the shapes of the released checkpoints, so that memory, speed
and the engines' behaviour at real size can be measured offline (no hub here). `PUBLISHED`
holds the published config values of each checkpoint's `config.json` and
`preprocessor_config.json` (layer counts, widths, heads / KV heads, vocabulary 151,936 or
152,064 with the special tokens at their published ids, rope/mrope sections, vision tower depth,
width, patch and merge sizes, window attention blocks, processor min/max pixels). Parameter
counts (tied embeddings counted once): qwen2vl_2b 2.21 B, qwen25vl_3b 3.75 B, qwen2vl_7b 8.29 B,
qwen25vl_7b 8.29 B; `tests/models/test_arch_builds.py` checks them on the meta device.

What differs from the real checkpoints, on purpose:
- weights are random (normal(0, 0.02) matrices, unit norms, zero biases), bf16, written as
  safetensors shards of at most `SHARD_BYTES` generated one shard at a time, so a build never
  holds the whole model (the 2B build peaks near one shard plus the largest tensor);
- the tokenizer is the tiny models' byte-level BPE (~2 k merges learned on `rft.models.vocab`),
  its vocabulary padded with unreachable filler entries up to id 151,642, then Qwen's 22 special
  tokens at their published ids (151,643 `<|endoftext|>` ... 151,655 `<|image_pad|>`,
  151,656 `<|video_pad|>` ... 151,664), then the reasoning tags. The embedding keeps the
  published padded size, so ids above the tokenizer decode to nothing, as with the real models.

`ensure_arch_model(name)` caches a build like `ensure_tiny_model` does (lock, temporary folder,
atomic rename) under `models_cache()/<name>-v<VERSION>-<recipe hash>`. `published_config(name)`
gives the transformers config without building anything (the memory planner reads it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rft.models.tiny import CHAT_TEMPLATE, _train_bpe, build_once
from rft.models.vocab import REASONING_TAGS, corpus
from rft.paths import models_cache

VERSION = 2  # 2: config.json names its architecture (vLLM refused v1 builds as not generative)
ARCHITECTURES = {"qwen2vl": "Qwen2VLForConditionalGeneration", "qwen25vl": "Qwen2_5_VLForConditionalGeneration"}
BUILD_INFO = "rft_build.json"
PREFIX = "arch:"
SHARD_BYTES = 1 << 30  # 1 GiB of bf16 per safetensors shard
INIT_STD = 0.02  # the published initializer_range

# Qwen2 / Qwen2.5 special tokens in id order from 151,643 (the published tokenizer_config.json).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]  # fmt: skip
FIRST_SPECIAL_ID = 151643
EOS, PAD = "<|im_end|>", "<|endoftext|>"


@dataclass(frozen=True)
class ArchSpec:
    """One published checkpoint: its hub id, arch and the published config values."""

    hub_id: str
    arch: str  # qwen2vl | qwen25vl
    text: dict[str, Any]
    vision: dict[str, Any]
    min_pixels: int
    max_pixels: int


_QWEN2_TEXT = {
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "mrope_section": [16, 24, 24],
    "hidden_act": "silu",
    "sliding_window": 32768,
    "use_sliding_window": False,
    "attention_dropout": 0.0,
}
_QWEN2VL_VISION = {
    "depth": 32,
    "embed_dim": 1280,
    "mlp_ratio": 4,
    "num_heads": 16,
    "in_chans": 3,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
}
_QWEN25VL_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "in_chans": 3,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
    "hidden_act": "silu",
}
# Published config values (config.json / preprocessor_config.json of each hub repository).
PUBLISHED: dict[str, ArchSpec] = {
    "qwen2vl_2b": ArchSpec(
        "Qwen/Qwen2-VL-2B-Instruct",
        "qwen2vl",
        {**_QWEN2_TEXT, "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768, "max_window_layers": 28, "tie_word_embeddings": True},
        {**_QWEN2VL_VISION, "hidden_size": 1536},
        3136,
        12845056,
    ),
    "qwen25vl_3b": ArchSpec(
        "Qwen/Qwen2.5-VL-3B-Instruct",
        "qwen25vl",
        {**_QWEN2_TEXT, "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000, "max_window_layers": 70, "tie_word_embeddings": True},
        {**_QWEN25VL_VISION, "out_hidden_size": 2048},
        3136,
        12845056,
    ),
    "qwen2vl_7b": ArchSpec(
        "Qwen/Qwen2-VL-7B-Instruct",
        "qwen2vl",
        {**_QWEN2_TEXT, "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 32768, "max_window_layers": 28, "tie_word_embeddings": False},
        {**_QWEN2VL_VISION, "hidden_size": 3584},
        3136,
        12845056,
    ),
    "qwen25vl_7b": ArchSpec(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "qwen25vl",
        {**_QWEN2_TEXT, "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000, "max_window_layers": 28, "tie_word_embeddings": False},
        {**_QWEN25VL_VISION, "out_hidden_size": 3584},
        3136,
        12845056,
    ),
}  # fmt: skip
NAMES = tuple(PUBLISHED)


def spec_of(name: str) -> ArchSpec:
    if name not in PUBLISHED:
        raise ValueError(f"unknown architecture {name!r}; expected one of {', '.join(NAMES)}")
    return PUBLISHED[name]


def name_of_hub_id(hub_id: str) -> str | None:
    """The `PUBLISHED` name of a hub id (`Qwen/Qwen2-VL-2B-Instruct` -> `qwen2vl_2b`), or None."""
    return next((name for name, spec in PUBLISHED.items() if spec.hub_id == hub_id), None)


# ---------------------------------------------------------------------------------------------
# tokenizer, config, processor


def special_token_ids() -> dict[str, int]:
    return {token: FIRST_SPECIAL_ID + i for i, token in enumerate(QWEN_SPECIAL_TOKENS)}


def build_arch_tokenizer(lines: list[str] | None = None):
    """The tiny BPE with its vocabulary padded so Qwen's special tokens get their published ids."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    trained = json.loads(_train_bpe(corpus() if lines is None else lines).to_str())["model"]
    vocab = dict(trained["vocab"])
    for filler in range(len(vocab), FIRST_SPECIAL_ID):  # never produced: no merge builds them
        vocab[f"<|rft_filler_{filler}|>"] = filler
    vocab.update(special_token_ids())  # in the vocabulary first, so adding them keeps these ids
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=PAD, eos_token=EOS, pad_token=PAD, model_max_length=32768)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer.add_special_tokens({"extra_special_tokens": QWEN_SPECIAL_TOKENS})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TAGS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _text_config(spec: ArchSpec) -> dict[str, Any]:
    ids = special_token_ids()
    text = {k: v for k, v in spec.text.items() if k not in ("rope_theta", "mrope_section")}
    rope = {"rope_type": "default", "rope_theta": spec.text["rope_theta"], "mrope_section": list(spec.text["mrope_section"])}
    return {**text, "rope_parameters": rope, "bos_token_id": ids[PAD], "eos_token_id": ids[EOS], "pad_token_id": ids[PAD]}


def published_config(name: str, dtype: str = "bfloat16"):
    """The transformers `Qwen2VLConfig` / `Qwen2_5_VLConfig` of `name` (nothing is built)."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    spec = spec_of(name)
    ids = special_token_ids()
    config_cls = Qwen2VLConfig if spec.arch == "qwen2vl" else Qwen2_5_VLConfig
    return config_cls(
        architectures=[ARCHITECTURES[spec.arch]],  # vLLM picks its model class (and runner) by this
        text_config=_text_config(spec),
        vision_config=dict(spec.vision),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=spec.text["tie_word_embeddings"],
        dtype=dtype,
    )


def build_arch_processor(name: str, tokenizer):
    """Image + video processor with the published pixel budget and patch/merge sizes."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    spec = spec_of(name)
    pixels = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
    vision = {
        "patch_size": spec.vision["patch_size"],
        "merge_size": spec.vision["spatial_merge_size"],
        "temporal_patch_size": spec.vision["temporal_patch_size"],
    }
    processor_cls = Qwen2VLProcessor if spec.arch == "qwen2vl" else Qwen2_5_VLProcessor
    return processor_cls(
        image_processor=Qwen2VLImageProcessor(size=dict(pixels), **vision),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=dict(pixels), **vision),
        chat_template=CHAT_TEMPLATE,
    )


def meta_model(config):
    """The model of `config` on the meta device: shapes and names, no memory."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def parameter_count(config) -> int:
    """Parameters of `config`'s model (tied embeddings once), counted on the meta device."""
    return sum(p.numel() for p in meta_model(config).parameters())


# ---------------------------------------------------------------------------------------------
# weights, one shard at a time


def checkpoint_shapes(config) -> dict[str, tuple[int, ...]]:
    """Checkpoint name -> shape of every tensor `save_pretrained` would write for `config`."""
    from rft.models.loading import checkpoint_state_dict

    return {name: tuple(t.shape) for name, t in checkpoint_state_dict(meta_model(config)).items()}


def random_tensor(name: str, shape: tuple[int, ...], seed: int):
    """The bf16 tensor `name` gets: ones for norms, zeros for biases, else normal(0, INIT_STD);
    seeded by (seed, name), so every shard is reproducible on its own."""
    import torch

    if len(shape) == 1 and ("norm" in name or "ln_q" in name):
        return torch.ones(shape, dtype=torch.bfloat16)
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=torch.bfloat16)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    return torch.empty(shape, dtype=torch.bfloat16).normal_(0.0, INIT_STD, generator=generator)


def plan_shards(shapes: dict[str, tuple[int, ...]], shard_bytes: int | None = None) -> list[list[str]]:
    """Tensor names per shard, in checkpoint order, each shard at most `shard_bytes` (default
    `SHARD_BYTES`) of bf16 (a larger tensor gets a shard of its own)."""
    shard_bytes = shard_bytes or SHARD_BYTES
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = 2 * _numel(shape)
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def write_random_weights(config, out: Path, seed: int) -> int:
    """bf16 safetensors shards plus `model.safetensors.index.json`; returns the parameters written."""
    from safetensors.torch import save_file

    shapes = checkpoint_shapes(config)
    shards = plan_shards(shapes)
    weight_map: dict[str, str] = {}
    for index, names in enumerate(shards, start=1):
        file = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_file({name: random_tensor(name, shapes[name], seed) for name in names}, str(out / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
    total = sum(_numel(s) for s in shapes.values())
    index = {"metadata": {"total_size": 2 * total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return total


# ---------------------------------------------------------------------------------------------
# entry points


def build_arch_model(name: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write the random-weight `name` build to `out_dir` (created; must be empty or new)."""
    from transformers import GenerationConfig

    spec = spec_of(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = corpus()
    tokenizer = build_arch_tokenizer(lines)
    config = published_config(name)
    config.save_pretrained(out)
    ids = special_token_ids()
    GenerationConfig(bos_token_id=ids[PAD], eos_token_id=[ids[EOS], ids[PAD]], pad_token_id=ids[PAD]).save_pretrained(out)
    build_arch_processor(name, tokenizer).save_pretrained(out)
    parameters = write_random_weights(config, out, seed)
    info = {
        "name": name,
        "arch": spec.arch,
        "hub_id": spec.hub_id,
        "seed": seed,
        "version": VERSION,
        "recipe": recipe_hash(name, lines),
        "parameters": parameters,
        "tokenizer_length": len(tokenizer),
    }
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out


def recipe_hash(name: str, lines: list[str] | None = None) -> str:
    """Short hash of what determines the built files (spec, corpus, template, library versions)."""
    from dataclasses import asdict
    from importlib.metadata import version

    libraries = [version(lib) for lib in ("torch", "transformers", "tokenizers", "safetensors")]
    payload = json.dumps([VERSION, name, asdict(spec_of(name)), CHAT_TEMPLATE, libraries, corpus() if lines is None else lines])
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def arch_model_dir(name: str) -> Path:
    """Where `ensure_arch_model` keeps the seed-0 build of `name`."""
    return models_cache() / f"{name}-v{VERSION}-{recipe_hash(name)}"


def ensure_arch_model(name: str) -> Path:
    """The cached seed-0 build of `name`, built on first use (safe under races)."""
    return build_once(arch_model_dir(name), lambda out: build_arch_model(name, out, seed=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", choices=NAMES, required=True)
    parser.add_argument("--out", help="folder to write (default: the RFT_CACHE entry that arch:<name> uses)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build_arch_model(args.name, args.out, args.seed) if args.out else ensure_arch_model(args.name)
    info = json.loads((out / BUILD_INFO).read_text())
    print(f"built {args.name} (seed {info['seed']}) in {out}: {info['parameters']:,} parameters, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
