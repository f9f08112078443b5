"""Same seed, same run (`trainer.deterministic`, on by default on CPUs): a 4-step GRPO run, and a
second launch with the same seed that stops after step 2 and is resumed to step 4, give the same
metrics at every step and bitwise the same weights and optimizer state. The second launch's
steps 1-2 are a fresh same-seed run; its steps 3-4 come from the restored checkpoint, so a
difference in either (sampling, update, sync, restored state) fails the comparison.

The runs move their weights (`MOVING`: a length term, lr 1e-3, fp32), so every step samples
other completions from other weights: a difference anywhere (sampling, update, sync, restored
state) shows up by step 4. Two learner ranks under ZeRO-2, so the gloo all-reduce is in the path.

The stopped run ends at `max_steps=2`. A schedule that decays over `max_steps` (linear, cosine)
would then differ by design, so the runs warm up over 4 steps at a constant rate: the LR still
changes every step (a schedule not restored on resume would show), but not with `max_steps`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rft_test_helpers import MOVING, TINY_RL, assert_every_step_moves_and_is_synced, compose, read_metrics
from safetensors.torch import load_file

from rft.trainer import run

pytestmark = pytest.mark.slow

RUN = [
    *TINY_RL,
    *MOVING,
    "algo.lr_scheduler=constant",
    "algo.warmup_steps=4",
    "algo.beta=0.04",
    "learner.num_workers=2",
    "learner.zero_stage=2",
    "trainer.save_every=2",
    "trainer.seed=3",
]
# Measurements of the machine, not of the run: times, rates and memory.
MACHINE_KEYS = ("timing/", "wall_time", "_per_s", "peak_rss_gb")


def _run_values(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if not any(part in k for part in MACHINE_KEYS)} for row in read_metrics(run_dir)]


def _tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint object, by its path."""
    if torch.is_tensor(obj):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    return {name: t for key, value in items for name, t in _tensors(value, f"{prefix}/{key}").items()}


def _state(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    """The step's checkpoint: HF weights and DeepSpeed's model and optimizer states of every rank."""
    folder = run_dir / "checkpoints" / f"step_{step}"
    state = {f"hf/{k}": v for k, v in load_file(folder / "hf" / "model.safetensors").items()}
    for path in sorted((folder / "deepspeed").rglob("*.pt")):
        state.update(_tensors(torch.load(path, map_location="cpu", weights_only=False), path.name))
    return state


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:5]}"


@pytest.fixture(scope="module")
def runs(ray_cluster, tmp_path_factory) -> dict[str, Path]:
    dirs = {name: tmp_path_factory.mktemp(name) for name in ("first", "resumed")}
    run(compose(RUN + ["trainer.max_steps=4"]), dirs["first"])
    run(compose(RUN + ["trainer.max_steps=2"]), dirs["resumed"])
    run(compose(RUN + ["trainer.max_steps=4", "trainer.resume=auto"]), dirs["resumed"])
    return dirs


def test_same_seed_gives_the_same_run(runs):
    first = _run_values(runs["first"])
    assert [row["step"] for row in first] == [1, 2, 3, 4]
    assert len({row["reward/mean"] for row in first}) > 1
    assert_every_step_moves_and_is_synced(read_metrics(runs["first"]), [1, 2, 3, 4])
    assert_every_step_moves_and_is_synced(read_metrics(runs["resumed"]), [1, 2, 3, 4])  # resumed: engine restarted at step 3
    assert _run_values(runs["resumed"])[:2] == first[:2]  # the second launch before its stop
    _assert_bitwise_equal(_state(runs["first"], 2), _state(runs["resumed"], 2))


def test_resumed_run_equals_the_uninterrupted_one(runs):
    assert json.loads((runs["resumed"] / "checkpoints" / "step_4" / "trainer_state.json").read_text())["step"] == 4
    assert _run_values(runs["resumed"]) == _run_values(runs["first"])  # every step once, same values
    _assert_bitwise_equal(_state(runs["first"], 4), _state(runs["resumed"], 4))
