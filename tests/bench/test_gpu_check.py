"""`rft.bench.gpu_check`: every check composes into a valid run configuration, the verdict reads
step rows the way the trainer writes them, and a machine without CUDA is told so (exit 2)."""

from __future__ import annotations

import pytest
from rft_test_helpers import compose

from rft.bench import gpu_check
from rft.weights.modes import resolve_mode


@pytest.mark.parametrize("check", gpu_check.checks(), ids=lambda c: c.name)
def test_every_check_is_a_valid_gpu_run(check):
    cfg = compose(check.overrides)
    assert cfg.learner.gpus_per_worker > 0 and cfg.rollout.gpus_per_worker > 0
    assert str(resolve_mode(cfg)) in ("ipc", "nccl")
    assert cfg.algo.lr > 0 and cfg.reward.weights.length > 0  # the random model's gradients are non-zero
    if cfg.cluster.colocate:  # the shared bundle must fit on one GPU
        assert cfg.learner.gpus_per_worker + cfg.rollout.gpus_per_worker <= 1.0


def _row(grad_norm=0.5, gap=1e-3):
    return {"timing/step_s": 1.0, "grad_norm": grad_norm, "rollout/logprob_gap": gap}


def test_verdict():
    assert gpu_check.judge([_row(), _row(gap=2e-2)], 2) == (True, "", 2e-2)
    passed, reason, _ = gpu_check.judge([_row()], 2)
    assert not passed and reason == "1 of 2 steps logged"
    passed, reason, _ = gpu_check.judge([_row(), _row(grad_norm=0.0)], 2)
    assert not passed and "grad_norm 0" in reason
    passed, reason, gap = gpu_check.judge([_row(), _row(gap=0.3)], 2)
    assert not passed and gap == 0.3 and "0.3" in reason


@pytest.mark.skipif(gpu_check.gpu_count() > 0, reason="this machine has a GPU")
def test_no_gpu_is_said_in_one_line(capsys):
    assert gpu_check.main(["--out", "unused"]) == 2
    assert capsys.readouterr().err.strip().startswith("rft gpu-check: no CUDA device visible")
