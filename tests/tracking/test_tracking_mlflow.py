"""mlflow sink on an embedded SQLite store: read back with MlflowClient; nesting; failures."""

import warnings
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from rft.tracking import Tracker, default_mlflow_uri


def _tracker(run_dir, uri, **kw):
    return Tracker(run_dir, sinks=("jsonl", "mlflow"), mlflow_uri=uri, mlflow_experiment="test", **kw)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_params_and_metrics_read_back(tmp_path, mlflow_uri):
    config = {"algo": {"beta": 0.04, "name": "grpo"}, "long": "v" * 7000}
    config.update({f"k{i}": i for i in range(150)})  # more than one mlflow batch of params
    with _tracker(tmp_path / "run", mlflow_uri, config=config, run_name="counting") as t:
        for step in range(3):
            t.log(step, {"reward/mean": 0.1 * step, "timing/step_s": 2.0, "note": "not a number"})
        run_id = t.mlflow_run_id
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "counting"
    assert run.data.params["algo.beta"] == "0.04" and run.data.params["k149"] == "149"
    assert len(run.data.params["long"]) == 6000
    history = client.get_metric_history(run_id, "reward/mean")
    assert [(m.step, round(m.value, 6)) for m in history] == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert "note" not in run.data.metrics


def test_nested_runs_and_failed_status(tmp_path, mlflow_uri):
    with _tracker(tmp_path / "parent", mlflow_uri, run_name="sweep") as parent, pytest.raises(RuntimeError):  # noqa: SIM117 (the child needs the parent id)
        with _tracker(tmp_path / "child", mlflow_uri, run_name="trial-0", parent_run_id=parent.mlflow_run_id) as child:
            raise RuntimeError("trial crashed")
    client = MlflowClient(tracking_uri=mlflow_uri)
    child_run = client.get_run(child.mlflow_run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.mlflow_run_id
    assert child_run.info.status == "FAILED"
    assert client.get_run(parent.mlflow_run_id).info.status == "FINISHED"


def test_resume_continues_the_same_run(tmp_path, mlflow_uri):
    with _tracker(tmp_path / "run", mlflow_uri, config={"lr": 1}) as first:
        first.log(0, {"x": 1.0})
    with pytest.warns(RuntimeWarning, match="params changed on resume"):
        second = _tracker(tmp_path / "run", mlflow_uri, config={"lr": 2})
    second.log(1, {"x": 2.0})
    second.close()
    assert second.mlflow_run_id == first.mlflow_run_id
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert [m.step for m in client.get_metric_history(first.mlflow_run_id, "x")] == [0, 1]
    assert client.get_run(first.mlflow_run_id).data.params["lr"] == "1"


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_artifacts_go_beside_the_database(tmp_path, mlflow_uri):
    with _tracker(tmp_path / "run", mlflow_uri) as t:
        (tmp_path / "run" / "report.png").write_bytes(b"png")
        (tmp_path / "run" / "plots").mkdir()
        (tmp_path / "run" / "plots" / "a.png").write_bytes(b"png")
        t.log_artifact(tmp_path / "run" / "report.png")
        t.log_artifact(tmp_path / "run" / "plots")
    store = Path(mlflow_uri.removeprefix("sqlite:///")).parent / "mlartifacts" / "test"
    assert list(store.rglob(f"{t.mlflow_run_id}/**/report.png"))
    assert list(store.rglob(f"{t.mlflow_run_id}/**/plots/a.png"))


@pytest.mark.parametrize("kind", ["under_a_file", "unknown_scheme"])
def test_broken_uri_warns_and_jsonl_still_written(tmp_path, kind):
    (tmp_path / "plain_file").write_text("")
    bad = {"under_a_file": f"sqlite:///{tmp_path / 'plain_file' / 'mlflow.db'}", "unknown_scheme": "nosuch://x"}[kind]
    with pytest.warns(RuntimeWarning, match="tracking sink 'mlflow' failed"):
        t = _tracker(tmp_path / "run", bad)
    assert t.active_sinks == ["jsonl"] and t.mlflow_run_id is None
    t.log(0, {"x": 1.0})
    t.close()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


def test_sink_failing_mid_run_warns_once(tmp_path, mlflow_uri):
    t = _tracker(tmp_path / "run", mlflow_uri)
    sink = next(s for s in t._optional if s.name == "mlflow")

    def locked(*args, **kwargs):
        raise RuntimeError("database is locked")

    sink.client.log_batch = locked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            t.log(step, {"x": float(step)})
    assert len([w for w in caught if "database is locked" in str(w.message)]) == 1
    t.close()
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 3


def test_default_uri(monkeypatch, tmp_path):
    assert default_mlflow_uri() == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert default_mlflow_uri() == "http://tracking:5000"
