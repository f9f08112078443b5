"""Sweeps on a 2-CPU Ray head (`small_head`): points queue until they fit, a point larger than the
cluster fails at once, every job runs its own configuration and reports its result, early stopping
stops laggards, and an optuna study runs its trials as jobs.

Each tiny RL point asks for 1 CPU (a learner and a rollout worker of 0.5 CPU each, no driver CPU),
so two run at a time and the others wait in the launcher's queue.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import yaml
from jobs.conftest import sweep_command
from rft_test_helpers import assert_every_step_moves_and_is_synced, read_metrics

from rft.jobs.sweep import SWEEP_FILE, SweepState

pytestmark = pytest.mark.slow

TINY_POINT = [
    "stage=rl", "task=counting", "model=tiny_qwen2vl", "trainer.prompts_per_step=2", "algo.num_generations=2",
    "rollout.max_tokens=16", "data.synth_n_train=8", "data.synth_n_test=4", "learner.num_workers=1",
    "learner.cpus_per_worker=0.5", "rollout.cpus_per_worker=0.5", "tracking.sinks=[jsonl]", "trainer.progress=false",
]  # fmt: skip
# Metrics that depend on what the job computed (not on timing, or on the lr setting itself).
COMPUTED = ("reward/", "response_length/", "entropy", "grad_norm", "loss", "kl", "rollout/logprob_gap")


def _sweep(head, sweep_dir: Path, *args: str) -> list[str]:
    return sweep_command(head, sweep_dir, TINY_POINT, *args)


def _computed(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key.startswith(COMPUTED)}


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_a_point_larger_than_the_cluster_fails_at_once_with_one_line(small_head, job_env, run_rft, tmp_path):
    sweep_dir = tmp_path / "sweep"
    before = {job.submission_id for job in small_head.client().list_jobs()}
    start = time.monotonic()
    done = run_rft(_sweep(small_head, sweep_dir, "learner.num_workers=3", "learner.cpus_per_worker=1", "trainer.max_steps=1"), job_env, timeout=300)
    elapsed = time.monotonic() - start
    output = done.stdout + done.stderr
    assert done.returncode != 0
    point = SweepState.load(sweep_dir / SWEEP_FILE).points[0]
    assert point.status == "REJECTED" and point.submission_id is None
    assert point.message.startswith("needs 3.5 CPU") and "the whole cluster has 2 CPU" in point.message
    assert [line for line in output.splitlines() if "REJECTED: needs 3.5 CPU" in line], output[-3000:]
    assert "sweep point 0 ended REJECTED" in output
    assert {job.submission_id for job in small_head.client().list_jobs()} == before  # nothing was submitted
    assert elapsed < 60, f"{elapsed:.0f} s"  # Hydra's start-up and one look at the cluster


def test_four_points_queue_on_a_two_cpu_head_and_the_two_clearly_worse_stop_early(small_head, job_env, run_rft, tiny_model, tmp_path):
    """Four points of 1 CPU on 2 CPUs: two run, two wait in the launcher's queue; every job runs its
    own configuration and reports its result; the two points without the length reward (about
    +0.9 on every short completion) are stopped at the first rung, the better half goes on."""
    sweep_dir = tmp_path / "sweep"
    args = ["trainer.max_steps=6", "trainer.seed=0,1", "+reward.weights.length=1.0,0.0", "model.dtype=float32", "hydra.launcher.early_stop.rungs=[2]"]
    done = run_rft(_sweep(small_head, sweep_dir, *args), job_env, timeout=1500)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    points = SweepState.load(sweep_dir / SWEEP_FILE).points
    _assert_queued_two_at_a_time(small_head, points, output)
    for point in points:
        _assert_ran_its_own_config(point)
    step_2 = [next(row for row in read_metrics(p.run_dir) if row.get("step") == 2 and "reward/mean" in row) for p in points]
    assert len({json.dumps(_computed(row), sort_keys=True) for row in step_2}) == 4  # four configurations, four runs
    worse = [p for p in points if "+reward.weights.length=0.0" in p.overrides]
    better = [p for p in points if p not in worse]
    assert len(worse) == len(better) == 2
    for point in worse:
        assert point.early_stopped and point.status == "STOPPED", point
        rank, reached = map(int, point.rungs["2"]["rank"].split("/"))
        assert point.rungs["2"]["decision"] == "stop" and rank > math.ceil(reached / 2)  # the best half goes on
        assert point.final_metric is not None
    client = small_head.client()
    for point in better:
        assert point.status == "SUCCEEDED" and not point.early_stopped, point
        assert_every_step_moves_and_is_synced(read_metrics(point.run_dir), list(range(1, 7)))
        assert point.rungs["2"].get("decision", "continue") == "continue"
        result = json.loads((Path(point.run_dir) / "result.json").read_text())
        assert point.final_metric == result["final_metric"] and point.metrics == result["metrics"]
        assert point.optimized == "reward/mean (maximize)" == f"{result['optimized']['name']} ({result['optimized']['direction']})"
        assert str(client.get_job_status(point.submission_id).value) == "SUCCEEDED"
        assert "RFT_RESULT " in client.get_job_logs(point.submission_id)  # the metric also reaches remote submitters
    assert max(p.rungs["2"]["value"] for p in worse) < min(p.rungs["2"]["value"] for p in better)
    assert output.count("early stop: point") == 2


def _assert_queued_two_at_a_time(head, points, output: str) -> None:
    assert all(p.demand == {"CPU": 1.0} for p in points)
    assert "2 queued · 2 running" in output  # the live table / log showed the queue
    client = head.client()
    spans = [(client.get_job_info(p.submission_id).start_time, client.get_job_info(p.submission_id).end_time) for p in points]
    assert _max_overlap(spans) <= 2  # never more than fit on 2 CPUs


def _assert_ran_its_own_config(point) -> None:
    """The job's recorded config and overrides hold the point's own seed and length weight."""
    assert point.run_dir == str(Path(point.run_dir).parent / str(point.index))
    recorded = yaml.safe_load((Path(point.run_dir) / ".hydra" / "config.yaml").read_text())
    job_overrides = yaml.safe_load((Path(point.run_dir) / ".hydra" / "overrides.yaml").read_text())
    seed, weight = (next(o.split("=", 1)[1] for o in point.overrides if o.lstrip("+").startswith(key)) for key in ("trainer.seed=", "reward.weights.length="))
    assert recorded["trainer"]["seed"] == int(seed) and recorded["reward"]["weights"]["length"] == float(weight), point
    assert f"trainer.seed={seed}" in job_overrides and f"+reward.weights.length={weight}" in job_overrides, job_overrides


def test_a_real_optuna_study_runs_its_trials_as_ray_jobs(small_head, job_env, run_rft, tiny_model, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the `sweeps` extra is not installed")
    sweep_dir = tmp_path / "study"
    args = [
        "rft.launch", "-m", "--config-dir", "sweeps", "--config-name", "optuna_lr_beta", *TINY_POINT, "trainer.max_steps=2",
        "+reward.weights.length=1.0", "model.dtype=float32", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2",
        f"cluster.address={small_head.url}", f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.poll_s=1",
    ]  # fmt: skip
    done = run_rft(args, job_env, timeout=1500)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    points = SweepState.load(sweep_dir / SWEEP_FILE).points
    assert [p.index for p in points] == [0, 1, 2] and all(p.status == "SUCCEEDED" for p in points)  # two batches
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"algo.lr", "algo.beta"}
    winner = max(points, key=lambda p: p.final_metric)
    assert best["best_value"] == pytest.approx(winner.final_metric)
    assert _trial_lr(winner) == pytest.approx(best["best_params"]["algo.lr"])
    for point in points:  # each trial ran its own sampled values
        recorded = yaml.safe_load((Path(point.run_dir) / ".hydra" / "config.yaml").read_text())
        assert recorded["algo"]["lr"] == pytest.approx(_trial_lr(point))
        assert_every_step_moves_and_is_synced(read_metrics(point.run_dir), [1, 2])
    assert len({_trial_lr(p) for p in points}) == 3


def _trial_lr(point) -> float:
    return float(next(o for o in point.overrides if o.startswith("algo.lr=")).split("=", 1)[1])
