"""metrics.jsonl and params.json: content, flushing, resume, torn lines; config flattening."""

import dataclasses
import json

import pytest
import torch
from omegaconf import OmegaConf

from rft.tracking import Tracker, flatten_config, mlflow_key, read_metrics


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_rows_are_written_and_flushed_per_call(tmp_path):
    tracker = Tracker(tmp_path / "run", sinks=("jsonl",))
    tracker.log(1, {"reward/mean": 0.5, "kl": torch.tensor(0.25), "ok": True, "note": "text"})
    rows = _rows(tmp_path / "run")  # readable before close
    assert len(rows) == 1
    assert rows[0]["step"] == 1 and rows[0]["reward/mean"] == 0.5 and rows[0]["kl"] == 0.25
    assert rows[0]["ok"] == 1.0 and rows[0]["note"] == "text" and "wall_time" in rows[0]
    tracker.log(2, {"reward/mean": float("nan")})
    tracker.close()
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 2


def test_resume_appends_and_resume_step_trims(tmp_path):
    run = tmp_path / "run"
    with Tracker(run, sinks=("jsonl",)) as t:
        for step in range(5):
            t.log(step, {"x": step})
    with Tracker(run, sinks=("jsonl",)) as t:
        t.log(5, {"x": 5})
    assert [r["step"] for r in _rows(run)] == [0, 1, 2, 3, 4, 5]
    with Tracker(run, sinks=("jsonl",), resume_step=2) as t:  # resumed from the step-2 checkpoint
        t.log(3, {"x": 30})
    assert [(r["step"], r["x"]) for r in _rows(run)] == [(0, 0), (1, 1), (2, 2), (3, 30)]


def test_torn_last_line_does_not_swallow_next_row(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0, "x": 1}\n{"step": 1, "x"')
    with Tracker(run, sinks=("jsonl",)) as t:
        t.log(2, {"x": 3})
    with pytest.warns(RuntimeWarning, match="not JSON"):
        rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 2]


def test_params_json_holds_flattened_config(tmp_path):
    with Tracker(tmp_path / "run", sinks=("jsonl",), config={"algo": {"beta": 0.04}, "tags": [1, 2]}) as t:
        t.log_params({"extra": 3})
    params = json.loads((tmp_path / "run" / "params.json").read_text())
    assert params == {"algo.beta": "0.04", "tags": "[1, 2]", "extra": "3"}


def test_artifact_outside_run_dir_is_copied_in(tmp_path):
    src = tmp_path / "elsewhere.txt"
    src.write_text("hello")
    with Tracker(tmp_path / "run", sinks=("jsonl",)) as t:
        t.log_artifact(src)
        with pytest.raises(FileNotFoundError):
            t.log_artifact(tmp_path / "missing.txt")
    assert (tmp_path / "run" / "artifacts" / "elsewhere.txt").read_text() == "hello"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown tracking sinks"):
        Tracker(tmp_path / "run", sinks=("jsonl", "tensorboard"))
    t = Tracker(tmp_path / "run", sinks=("jsonl",))
    with pytest.raises(ValueError, match="status"):
        t.close("done")
    t.close("finished")
    t.close()  # idempotent


def test_context_manager_propagates_errors(tmp_path):
    with pytest.raises(ZeroDivisionError), Tracker(tmp_path / "run", sinks=("jsonl",)) as t:
        t.log(0, {"x": 1})
        1 / 0  # noqa: B018 (the error under test)
    assert len(_rows(tmp_path / "run")) == 1


@dataclasses.dataclass
class _Cfg:
    lr: float = 1e-6
    sizes: tuple = (1, 2)


def test_flatten_config_kinds():
    nested = {"a": {"b": {"c": 1}, "d": None, "e": []}, "f": "x", "g": {}}
    assert flatten_config(nested) == {"a.b.c": "1", "a.d": "None", "a.e": "[]", "f": "x", "g": "{}"}
    omega = OmegaConf.create({"model": {"name": "${oc.env:HOME,h}", "lr": 1e-6}, "l": [1, {"k": 2}]})
    flat = flatten_config(omega)
    assert flat["model.lr"] == "1e-06" and flat["l"] == '[1, {"k": 2}]' and "${" not in flat["model.name"]
    assert flatten_config(_Cfg()) == {"lr": "1e-06", "sizes": "[1, 2]"}
    assert flatten_config(None) == {}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("reward/mean", "reward/mean"),
        ("eval/count id/score", "eval/count id/score"),
        ("a//b/", "a/b"),
        ("/x", "x"),
        ("bad name!", "bad name_"),
        ("a/../b", "a/__/b"),
        ("x" * 300, "x" * 250),
    ],
)
def test_mlflow_key(name, expected):
    assert mlflow_key(name) == expected
