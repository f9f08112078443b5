"""LoRA adapter folders (PEFT's format): recognising one, applying it to a loaded model, merging it.

An adapter folder holds `adapter_config.json` (rank, alpha, target modules and the base model's
path in `base_model_name_or_path`) and `adapter_model.safetensors`, under the names PEFT saves
(`base_model.model.<module path>.lora_A.weight`), which vLLM's LoRA loader reads as they are.
The learners write them (`rft.learner.lora`), the rollout engines serve them, evaluation and
`python -m rft.models.merge` merge them into a plain Hugging Face model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(folder: str | os.PathLike) -> str:
    """The base model an adapter was trained on (`base_model_name_or_path`)."""
    return json.loads((Path(folder) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def adapter_rank(folder: str | os.PathLike) -> int:
    return int(json.loads((Path(folder) / ADAPTER_CONFIG).read_text())["r"])


def adapter_bytes(folder: str | os.PathLike) -> int:
    """Size of the adapter's weights file: what an engine reads to serve it."""
    return (Path(folder) / ADAPTER_WEIGHTS).stat().st_size


def write_adapter(state: dict, config: dict, folder: str | os.PathLike) -> int:
    """An adapter folder from `state` (PEFT's saved names) and `config`; returns the weights
    file's size in bytes. The config goes last: a folder with one is complete."""
    from rft.models.loading import write_safetensors

    size = write_safetensors(state, folder, name=ADAPTER_WEIGHTS)
    (Path(folder) / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    return size


def load_adapter_weights(model, folder: str | os.PathLike):
    """`model` (transformers) with the adapter in `folder` applied: wrapped in a `PeftModel` the
    first time, its adapter weights replaced on later calls (same rank and targets)."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    if not isinstance(model, PeftModel):
        return PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    result = set_peft_model_state_dict(model, load_file(str(Path(folder) / ADAPTER_WEIGHTS)))
    if result.unexpected_keys:
        raise KeyError(f"adapter in {folder} does not fit the loaded one: {result.unexpected_keys[:3]}")
    return model


def merge_adapter(folder: str | os.PathLike, out_dir: str | os.PathLike, base: str | None = None, dtype: str = "float32") -> Path:
    """Write the base model with the adapter in `folder` merged into its weights as a plain
    Hugging Face model folder (config, weights, processor) that transformers and vLLM load."""
    from rft.models.loading import load_model, load_processor

    base_path = base or adapter_base(folder)
    model = load_adapter_weights(load_model(base_path, dtype=dtype), folder).merge_and_unload()
    out = Path(out_dir)
    model.save_pretrained(out)
    load_processor(base_path).save_pretrained(out)
    generation = Path(base_path) / "generation_config.json"
    if generation.is_file() and not (out / "generation_config.json").is_file():
        (out / "generation_config.json").write_text(generation.read_text())
    return out


def checkpoint_model(step_dir: str | os.PathLike) -> Path | None:
    """The HF model folder of a training checkpoint (`.../step_<N>`): its `hf/`, or for a LoRA
    checkpoint (`adapter/`) the base with the adapter merged, written to `hf/` on first use.
    None when it holds neither."""
    hf = Path(step_dir) / "hf"
    if (hf / "config.json").is_file():
        return hf
    if is_adapter_folder(Path(step_dir) / "adapter"):
        return merge_adapter(Path(step_dir) / "adapter", hf)
    return None
