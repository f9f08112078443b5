"""Find, load and name the weights of Qwen2-VL / Qwen2.5-VL models.

`model.path` (Hydra) is one of:
  - a local folder holding a Hugging Face checkpoint (`config.json` must be there);
  - `tiny:<arch>[:<size>]` (e.g. `tiny:qwen2vl`, `tiny:qwen25vl:small`): a random-weight model
    built on first use by rft.models.tiny; `tiny` or `tiny::<size>` take the arch from `arch_hint`;
  - `arch:<name>` (e.g. `arch:qwen2vl_2b`): a random-weight build of a published architecture
    (rft.models.arch), bf16, built into RFT_CACHE on first use;
  - a hub id (`Qwen/Qwen2-VL-2B-Instruct`): taken from the local Hugging Face cache when it is
    there, else left as the id when the hub answers (transformers/vLLM then download it), else
    `ModelNotFoundError` with one line saying how to point `model.path` at a local copy.
    `HF_HUB_OFFLINE=1` skips the network check.

The pixel budget (`min_pixels`, `max_pixels`) must be the same in training and in rollout, or the
policy sees images at another resolution than it is trained on: `load_processor` applies it to the
HF processor, and `vllm_mm_processor_kwargs` gives the same budget for `vllm.LLM(...,
mm_processor_kwargs=...)`. (transformers 5 keeps it as `size={"shortest_edge": min_pixels,
"longest_edge": max_pixels}` on both the image and the video processor; a legacy checkpoint's
`min_pixels`/`max_pixels` are folded into `size` when it loads.)

`checkpoint_state_dict(model)` gives the weights under checkpoint names, which is what vLLM's
loader (`reload_weights(..., is_checkpoint_format=True)`) expects. In memory transformers 5 names
them `model.language_model.*`, `model.visual.*` and a tied `lm_head.weight`; on disk they are
`model.*`, `visual.*` and no `lm_head` when tied. Rather than re-deriving the mapping, this runs
the two steps `PreTrainedModel.save_pretrained` runs (drop tied aliases, then revert the
registered checkpoint conversion, `conversion_mapping.py`: `^visual` <-> `model.visual`,
`^model` <-> `model.language_model`), so it stays right if transformers changes the mapping.
`write_checkpoint_folder` writes such weights as a complete folder for vLLM's `reload_weights`
(and rft.weights.vllm_worker puts them into a running engine).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from rft.errors import UserError

HUB_TIMEOUT_S = 5.0
_EXAMPLE_FOLDERS = {"qwen2vl": "Qwen2-VL-2B-Instruct", "qwen25vl": "Qwen2.5-VL-3B-Instruct"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "on", "yes", "true"}


class ModelNotFoundError(UserError, FileNotFoundError):
    """`model.path` names no usable model; the message is one line saying what to set."""


# ---------------------------------------------------------------------------------------------
# resolving model.path


def resolve_model_path(path: str, arch_hint: str | None = None, timeout: float = HUB_TIMEOUT_S) -> str:
    """A local folder, or a hub id the hub confirmed, for `path` (see the module docstring)."""
    value = str(path).strip()  # config choices are StrEnums: str() is their value
    hint = str(arch_hint) if arch_hint is not None else None
    if value == "tiny" or value.startswith("tiny:"):
        return str(_resolve_tiny(value, hint))
    if value.startswith("arch:"):
        return str(_resolve_arch(value))
    local = Path(value).expanduser()
    if local.exists() or not _HUB_ID.match(value) or value.startswith("."):
        return str(_resolve_local(local, value, hint))
    return _resolve_hub(value, hint, timeout)


def _resolve_tiny(value: str, arch_hint: str | None) -> Path:
    from rft.models.tiny import ensure_tiny_model

    parts = value.split(":")[1:]
    arch = (parts[0] if parts else "") or arch_hint or "qwen2vl"
    size = (parts[1] if len(parts) > 1 else "") or "tiny"
    try:
        return ensure_tiny_model(arch, size)
    except ValueError as err:
        raise ModelNotFoundError(f"model.path={value}: {err}") from None


def _resolve_arch(value: str) -> Path:
    from rft.models.arch import ensure_arch_model

    try:
        return ensure_arch_model(value.removeprefix("arch:"))
    except ValueError as err:
        raise ModelNotFoundError(f"model.path={value}: {err}") from None


def _resolve_local(local: Path, value: str, arch_hint: str | None) -> Path:
    if (local / "config.json").is_file():
        return local.resolve()
    what = "has no config.json" if local.is_dir() else "does not exist"
    raise ModelNotFoundError(
        f"model.path={value}: folder {local.resolve()} {what}; point model.path at a folder holding "
        f"a Hugging Face checkpoint, e.g. model.path={_example_folder(arch_hint, value)}"
    )


def _resolve_hub(repo_id: str, arch_hint: str | None, timeout: float) -> str:
    cached = _from_hf_cache(repo_id)
    if cached is not None:
        return cached
    example = _example_folder(arch_hint, repo_id)
    if hub_offline():
        raise ModelNotFoundError(
            f"model.path={repo_id}: not a local folder and not in the Hugging Face cache "
            f"({_hf_cache_dir()}), and HF_HUB_OFFLINE is set; copy the model to this machine and "
            f"set model.path={example}"
        )
    problem = _hub_problem(repo_id, timeout)
    if problem is None:
        return repo_id
    raise ModelNotFoundError(
        f"model.path={repo_id}: not a local folder, not in the Hugging Face cache, and {problem}; copy the model to this machine and set model.path={example}"
    )


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, read now, not at import."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE)


def _from_hf_cache(repo_id: str) -> str | None:
    """The cached snapshot folder of `repo_id` (with its config.json), or None."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, local_files_only=True, cache_dir=_hf_cache_dir())
    except Exception:  # not cached, or not a valid id: both mean "not here"
        return None
    return folder if (Path(folder) / "config.json").is_file() else None


def _hub_problem(repo_id: str, timeout: float) -> str | None:
    """None when the hub serves `repo_id`'s config.json within `timeout`, else what went wrong."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, "config.json"), timeout=timeout)
    except GatedRepoError:
        return "the hub says the repository is gated (log in with a token that has access)"
    except RepositoryNotFoundError:
        return "the hub has no such repository"
    except EntryNotFoundError:
        return "the hub repository has no config.json"
    except Exception as err:  # DNS, connection, timeout, proxy: all mean "unreachable"
        return f"the hub is unreachable ({type(err).__name__})"
    return None


def _example_folder(arch_hint: str | None, value: str) -> str:
    name = _EXAMPLE_FOLDERS.get(arch_hint or "")
    if name is None:
        tail = value.rstrip("/").split("/")[-1]
        name = tail if _HUB_ID.match(tail) and not tail.startswith("tiny") else _EXAMPLE_FOLDERS["qwen2vl"]
    return f"/path/to/{name}"


def arch_of(path: str) -> str:
    """`qwen2vl` or `qwen25vl`, from the model_type in the folder's config.json."""
    import json

    model_type = json.loads((Path(resolve_model_path(path)) / "config.json").read_text())["model_type"]
    archs = {"qwen2_vl": "qwen2vl", "qwen2_5_vl": "qwen25vl"}
    if model_type not in archs:
        raise ValueError(f"model.path={path}: model_type {model_type!r} is not Qwen2-VL or Qwen2.5-VL")
    return archs[model_type]


# ---------------------------------------------------------------------------------------------
# model and processor


def resolve_dtype(dtype: str = "float32"):
    """The torch dtype for `float32|bfloat16|float16|auto`. auto: bfloat16 where the hardware
    computes it natively (a GPU that supports it, or a CPU with AVX512-BF16 or AMX), else float32.
    The learners and the rollout engines both resolve `model.dtype` here, so they agree."""
    import torch

    name = str(dtype)
    if name == "auto":
        name = "bfloat16" if native_bf16() else "float32"
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"model.dtype={name}: expected float32, bfloat16, float16 or auto")
    return getattr(torch, name)


def native_bf16() -> bool:
    """True when this machine's accelerator (the GPU if there is one, else the CPU) has bf16
    arithmetic in hardware; emulated bf16 on a CPU is slower than float32."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported(including_emulation=False)
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


# `model.gradient_checkpointing: null` (auto) turns it on from this many parameters: real
# checkpoints (Qwen2-VL 2B and up) need it to fit a micro-batch's activations beside 16 bytes a
# parameter of weights, gradients and Adam state; the small built models (<= ~50 M) fit without,
# and recomputing the forward only costs time (the ~44 M bench model, one learner update of 32
# sequences: 25% slower with it; the memory is bounded by learner.micro_batch_tokens instead).
CHECKPOINTING_MIN_PARAMS = 1_000_000_000


def wants_checkpointing(setting: bool | None, parameters: int) -> bool:
    """Gradient checkpointing for a model of `parameters`: `setting` when given, else by size."""
    return parameters >= CHECKPOINTING_MIN_PARAMS if setting is None else bool(setting)


def load_model(
    path: str,
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    gradient_checkpointing: bool | None = False,
    freeze_vision: bool = False,
    arch_hint: str | None = None,
):
    """An `AutoModelForImageTextToText` for `path` (resolved as `resolve_model_path`).
    `gradient_checkpointing=None` decides by the model's size (`wants_checkpointing`)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        resolve_model_path(path, arch_hint),
        dtype=resolve_dtype(dtype),
        attn_implementation=str(attn_implementation),
    )
    if wants_checkpointing(gradient_checkpointing, model.num_parameters()):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if freeze_vision:
        vision_tower(model).requires_grad_(False)
    return model


def vision_tower(model):
    """The vision encoder (patch embedding, blocks and merger) of a Qwen2-VL / Qwen2.5-VL model."""
    inner = getattr(model, "model", model)
    tower = getattr(inner, "visual", None)
    if tower is None:
        raise AttributeError(f"{type(model).__name__} has no `model.visual`; not a Qwen2-VL model?")
    return tower


def load_processor(
    path: str,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    arch_hint: str | None = None,
):
    """The `AutoProcessor` for `path`, with the pixel budget applied to image and video processors."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(resolve_model_path(path, arch_hint))
    set_pixel_budget(processor, min_pixels, max_pixels)
    return processor


def set_pixel_budget(processor, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
    """Make the image and video processors resize to `min_pixels`..`max_pixels` (None: keep).

    Set on the loaded processors rather than passed to `from_pretrained`: load kwargs would also
    land in the tokenizer's init kwargs and come back on every call as deprecated
    `min_pixels`/`max_pixels` call arguments (a FutureWarning in transformers 5.19).
    """
    from transformers.image_utils import SizeDict

    for sub in (processor.image_processor, getattr(processor, "video_processor", None)):
        if sub is None:
            continue
        size = {k: v for k, v in dict(sub.size).items() if v is not None}
        if min_pixels is not None:
            size["shortest_edge"] = int(min_pixels)
        if max_pixels is not None:
            size["longest_edge"] = int(max_pixels)
        sub.size = SizeDict(**size)


def pixel_budget(processor) -> tuple[int, int]:
    """(min_pixels, max_pixels) the processor's image processor resizes to."""
    size = processor.image_processor.size
    return int(size["shortest_edge"]), int(size["longest_edge"])


def vllm_mm_processor_kwargs(min_pixels: int, max_pixels: int) -> dict:
    """`mm_processor_kwargs` that make vLLM resize images like `load_processor(min, max)` does."""
    return {"min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}


# ---------------------------------------------------------------------------------------------
# checkpoint names


def checkpoint_state_dict(model, state_dict: dict | None = None) -> dict:
    """`model`'s weights under the names `save_pretrained` writes (and vLLM loads).

    `state_dict` replaces `model.state_dict()` (e.g. one gathered from ZeRO-3 shards); tied
    aliases are dropped by name as well as by shared storage, so gathered copies work too.
    Tensors are not copied.
    """
    from transformers.core_model_loading import revert_weight_conversion
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    model = getattr(model, "module", model)  # DeepSpeed / DDP wrappers
    weights = dict(model.state_dict() if state_dict is None else state_dict)
    weights = remove_tied_weights_from_state_dict(weights, model)
    for alias in getattr(model, "all_tied_weights_keys", {}) or {}:
        weights.pop(alias, None)
    return revert_weight_conversion(model, weights)


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".safetensors.index.json", ".bin.index.json")


WEIGHTS_FILE = "model.safetensors"


def write_safetensors(weights: dict, folder: str | os.PathLike, name: str = WEIGHTS_FILE) -> int:
    """`weights` as `folder/<name>` (model.safetensors), written beside and renamed into place so
    that a reader never sees half of it. Returns the file's size in bytes."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{name}.partial"
    save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(partial), metadata={"format": "pt"})
    os.replace(partial, out / name)
    return (out / name).stat().st_size


def weight_file_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the safetensors weight files in a checkpoint folder: what a reload reads."""
    return sum(file.stat().st_size for file in Path(folder).glob("*.safetensors"))


def write_checkpoint_folder(weights: dict, folder: str | os.PathLike, model_dir: str | os.PathLike) -> Path:
    """Write `weights` (checkpoint names, e.g. from `checkpoint_state_dict`) as a complete
    checkpoint in `folder`: `model.safetensors` plus the config, tokenizer and processor files of
    the local folder `model_dir`. Reuse one `folder` across updates: the in-process renderer
    caches the processor per path.

    Why complete: vLLM's `reload_weights(weights_path=folder)` re-points the engine's model config
    at `folder`; with an in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0) the prompt renderer
    then loads the HF processor from there, and fails on a folder that holds only weights.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(Path(model_dir).iterdir()):
        if src.is_file() and not src.name.endswith(_WEIGHT_SUFFIXES):
            shutil.copyfile(src, out / src.name)
    write_safetensors(weights, out)
    return out
