"""Build small Qwen2-VL / Qwen2.5-VL models with random weights, for tests, demos and benchmarks.

    python -m rft.models.tiny --arch qwen2vl --out /tmp/tiny-qwen2vl [--size tiny|small|bench] [--seed 0]

A built folder is a complete Hugging Face checkpoint that `AutoModelForImageTextToText`,
`AutoProcessor` and vLLM load: `config.json`, `generation_config.json`, `model.safetensors`
(float32), the tokenizer (`tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`), the
image and video processor configs, and `rft_build.json` (what was built, from which recipe).

Sizes (parameters counted with tied embeddings; see `SIZES`):
  - `tiny`  ~0.8 M: text hidden 128, 2 layers, 4 heads / 2 KV heads (head_dim 32), vision depth 2
    (Qwen2-VL embed 64; Qwen2.5-VL hidden 64, window 112, full attention in block 1). The
    smallest shape vLLM's CPU backend accepts (head_dim >= 32). Tests.
  - `small` ~4.9 M: text hidden 256, 4 layers, 4 / 2 KV heads (head_dim 64), vision depth 4
    (width 128). Enough to learn a toy task (demo).
  - `bench` ~44 M: text hidden 512, 12 layers, 8 heads / 4 KV heads, vision depth 4 (width 256).
    Big enough that a benchmark measures the engines rather than their overhead.
  About half of `tiny` is the embedding (vocabulary ~1.7 k x 128), so the counts move a little
  with the corpus. Building any size takes ~6-8 s on 2 cores, most of it importing transformers.

Tokenizer: byte-level BPE (Qwen2's pre-tokenizer: NFC, Qwen's split regex, digits split one by
one) trained offline with `tokenizers` on `rft.models.vocab.corpus()` to at most 2,048 tokens,
plus the reasoning tags as single tokens and Qwen's special tokens. eos = `<|im_end|>`,
pad = unk = `<|endoftext|>`; `config.vocab_size` equals the tokenizer's length, so every id the
model can sample decodes.

Determinism: the same arch, size, seed, corpus and library versions give byte-identical files
(weights: `torch.manual_seed(seed)` before building the model on CPU in float32; the BPE trainer is
deterministic for a fixed corpus; nothing written carries a time or a path). `tests/models`
checks `model.safetensors` and `tokenizer.json` bytes across two builds.

`ensure_tiny_model(arch, size)` builds once per machine into
`rft.paths.models_cache()/<arch>-<size>-v<VERSION>-<recipe hash>`: built in a temporary folder
beside it and renamed into place (atomic), under a file lock so that racing processes build once.
The recipe hash covers the model spec, the tokenizer corpus, the template and the library
versions, so a changed corpus (e.g. new task prompts) or an upgrade gives a new folder instead of
a stale one.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rft.models.vocab import REASONING_TAGS, corpus
from rft.paths import models_cache

# Bump when the builder's code changes what it writes (the recipe hash sees only the data below).
VERSION = 1
ARCHS = ("qwen2vl", "qwen25vl")
MAX_VOCAB = 2048
BUILD_INFO = "rft_build.json"

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
EOS, PAD = "<|im_end|>", "<|endoftext|>"

# The pixel budget the saved processor uses unless a caller overrides it (rft.models.loading
# does, from model.min_pixels / model.max_pixels): 4 to 256 merged image tokens.
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 256 * 28 * 28

# Qwen-style chat template. Content is a string or a list of {"type": "image"|"video"|"text"}
# items; each image becomes <|vision_start|><|image_pad|><|vision_end|>, which the processor (or
# vLLM) expands to the image's number of tokens. A default system turn is added as Qwen2-VL does.
# No whitespace control: transformers renders with trim_blocks/lstrip_blocks, and every newline
# here sits inside a literal, before a tag, where neither option touches it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item or 'image_url' in item %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' or 'video' in item %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in item %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split (same as transformers' Qwen2Tokenizer): digits one by one.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True)
class Spec:
    """One model size. Vision fields are read per arch (Qwen2-VL: embed_dim/mlp_ratio;
    Qwen2.5-VL: vision_hidden/vision_intermediate/fullatt)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2
    vision_depth: int
    vision_hidden: int  # Qwen2-VL embed_dim, Qwen2.5-VL hidden_size
    vision_heads: int
    vision_intermediate: int  # Qwen2.5-VL only; Qwen2-VL uses mlp_ratio 4
    fullatt_blocks: tuple[int, ...]  # Qwen2.5-VL only
    max_positions: int = 8192


SIZES = {
    "tiny": Spec(128, 256, 2, 4, 2, (4, 6, 6), 2, 64, 2, 128, (1,)),
    "small": Spec(256, 768, 4, 4, 2, (8, 12, 12), 4, 128, 2, 256, (1, 3)),
    "bench": Spec(512, 1536, 12, 8, 4, (8, 12, 12), 4, 256, 4, 512, (1, 3)),
}


# ---------------------------------------------------------------------------------------------
# tokenizer


def _train_bpe(lines: list[str]):
    """Byte-level BPE on `lines`, with the Qwen2 normalizer / pre-tokenizer / decoder."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=MAX_VOCAB - len(SPECIAL_TOKENS) - len(REASONING_TAGS),
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer)
    return tok


def build_tokenizer(lines: list[str] | None = None):
    """A `Qwen2Tokenizer` trained on `lines` (default: the vocab corpus), with the chat template."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    trained = json.loads(_train_bpe(corpus() if lines is None else lines).to_str())
    model = trained["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=PAD,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=32768,
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_special_tokens({"extra_special_tokens": SPECIAL_TOKENS})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TAGS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------------------------------------
# config, weights, processor


def _token_ids(tokenizer) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


def _text_config(spec: Spec, vocab_size: int, ids: dict[str, int]) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.max_positions,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": list(spec.mrope_section),
        },
        "bos_token_id": ids[PAD],
        "eos_token_id": ids[EOS],
        "pad_token_id": ids[PAD],
        "tie_word_embeddings": True,
    }


def _vision_config(arch: str, spec: Spec) -> dict:
    common = {
        "depth": spec.vision_depth,
        "num_heads": spec.vision_heads,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    if arch == "qwen2vl":
        return {**common, "embed_dim": spec.vision_hidden, "mlp_ratio": 4, "hidden_size": spec.hidden}
    return {
        **common,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "out_hidden_size": spec.hidden,
        "window_size": 112,
        "fullatt_block_indexes": list(spec.fullatt_blocks),
    }


def build_config(arch: str, spec: Spec, tokenizer):
    """The `Qwen2VLConfig` / `Qwen2_5_VLConfig` for `spec`, token ids taken from `tokenizer`."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    ids = _token_ids(tokenizer)
    config_cls = Qwen2VLConfig if arch == "qwen2vl" else Qwen2_5_VLConfig
    return config_cls(
        text_config=_text_config(spec, len(tokenizer), ids),
        vision_config=_vision_config(arch, spec),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        dtype="float32",
    )


def build_processor(arch: str, tokenizer):
    """The full processor (image + video processor + tokenizer + chat template) for `arch`."""
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    pixels = {"shortest_edge": DEFAULT_MIN_PIXELS, "longest_edge": DEFAULT_MAX_PIXELS}
    vision = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    processor_cls = Qwen2VLProcessor if arch == "qwen2vl" else Qwen2_5_VLProcessor
    return processor_cls(
        image_processor=Qwen2VLImageProcessor(size=dict(pixels), **vision),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=dict(pixels), **vision),
        chat_template=CHAT_TEMPLATE,
    )


def build_generation_config(tokenizer):
    """Only the stop/pad ids: sampling defaults are deliberately absent, because vLLM applies a
    model's generation_config.json sampling values to requests that do not set them."""
    from transformers import GenerationConfig

    ids = _token_ids(tokenizer)
    return GenerationConfig(bos_token_id=ids[PAD], eos_token_id=[ids[EOS], ids[PAD]], pad_token_id=ids[PAD])


def build_weights(arch: str, config, seed: int):
    """The model with random weights from `seed` (CPU, float32)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    model_cls = Qwen2VLForConditionalGeneration if arch == "qwen2vl" else Qwen2_5_VLForConditionalGeneration
    torch.manual_seed(seed)
    model = model_cls(config).to(torch.float32)
    model.eval()
    return model


def parameter_count(model) -> int:
    """Parameters, each shared tensor (the tied embedding) counted once."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# entry points


def _check(arch: str, size: str) -> Spec:
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny-model arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ValueError(f"unknown tiny-model size {size!r}; expected one of {', '.join(SIZES)}")
    return SIZES[size]


def build_tiny_model(arch: str, out_dir: str | os.PathLike, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight `arch` model of `size` to `out_dir` (created; must be empty or new)."""
    spec = _check(arch, size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = corpus()
    tokenizer = build_tokenizer(lines)
    config = build_config(arch, spec, tokenizer)
    model = build_weights(arch, config, seed)
    model.generation_config = build_generation_config(tokenizer)
    model.save_pretrained(out)
    build_processor(arch, tokenizer).save_pretrained(out)
    info = {
        "arch": arch,
        "size": size,
        "seed": seed,
        "version": VERSION,
        "recipe": recipe_hash(arch, size, lines),
        "parameters": parameter_count(model),
        "vocab_size": len(tokenizer),
    }
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out


def recipe_hash(arch: str, size: str, lines: list[str] | None = None) -> str:
    """Short hash of what determines the built files: spec, corpus, template, pixel defaults,
    VERSION and the versions of the libraries that write them."""
    from importlib.metadata import version

    libraries = [version(name) for name in ("torch", "transformers", "tokenizers", "safetensors")]
    payload = json.dumps(
        [
            VERSION,
            arch,
            asdict(SIZES[size]),
            CHAT_TEMPLATE,
            DEFAULT_MIN_PIXELS,
            DEFAULT_MAX_PIXELS,
            libraries,
            corpus() if lines is None else lines,
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def tiny_model_dir(arch: str, size: str = "tiny") -> Path:
    """Where `ensure_tiny_model` keeps the seed-0 build of `arch`/`size`."""
    _check(arch, size)
    return models_cache() / f"{arch}-{size}-v{VERSION}-{recipe_hash(arch, size)}"


def ensure_tiny_model(arch: str, size: str = "tiny") -> Path:
    """The cached seed-0 model of `arch`/`size`, built on first use (safe under races)."""
    return build_once(tiny_model_dir(arch, size), lambda out: build_tiny_model(arch, out, size=size, seed=0))


def build_once(final: Path, build) -> Path:
    """`final`, written by `build(folder)` unless a finished build (its BUILD_INFO) is there:
    under a file lock (another process may be building it right now), into a temporary folder
    renamed into place, so a half-written build is never seen."""
    if (final / BUILD_INFO).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / BUILD_INFO).exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            build(tmp)
            os.rename(tmp, final)  # atomic; fails if another host on a shared disk won the race
        except OSError:
            if not (final / BUILD_INFO).exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHS, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build_tiny_model(args.arch, args.out, size=args.size, seed=args.seed)
    info = json.loads((out / BUILD_INFO).read_text())
    print(
        f"built {args.arch}-{args.size} (seed {args.seed}) in {out}: "
        f"{info['parameters']:,} parameters, vocab {info['vocab_size']}, "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
