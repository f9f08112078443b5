"""What an evaluation scores: `model.path`, the `eval.checkpoints` entries, or a training run.

An entry is one of
  - a model folder (it holds `config.json`), a hub id or a `tiny:` spec (rft.models.loading);
  - a LoRA adapter folder or checkpoint: evaluated as its merged model (`checkpoint_model`);
  - a training run folder: every `checkpoints/step_<N>/hf` under it, at any depth, so a
    reason_rft run gives `stage1_sft/step_<N>` and `stage2_rl/step_<N>` checkpoints.

`eval.checkpoints` (and `eval.run`, which adds one run folder) replace `model.path`; with neither,
`model.path` alone is evaluated. Everything here runs before Ray starts: an entry that names no
model raises `ModelNotFoundError` naming the config key and the folder.

A `Target` is labelled by (model, checkpoint): `model` is the entry as given, `checkpoint` the
checkpoint within it (`-` for a plain model folder). The pair keys the predictions journal.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from rft.models.adapter import checkpoint_model, is_adapter_folder, merge_adapter
from rft.models.loading import ModelNotFoundError, resolve_model_path

PLAIN = "-"  # the checkpoint label of a plain model folder or hub id
_STEP_DIR = re.compile(r"^step_(\d+)$")
_SKIP_DIRS = {"eval", "wandb", "mlruns", "artifacts", "deepspeed", "hf", "adapter", "sync"}
# config.json keys that a re-save changes without changing the architecture.
_VOLATILE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "use_cache", "architectures"}


@dataclass(frozen=True)
class Target:
    model: str  # the entry as given (model folder, hub id or run folder)
    checkpoint: str  # e.g. "step_4", "stage2_rl/step_4"; PLAIN for a plain model
    step: int | None  # the training step, when the folder says
    folder: str  # the resolved HF model folder (or a hub id the hub confirmed)

    @property
    def stage(self) -> str:
        """The stage part of the label (`stage2_rl`), or "" for single-stage runs."""
        return self.checkpoint.rsplit("/", 1)[0] if "/" in self.checkpoint else ""


def eval_targets(cfg: DictConfig) -> list[Target]:
    """The targets in order: `eval.checkpoints` entries, then `eval.run`; else `model.path`."""
    entries = [(f"eval.checkpoints[{i}]", str(e)) for i, e in enumerate(cfg.eval.checkpoints)]
    run = cfg.eval.run
    if run:
        entries.append(("eval.run", str(run)))
    if not entries:
        entries = [("model.path", str(cfg.model.path))]
    targets: list[Target] = []
    for key, entry in entries:
        for target in expand_entry(key, entry, arch_hint=_arch_hint(cfg)):
            if target not in targets:
                targets.append(target)
    return targets


def expand_entry(key: str, entry: str, arch_hint: str | None = None) -> list[Target]:
    """One entry as targets: a model, or every checkpoint of a run folder."""
    local = Path(entry).expanduser()
    if is_adapter_folder(local):  # a bare LoRA adapter: its merged model, made once beside it
        merged = local / "merged"
        if not (merged / "config.json").is_file():
            merge_adapter(local, merged)
        return [Target(entry, PLAIN, None, str(merged.resolve()))]
    model = checkpoint_model(local)
    if model is not None:  # a checkpoint folder, `.../step_<N>`
        return [Target(entry, *_plain_label(model), str(model.resolve()))]
    if local.is_dir() and not (local / "config.json").is_file():
        found = run_checkpoints(local)
        if not found:
            raise ModelNotFoundError(
                f"{key}={entry}: folder {local.resolve()} holds no model (no config.json) and no training checkpoints (checkpoints/step_<N>/hf) under it"
            )
        return [Target(entry, label, step, str(folder)) for label, step, folder in found]
    folder = _resolve(key, entry, arch_hint)
    return [Target(entry, *_plain_label(Path(folder)), folder)]


def run_checkpoints(run_dir: Path) -> list[tuple[str, int, Path]]:
    """(label, step, hf folder) of every finished checkpoint under `run_dir`, by stage then step."""
    found = []
    for root, dirs, _ in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS and not _STEP_DIR.match(d))
        if Path(root).name != "checkpoints":
            continue
        stage = "." if Path(root) == run_dir else Path(root).parent.relative_to(run_dir).as_posix()
        for step_dir in Path(root).iterdir():
            match = _STEP_DIR.match(step_dir.name)
            model = checkpoint_model(step_dir) if match else None
            if model is not None:
                label = step_dir.name if stage == "." else f"{stage}/{step_dir.name}"
                found.append((stage, int(match.group(1)), label, model))
        dirs.clear()  # nothing to find inside a checkpoints folder's other entries
    return [(label, step, folder.resolve()) for _, step, label, folder in sorted(found)]


def _plain_label(folder: Path) -> tuple[str, int | None]:
    """`step_<N>` and N for a checkpoint's own folder (`.../step_<N>[/hf]`), else PLAIN."""
    for part in (folder.name, folder.parent.name) if folder.name == "hf" else (folder.name,):
        match = _STEP_DIR.match(part)
        if match:
            return part, int(match.group(1))
    return PLAIN, None


def _resolve(key: str, entry: str, arch_hint: str | None) -> str:
    try:
        return resolve_model_path(entry, arch_hint)
    except ModelNotFoundError as err:
        message = str(err).removeprefix(f"model.path={entry}: ")
        raise ModelNotFoundError(f"{key}={entry}: {message}") from None


def _arch_hint(cfg: DictConfig) -> str | None:
    arch = cfg.model.get("arch")
    return None if arch is None else str(arch)


def arch_key(folder: str) -> str:
    """What must match for one engine to serve two folders by swapping weights: the model
    config without the keys a re-save changes. A hub id not on disk is its own key."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return folder
    return json.dumps(_strip(json.loads(config.read_text())), sort_keys=True)


def _strip(node):
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _VOLATILE}
    return node
