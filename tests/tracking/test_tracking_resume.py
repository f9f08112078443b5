"""Resume hygiene: a run killed after logging step 5 and resumed from its step-4 checkpoint
records every step once, in metrics.jsonl (and so in the report) and in mlflow."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from rft.tracking import Tracker


def _tracker(run_dir, uri, **kw) -> Tracker:
    return Tracker(run_dir, sinks=("jsonl", "mlflow"), mlflow_uri=uri, mlflow_experiment="resume", run_name="rl", **kw)


def _killed_after_step_five(run_dir, uri) -> str:
    first = _tracker(run_dir, uri, config={"lr": 1}, tags={"task": "counting"})
    for step in range(1, 6):
        first.log(step, {"reward/mean": step / 10})
    first.log_artifact(run_dir / "metrics.jsonl")
    return first.mlflow_run_id  # never closed: the driver died


def _history(client, run_id, key="reward/mean") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_resumed_steps_are_recorded_once(tmp_path, mlflow_uri):
    run_dir = tmp_path / "run"
    old_id = _killed_after_step_five(run_dir, mlflow_uri)
    with _tracker(run_dir, mlflow_uri, config={"lr": 1}, resume_step=4) as resumed:
        resumed.log(5, {"reward/mean": 0.55})  # step 5 redone, with another value
        resumed.log(6, {"reward/mean": 0.6})
        new_id = resumed.mlflow_run_id

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["reward/mean"]) for r in rows] == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.55), (6, 0.6)]

    client = MlflowClient(tracking_uri=mlflow_uri)
    assert new_id != old_id and json.loads((run_dir / "tracking.json").read_text())["mlflow_run_id"] == new_id
    assert _history(client, new_id) == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.55), (6, 0.6)]
    new, old = client.get_run(new_id), client.get_run(old_id)
    assert old.info.lifecycle_stage == "deleted" and new.info.status == "FINISHED"
    assert new.data.tags["rft.supersedes"] == old_id and new.data.tags["task"] == "counting"
    assert new.data.params["lr"] == "1" and new.info.run_name == "rl" and new.info.start_time == old.info.start_time
    assert [a.path for a in client.list_artifacts(new_id)] == ["metrics.jsonl"]


def test_resume_without_later_points_continues_the_same_run(tmp_path, mlflow_uri):
    run_dir = tmp_path / "run"
    old_id = _killed_after_step_five(run_dir, mlflow_uri)
    with _tracker(run_dir, mlflow_uri, resume_step=5) as resumed:
        resumed.log(6, {"reward/mean": 0.6})
    assert resumed.mlflow_run_id == old_id
    assert [s for s, _ in _history(MlflowClient(tracking_uri=mlflow_uri), old_id)] == [1, 2, 3, 4, 5, 6]


def test_starting_over_drops_every_row_and_opens_a_new_run(tmp_path, mlflow_uri):
    run_dir = tmp_path / "run"
    old_id = _killed_after_step_five(run_dir, mlflow_uri)
    with _tracker(run_dir, mlflow_uri, resume_step=-1) as fresh:
        fresh.log(1, {"reward/mean": 0.7})
    assert fresh.mlflow_run_id != old_id
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1]
    assert _history(MlflowClient(tracking_uri=mlflow_uri), fresh.mlflow_run_id) == [(1, 0.7)]
