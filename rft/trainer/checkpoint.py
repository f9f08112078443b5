"""Checkpoint folders: `<run dir>/checkpoints/step_<N>/` with `deepspeed/`, `hf/` and `trainer_state.json`.

A checkpoint is written into `step_<N>.tmp/` and renamed once complete, so an interrupted save
never leaves a folder that looks finished. `latest()` ignores temporary folders; `prune()` keeps
the newest `keep_last`. The trainer state (step, data position, RNG states) is JSON, not pickle.

Resuming from a checkpoint gives the run the uninterrupted one would have been (bitwise on CPU,
tests/trainer/test_determinism.py): DeepSpeed restores weights, optimizer and LR schedule; the
trainer state restores the data order (the sampler's epoch and position) and the Python, NumPy
and torch RNG states of the controller and of every learner rank (`rng_state`, also CUDA's where
there is one: dropout continues its stream). Sampling needs no state: each step's vLLM seed is a
function of `trainer.seed` and the step (`rft.trainer.rl`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
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


def rng_state(_actor: Any = None) -> dict[str, Any]:
    """Python, NumPy and torch (and CUDA) RNG states of this process as JSON-friendly values.
    `_actor`: so that `actor.__ray_call__.remote(rng_state)` reads a Ray actor's."""
    np_state = np.random.get_state()
    state = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any], _actor: Any = None) -> None:
    version, inner, gauss = state["python"]
    random.setstate((version, tuple(inner), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _set_actor_rng_state(_actor: Any, state: dict[str, Any]) -> None:
    set_rng_state(state)


def set_learner_rng_states(learners: Any, states: list[dict[str, Any]]) -> None:
    """Each learner rank's RNG states back (`learners`: a `LearnerGroup`, which reads them with
    `learners.run_on_ranks(rng_state)`); left as they are (seeded) when the number of ranks changed."""
    if len(states) != learners.world_size:
        log.warning("the checkpoint holds RNG states of %d learner ranks, this run has %d: their RNGs start from the seed", len(states), learners.world_size)
        return
    learners.run_on_ranks(_set_actor_rng_state, [(state,) for state in states])
