"""What a sweep point asks of the cluster, whether it fits, and successive halving over metrics
files (no Ray: demands from composed configs, loads from dashboard payloads, metrics written here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rft_test_helpers import compose

from rft.jobs.early_stop import EarlyStopConf, EarlyStopper, value_at
from rft.jobs.resources import ClusterLoad, fits, parse_cluster_status, point_demand, short, too_large_message
from rft.jobs.sweep import QUEUED, Point, SweepState, counts, status_table


def test_an_rl_point_needs_its_learner_and_rollout_bundles_and_no_driver_cpu_by_default():
    cfg = compose(["stage=rl"])
    assert cfg.cluster.job_cpus == 0.0
    assert point_demand(cfg) == {"CPU": 2.0}
    assert point_demand(compose(["stage=rl", "cluster.job_cpus=1", "learner.num_workers=2"])) == {"CPU": 4.0}
    assert point_demand(compose(["stage=rl", "learner.separate_reference=true"])) == {"CPU": 3.0}  # the reference's bundle
    assert point_demand(compose(["stage=rl", "learner.separate_reference=true", "algo.beta=0"])) == {"CPU": 2.0}  # no reference


def test_gpu_bundles_and_colocation_are_counted_as_placement_builds_them():
    cfg = compose(["stage=rl", "learner.gpus_per_worker=1", "rollout.gpus_per_worker=1", "cluster.job_gpus=0"])
    assert point_demand(cfg) == {"CPU": 2.0, "GPU": 2.0}
    colocated = compose(["stage=rl", "cluster.colocate=true", "learner.gpus_per_worker=0.5", "rollout.gpus_per_worker=0.5"])
    assert point_demand(colocated) == {"CPU": 2.0, "GPU": 1.0}


def test_an_sft_point_needs_the_larger_of_its_learner_and_its_evaluation_phase():
    assert point_demand(compose(["stage=ans_sft", "learner.num_workers=2"])) == {"CPU": 2.0}


def test_a_point_larger_than_the_cluster_gets_one_line_naming_both():
    cfg = compose(["stage=rl", "learner.num_workers=3"])
    message = too_large_message(point_demand(cfg), {"CPU": 2.0}, cfg)
    assert "\n" not in message
    assert message.startswith("needs 4 CPU") and "the whole cluster has 2 CPU" in message
    assert not fits(point_demand(cfg), {"CPU": 2.0}) and fits({"CPU": 2.0}, {"CPU": 2.0})
    assert not fits({"CPU": 1.0, "GPU": 1.0}, {"CPU": 8.0})  # no GPU at all


def test_free_takes_the_larger_of_reported_use_and_this_sweeps_own_unfinished_jobs():
    load = ClusterLoad(totals={"CPU": 4.0}, used={"CPU": 1.0})
    assert load.free([{"CPU": 2.0}]) == {"CPU": 2.0}  # just submitted: not reserved yet
    assert ClusterLoad({"CPU": 4.0}, {"CPU": 3.0}).free([{"CPU": 2.0}]) == {"CPU": 1.0}  # another job holds 1
    assert load.free() == {"CPU": 3.0}


def test_the_dashboards_load_report_is_read():
    usage = {"CPU": [1.0, 2.0], "memory": [0, 9e9], "objectStoreMemory": [0, 1e9], "node:127.0.0.1": [0, 1]}
    payload = {"result": True, "data": {"clusterStatus": {"loadMetricsReport": {"usage": usage}}}}  # as Ray 2.60's dashboard answers
    load = parse_cluster_status(payload)
    assert load is not None and load.totals == {"CPU": 2.0} and load.used == {"CPU": 1.0}
    assert parse_cluster_status({"data": {"cluster_status": None}}) is None
    assert short({"GPU": 1.0, "CPU": 2.5}) == "2.5 CPU, 1 GPU"


def _write_metrics(run_dir: Path, rewards: list[float]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"step": step, "reward/mean": value}) for step, value in enumerate(rewards, start=1)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 9, "rew')  # a torn last line


def _running(index: int, run_dir: Path) -> Point:
    return Point(index, [f"x={index}"], str(run_dir), submission_id=f"job{index}", status="RUNNING", demand={"CPU": 1.0})


def test_successive_halving_stops_the_points_that_fall_behind(tmp_path):
    good, bad = [0.5, 0.6, 0.7], [0.1, 0.1, 0.1]
    points = [_running(i, tmp_path / str(i)) for i in range(4)]
    state = SweepState(str(tmp_path), "http://head", points)
    stopper = EarlyStopper(EarlyStopConf(rungs=[2], min_points=3), ("reward/mean",), maximize=True)
    stopped: list[int] = []
    stop = lambda p: stopped.append(p.index)

    for index, rewards in enumerate([good, [0.4, 0.55]]):
        _write_metrics(tmp_path / str(index), rewards)
    stopper.check(state, stop, print)
    assert stopped == [] and all("decision" not in p.rungs.get("2", {}) for p in points)  # 2 values < min_points

    _write_metrics(tmp_path / "2", bad)
    points[0].status = "SUCCEEDED"  # an ended point still counts at the rung
    stopper.check(state, stop, print)
    assert stopped == [2]
    assert points[2].early_stopped and points[2].rungs["2"] == {"value": 0.1, "rank": "3/3", "decision": "stop"}
    assert points[2].final_metric == 0.1
    assert points[1].rungs["2"]["decision"] == "continue" and "decision" not in points[0].rungs["2"]

    _write_metrics(tmp_path / "3", bad[:2])
    stopper.check(state, stop, print)
    assert stopped == [2, 3] and points[3].rungs["2"]["rank"] == "4/4"


def test_minimize_and_sparse_metrics(tmp_path):
    rows = [{"step": 1, "loss": 3.0}, {"step": 2}, {"step": 5, "eval/loss": 1.0}]
    assert value_at(rows, ("eval/loss",), 3) == 1.0 and value_at(rows, ("eval/loss",), 6) is None
    points = [_running(i, tmp_path / str(i)) for i in range(2)]
    for index, losses in enumerate([[1.0, 0.5], [1.0, 2.0]]):
        (tmp_path / str(index)).mkdir()
        (tmp_path / str(index) / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in enumerate(losses, 1)))
    stopped: list[int] = []
    EarlyStopper(EarlyStopConf(rungs=[2]), ("loss",), maximize=False).check(SweepState(str(tmp_path), "h", points), lambda p: stopped.append(p.index), print)
    assert stopped == [1]


def test_the_table_shows_the_queue_and_what_each_point_needs(tmp_path):
    from rich.console import Console

    points = [Point(0, ["a=1"], "r0", submission_id="j0", status="RUNNING", demand={"CPU": 2.0}), Point(1, ["a=2"], "r1", demand={"CPU": 2.0})]
    state = SweepState(str(tmp_path), "http://head", points)
    assert points[1].status == QUEUED and counts(state) == "1 queued · 1 running · 0 finished"
    console = Console(record=True, width=200)
    console.print(status_table(state))
    text = console.export_text()
    assert "QUEUED" in text and "2 CPU" in text and "1 queued" in text


@pytest.mark.parametrize("field", ["demand", "rungs", "early_stopped"])
def test_sweep_json_round_trips_the_new_fields(tmp_path, field):
    state = SweepState(str(tmp_path), "h", [Point(0, [], "r", demand={"CPU": 1.0}, rungs={"2": {"value": 1.0}}, early_stopped=True)])
    state.save()
    assert getattr(SweepState.load(state.path).points[0], field) == getattr(state.points[0], field)


def test_a_placement_timeout_says_whether_the_cluster_is_too_small_or_busy():
    from rft.placement.cluster import _unplaced_message

    too_small = _unplaced_message([{"CPU": 1.0}] * 3, 60, {"CPU": 2.0, "memory": 1e9}, {"CPU": 2.0})
    assert "need {'CPU': 3.0} but the whole cluster has {'CPU': 2.0}" in too_small and "add nodes" in too_small
    busy = _unplaced_message([{"CPU": 1.0}] * 2, 60, {"CPU": 2.0}, {"CPU": 0.0})
    assert "only {'CPU': 0.0} free" in busy and "raise cluster.placement_timeout_s" in busy and "add nodes" not in busy
