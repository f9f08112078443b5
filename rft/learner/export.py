"""Writing the learner's weights as Hugging Face checkpoints (weight-sync folders: `rft.weights.folder`).

Checkpoints use the naming (`model.*`, `visual.*`, no tied `lm_head`) that vLLM's loader and
`from_pretrained` expect; the weights file is written to a temporary name and renamed
(`rft.models.loading.write_safetensors`), so a reader never sees half of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from rft.models.loading import write_safetensors


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
