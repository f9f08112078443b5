"""The tiny model evaluated on rollout actors (vLLM on CPU), all tests sharing one session:
every task's ID and OOD splits, two checkpoints compared, and an interrupted evaluation resumed."""

from __future__ import annotations

import json

import pytest

from rft.eval.cli import run_eval
from rft.eval.runner import ALL, RESULT_KEYS

pytestmark = pytest.mark.slow
TASKS = ["counting", "structure", "spatial", "classification", "detection", "grounding"]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


PREDICTION_KEYS = {"task", "model", "checkpoint", "step", "split", "id", "prompt", "completion", "parsed", "reference", "score"}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_on_id_and_ood(task, tmp_path, eval_session, compose_cfg):
    from rft.eval.cli import eval_records
    from rft.tasks.prompting import task_for

    cfg = compose_cfg(tmp_path, f"task={task}")
    starts = eval_session.starts
    run_eval(cfg, tmp_path / "run", session=eval_session)
    assert eval_session.starts <= max(starts, 1), "the actors are reused across tasks"

    records, _ = eval_records(cfg)
    rows = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    predictions = read_jsonl(tmp_path / "run" / "eval" / "predictions.jsonl")
    assert all(set(row) == set(RESULT_KEYS) for row in rows)
    assert all(set(p) == PREDICTION_KEYS for p in predictions)
    for split in ("id", "ood"):
        split_preds = [p for p in predictions if p["split"] == split]
        assert sorted(p["id"] for p in split_preds) == sorted(r.id for r in records[split])
        overall = next(r for r in rows if r["split"] == split and r["subset"] == ALL)
        assert overall["task"] == task and overall["n"] == len(records[split]) == 3
        assert 0.0 <= overall["score"] <= 100.0
        # A completion that cannot be parsed scores 0 and is counted.
        unparsed = [p for p in split_preds if p["parsed"] is None]
        assert overall["n_unparsed"] == len(unparsed)
        assert all(p["score"] == 0.0 for p in unparsed)
        if task == "structure":
            subsets = {r["subset"]: r["n"] for r in rows if r["split"] == split and r["subset"] != ALL}
            assert set(subsets) == {task_for(cfg).subset_of(r) for r in records[split]}
            assert sum(subsets.values()) == overall["n"]
    assert (tmp_path / "run" / "eval" / "results.md").read_text().startswith(f"# Evaluation: {task}")


def test_two_checkpoints_give_a_table_and_a_plot(tmp_path, eval_session, fake_run, tiny_folder, compose_cfg):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_cfg(tmp_path, f"eval.checkpoints=[{tiny_folder}]", f"eval.run={fake_run}", "tracking.sinks=[jsonl,mlflow]", f"tracking.mlflow_uri={uri}")
    run_eval(cfg, tmp_path / "cmp", session=eval_session)
    out = tmp_path / "cmp" / "eval"

    rows = json.loads((out / "results.json").read_text())
    assert [(r["checkpoint"], r["step"]) for r in rows if r["subset"] == ALL and r["split"] == "id"] == [("-", None), ("step_1", 1), ("step_2", 2)]
    table = (out / "results.md").read_text()
    assert "| model | checkpoint | step | id | ood |" in table and "| step_1 | 1 |" in table and "| step_2 | 2 |" in table
    assert (out / "score_vs_step.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The actors really switched weights: the three models answer differently.
    predictions = read_jsonl(out / "predictions.jsonl")
    by_checkpoint = {c: [p["completion"] for p in predictions if p["checkpoint"] == c] for c in ("-", "step_1", "step_2")}
    assert len({tuple(v) for v in by_checkpoint.values()}) == 3

    # One checkpoint evaluated alone answers as it did in the comparison (no stale caches).
    alone = compose_cfg(tmp_path, f"eval.checkpoints=[{fake_run / 'checkpoints' / 'step_1'}]")
    run_eval(alone, tmp_path / "alone", session=eval_session)
    assert [p["completion"] for p in read_jsonl(tmp_path / "alone" / "eval" / "predictions.jsonl")] == by_checkpoint["step_1"]

    run_id = json.loads((tmp_path / "cmp" / "tracking.json").read_text())["mlflow_run_id"]
    client = MlflowClient(tracking_uri=uri)
    assert [m.step for m in client.get_metric_history(run_id, "eval/ood/score")] == [0, 1, 2]
    assert {a.path for a in client.list_artifacts(run_id)} >= {"results.json", "results.md", "score_vs_step.png"}


def test_an_interrupted_evaluation_resumes(tmp_path, eval_session, monkeypatch, compose_cfg):
    cfg = compose_cfg(tmp_path, "task=counting", "eval.limit=4", "eval.batch_size=2")
    generated: list[int] = []
    real_generate = eval_session.generate

    def interrupted(items, sampling):
        if generated:
            raise KeyboardInterrupt("stopped by the user")
        generated.append(len(items))
        return real_generate(items, sampling)

    monkeypatch.setattr(eval_session, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_eval(cfg, tmp_path / "run", session=eval_session)
    journal = tmp_path / "run" / "eval" / "predictions.jsonl"
    assert len(read_jsonl(journal)) == 2
    with open(journal, "a") as f:
        f.write('{"task": "counting", "model": "tin')  # a line torn by the interruption

    generated.clear()

    def counting(items, sampling):
        generated.append(len(items))
        return real_generate(items, sampling)

    monkeypatch.setattr(eval_session, "generate", counting)
    run_eval(cfg, tmp_path / "run", session=eval_session)
    assert sum(generated) == 8 - 2, "only the records the journal lacks are generated"
    predictions = read_jsonl(journal)
    assert len(predictions) == 8 and len({(p["split"], p["id"]) for p in predictions}) == 8
    rows = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert [r["n"] for r in rows if r["subset"] == ALL] == [4, 4]

    generated.clear()
    run_eval(cfg, tmp_path / "run", session=eval_session)
    assert generated == [], "a finished evaluation is not redone"
