"""Smoke test of `python -m rft.bench rl`: two GRPO steps on the tiny model with vLLM (weights
streamed over gloo), end to end through a real launch, the engine measured alone after it, and the
JSON it writes. The run moves its
weights (`MOVING`), so step 2's engine/learner log-prob match checks the streamed sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rft_test_helpers import MOVING, assert_every_step_moves_and_is_synced

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_bench_rl_two_steps_write_table_and_json(tmp_path):
    out = tmp_path / "bench"
    command = [
        sys.executable,
        "-m",
        "rft.bench",
        "rl",
        "--sizes",
        "tiny",
        "--engines",
        "vllm",
        "--steps",
        "2",
        "--prompts",
        "2",
        "--max-tokens",
        "16",
        "--timeout",
        "600",
        "--out",
        str(out),
        "--syncs",
        "gloo",
        "--overrides",
        *MOVING,
    ]
    wide = {**os.environ, "COLUMNS": "200"}  # rich sizes tables to the terminal; a pipe has none
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, env=wide)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Step time" in done.stdout and "rollout" in done.stdout
    payload = json.loads((out / "rl.json").read_text())
    (point,) = payload["results"]
    summary = point["summary"]
    assert summary["ok"] and summary["steps"] == 2 and summary["warmup_skipped"] and summary["sync"] == "gloo"
    assert_every_step_moves_and_is_synced(point["steps"], [1, 2])
    assert summary["rollout tok/s"] > 0 and summary["sync MB/s"] > 0 and summary["step s"] > 0
    assert payload["parameters"]["tiny"] > 100_000
    # the engine alone: the run's rollout worker on the cores the synchronous loop gives it (all)
    alone = point["engine_alone"]
    assert alone["cores"] == sorted(os.sched_getaffinity(0)) and alone["engine_threads"] == len(alone["cores"])
    assert len(alone["rounds"]) == 4 and summary["alone tok/s"] == sorted(alone["rounds"][1:])[1] > 0
    assert summary["in-run / alone %"] == pytest.approx(100 * summary["rollout tok/s"] / summary["alone tok/s"])
