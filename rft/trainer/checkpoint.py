"""Checkpoint folders: `<run dir>/checkpoints/step_<N>/` with `deepspeed/`, `hf/` and `trainer_state.json`.

A checkpoint is written into `step_<N>.tmp/` and renamed once complete, so an interrupted save
never leaves a folder that looks finished. `latest()` ignores temporary folders; `prune()` keeps
the newest `keep_last`. The trainer state (step, data position, RNG states) is JSON, not pickle.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def staging_dir(run_dir: Path, step: int) -> Path:
    path = checkpoints_dir(run_dir) / f"step_{step}.tmp"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def finalize(run_dir: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    staging = checkpoints_dir(run_dir) / f"step_{step}.tmp"
    (staging / STATE_FILE).write_text(json.dumps(state, indent=1))
    final = checkpoints_dir(run_dir) / f"step_{step}"
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    prune(run_dir, keep_last)
    return final


def all_steps(run_dir: Path) -> list[tuple[int, Path]]:
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).exists()]
    return sorted(found)


def latest(run_dir: Path) -> Path | None:
    steps = all_steps(run_dir)
    return steps[-1][1] if steps else None


def prune(run_dir: Path, keep_last: int) -> None:
    for _, path in all_steps(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-friendly values."""
    np_state = np.random.get_state()
    return {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, inner, gauss = state["python"]
    random.setstate((version, tuple(inner), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
