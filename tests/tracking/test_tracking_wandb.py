"""wandb sink: offline run files under the run dir; resume continues the same run id."""

import json

import pytest

from rft.tracking import Tracker

# a failing sink only warns; here any such warning fails the test
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def test_offline_run_dir_created_and_resumed(tmp_path):
    run = tmp_path / "run"
    with Tracker(run, sinks=("jsonl", "wandb"), config={"algo": {"beta": 0.04}}, run_name="w") as t:
        assert t.active_sinks == ["jsonl", "wandb"]
        t.log(0, {"reward/mean": 0.5, "note": "skipped by wandb"})
        t.log_params({"extra": "1"})
        (run / "plots").mkdir()
        (run / "plots" / "a.png").write_bytes(b"png")
        t.log_artifact(run / "plots")
        t.log_artifact(run / "plots" / "a.png")
        first_id = t.wandb_run_id
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert list(offline[0].rglob("plots/a.png"))
    assert json.loads((run / "tracking.json").read_text())["wandb_run_id"] == first_id
    with Tracker(run, sinks=("jsonl", "wandb")) as t:
        t.log(1, {"reward/mean": 0.6})
        assert t.wandb_run_id == first_id
