"""Writing weights: safetensors folders for weight sync, and Hugging Face checkpoints.

Both use the checkpoint naming (`model.*`, `visual.*`, no tied `lm_head`) that vLLM's loader and
`from_pretrained` expect. Files are written to a temporary name and renamed, so a reader never
sees half a file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

WEIGHTS_FILE = "model.safetensors"


def write_safetensors(state: dict[str, torch.Tensor], folder: str | os.PathLike) -> int:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS_FILE)
    return (folder / WEIGHTS_FILE).stat().st_size


def write_hf_checkpoint(state: dict[str, torch.Tensor], config, processor, source_path: str, out_dir: str | os.PathLike) -> Path:
    """A folder that `AutoModelForImageTextToText`/`AutoProcessor` and vLLM load."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    processor.save_pretrained(out)
    generation = Path(source_path) / "generation_config.json"
    if generation.exists():
        shutil.copy(generation, out / "generation_config.json")
    write_safetensors(state, out)
    return out


def sync_root() -> Path:
    """Where weight-sync folders go: shared memory when the OS has it."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))
