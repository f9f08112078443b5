"""Evaluation without Ray: which folders are evaluated, the journal, the report, scoring, and the
whole command with a scripted session standing in for the rollout actors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rft.eval.cli import cli_args, run_eval
from rft.eval.journal import EvalSettingsError, Journal
from rft.eval.report import markdown, plot_scores
from rft.eval.runner import ALL, RESULT_KEYS, result_rows
from rft.eval.targets import PLAIN, arch_key, eval_targets, expand_entry
from rft.models.loading import ModelNotFoundError

REPO = Path(__file__).resolve().parents[2]


def _model_folder(path: Path, hidden: int = 8) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl", "text_config": {"hidden_size": hidden}, "transformers_version": "5.0"}))
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- targets --------------------------------------------------------------------------------


def test_a_reason_rft_run_expands_to_its_checkpoints_by_stage_and_step(tmp_path):
    run = tmp_path / "run"
    for stage, step in [("stage2_rl", 10), ("stage1_sft", 4), ("stage2_rl", 2)]:
        _model_folder(run / stage / "checkpoints" / f"step_{step}" / "hf")
    _model_folder(run / "stage2_rl" / "checkpoints" / "step_12.tmp" / "hf")  # an unfinished save
    (run / "stage2_rl" / "checkpoints" / "step_14" / "hf").mkdir(parents=True)  # no model in it
    targets = expand_entry("eval.run", str(run))
    assert [(t.checkpoint, t.step, t.stage) for t in targets] == [
        ("stage1_sft/step_4", 4, "stage1_sft"),
        ("stage2_rl/step_2", 2, "stage2_rl"),
        ("stage2_rl/step_10", 10, "stage2_rl"),
    ]
    assert all(t.model == str(run) and Path(t.folder).name == "hf" for t in targets)


def test_checkpoint_folders_and_plain_models_are_labelled(tmp_path):
    step_dir = tmp_path / "run" / "checkpoints" / "step_7"
    _model_folder(step_dir / "hf")
    plain = _model_folder(tmp_path / "my-model")
    assert [(t.checkpoint, t.step) for t in expand_entry("k", str(step_dir))] == [("step_7", 7)]
    assert [(t.checkpoint, t.step) for t in expand_entry("k", str(step_dir / "hf"))] == [("step_7", 7)]
    assert [(t.checkpoint, t.step, t.folder) for t in expand_entry("k", str(plain))] == [(PLAIN, None, str(plain.resolve()))]


def test_a_folder_without_a_model_is_named_in_the_error(tmp_path):
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"eval\.run=.*not_a_model.*no config\.json.*checkpoints/step_<N>/hf"):
        expand_entry("eval.run", str(empty))
    with pytest.raises(ModelNotFoundError, match=r"eval\.checkpoints\[0\]=/no/such/folder: folder /no/such/folder does not exist"):
        expand_entry("eval.checkpoints[0]", "/no/such/folder")


def test_checkpoints_and_run_replace_model_path(tmp_path, compose_cfg):
    a, b = _model_folder(tmp_path / "a"), _model_folder(tmp_path / "b")
    cfg = compose_cfg(tmp_path, f"eval.checkpoints=[{a},{b},{a}]")
    assert [t.folder for t in eval_targets(cfg)] == [str(a.resolve()), str(b.resolve())]
    assert [t.model for t in eval_targets(compose_cfg(tmp_path, f"model.path={a}"))] == [str(a)]


def test_arch_key_ignores_what_a_resave_changes(tmp_path):
    a = _model_folder(tmp_path / "a")
    b = _model_folder(tmp_path / "b")
    config = json.loads((b / "config.json").read_text())
    config.update(transformers_version="5.9", dtype="bfloat16")
    (b / "config.json").write_text(json.dumps(config))
    assert arch_key(str(a)) == arch_key(str(b))
    assert arch_key(str(a)) != arch_key(str(_model_folder(tmp_path / "c", hidden=16)))


def test_the_command_names_a_missing_model_before_ray_starts(tmp_path):
    env = {**os.environ, "RFT_OUTPUTS": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rft.eval", f"model.path={tmp_path}/missing_model", "tracking.sinks=[jsonl]"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert f"folder {tmp_path}/missing_model does not exist" in proc.stderr
    assert "Ray" not in proc.stdout + proc.stderr
    assert list((tmp_path / "eval").iterdir())[0].name.endswith("_counting"), "run folder: <outputs>/eval/<time>_<task>"


def test_cli_args_add_the_run_folder_and_accept_optional_keys():
    args = cli_args(["task=structure", "eval.run=/r", "eval.batch_size=8"])
    assert args[0] == "task=structure"
    assert any(a.endswith("eval.run=/r") for a in args) and any(a.endswith("eval.batch_size=8") for a in args)
    assert "hydra.run.dir=${outputs_root}/eval/${now:%Y-%m-%d_%H-%M-%S}_${task.name}" in args
    assert not any(a.startswith("hydra.run.dir") for a in cli_args(["hydra.run.dir=/x"])[1:])


# ---- journal, scoring, report --------------------------------------------------------------


def test_the_journal_drops_a_torn_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "predictions.jsonl"
    journal = Journal(path)
    journal.append([{"model": "m", "checkpoint": "-", "split": "id", "id": str(i), "completion": "x"} for i in range(2)])
    with open(path, "a") as f:
        f.write('{"model": "m", "checkpoint": "-", "spl')
    again = Journal(path)
    assert len(again) == 2 and again.done("m", "-", "id", "1") and not again.done("m", "-", "ood", "1")
    again.append([{"model": "m", "checkpoint": "-", "split": "id", "id": "2", "completion": "y"}])
    assert len(_read_jsonl(path)) == 3


def test_unparseable_completions_score_zero_and_are_counted():
    from rft.data.records import Record
    from rft.tasks import get_task

    task = get_task("structure")
    records = [
        Record(id="a", images=[], problem="Pick.\nA. 1\nB. 2", answer="B", meta={"subset": "choice"}),
        Record(id="b", images=[], problem="Area?", answer="10", meta={"subset": "non_choice"}),
        Record(id="c", images=[], problem="Area?", answer="3", meta={"subset": "non_choice"}),
    ]
    texts = ["<think>t</think><answer>B</answer>", "", "<answer>   </answer>"]
    label = {"task": "structure", "model": "m", "checkpoint": "-", "step": None, "split": "id"}
    result, rows = result_rows(task, records, texts, {}, label)
    assert result.per_item == [1.0, 0.0, 0.0]
    assert all(set(row) == set(RESULT_KEYS) for row in rows)
    by_subset = {row["subset"]: row for row in rows}
    assert by_subset[ALL]["n_unparsed"] == 2 and by_subset[ALL]["score"] == pytest.approx(100 / 3)
    assert (by_subset["choice"]["score"], by_subset["choice"]["format"]) == (100.0, 100.0)
    assert (by_subset["non_choice"]["n"], by_subset["non_choice"]["n_unparsed"], by_subset["non_choice"]["score"]) == (2, 2, 0.0)


def _rows():
    rows = []
    for checkpoint, step, score in [("stage1_sft/step_4", 4, 40.0), ("stage2_rl/step_2", 2, 55.0), ("stage2_rl/step_8", 8, 70.0)]:
        for split, delta in [("id", 0.0), ("ood", -20.0)]:
            rows.append(
                {
                    "task": "counting",
                    "model": "/runs/r",
                    "checkpoint": checkpoint,
                    "step": step,
                    "split": split,
                    "subset": ALL,
                    "score": score + delta,
                    "n": 10,
                    "n_unparsed": 1,
                    "format": 90.0,
                }
            )
    return rows


def test_markdown_compares_checkpoints_by_split():
    text = markdown(_rows())
    assert "| model | checkpoint | step | id | ood |" in text
    assert "| /runs/r | stage2_rl/step_8 | 8 | 70.0 | 50.0 |" in text
    assert "| /runs/r | stage1_sft/step_4 | 4 | ood | all | 20.0 | 10 | 1 | 90.0 |" in text


def test_plot_draws_score_against_step(tmp_path):
    out = plot_scores(_rows(), tmp_path / "plot.png")
    assert out is not None and out.read_bytes()[:4] == b"\x89PNG"
    assert plot_scores([{**r, "step": None} for r in _rows()], tmp_path / "none.png") is None


# ---- the command with a scripted session ---------------------------------------------------


class ScriptedSession:
    """Stands in for the rollout actors: answers the even records right, the odd ones with
    nothing, and records what it was asked."""

    def __init__(self, folder: str):
        from rft.models.loading import load_processor

        self.processor = load_processor(folder)
        self.used: list[str] = []
        self.generated: list[str] = []

    def use(self, target, cfg) -> None:
        self.used.append(target.checkpoint)

    def generate(self, items, sampling) -> list[str]:
        self.generated += [item.uid for item in items]
        return [f"<think>t</think><answer>{item.solution}</answer>" if int(item.uid[-1]) % 2 == 0 else "" for item in items]


@pytest.fixture
def scripted(tiny_folder):
    return ScriptedSession(tiny_folder)


def test_the_command_scores_from_the_journal_and_resumes(tmp_path, compose_cfg, scripted):
    cfg = compose_cfg(tmp_path, "task=counting", "data.synth_n_test=8", "eval.limit=4", "eval.batch_size=3")
    score = run_eval(cfg, tmp_path / "run", session=scripted)
    out = tmp_path / "run" / "eval"
    rows = json.loads((out / "results.json").read_text())
    assert [(r["split"], r["score"], r["n"], r["n_unparsed"]) for r in rows] == [("id", 50.0, 4, 2), ("ood", 50.0, 4, 2)]
    assert score == 50.0 and len(scripted.generated) == 8
    predictions = _read_jsonl(out / "predictions.jsonl")
    assert [p["score"] for p in predictions if p["split"] == "id"] == [1.0, 0.0, 1.0, 0.0]
    assert all(p["prompt"].startswith("<|im_start|>") and p["reference"] for p in predictions)
    metrics = _read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert metrics[0]["eval/id/score"] == 50.0 and metrics[0]["eval/ood/n_unparsed"] == 2

    scripted.generated.clear()
    run_eval(compose_cfg(tmp_path, "task=counting", "data.synth_n_test=8", "eval.limit=6"), tmp_path / "run", session=scripted)
    assert sorted(scripted.generated) == ["counting-test_id-00004", "counting-test_id-00005", "counting-test_ood-00004", "counting-test_ood-00005"]
    assert [r["n"] for r in json.loads((out / "results.json").read_text())] == [6, 6]


def test_resuming_with_other_sampling_is_refused(tmp_path, compose_cfg, scripted):
    run_eval(compose_cfg(tmp_path, "task=counting", "eval.limit=2"), tmp_path / "run", session=scripted)
    with pytest.raises(EvalSettingsError, match=r"sampling.*'temperature': 0\.1.*'temperature': 0\.7"):
        run_eval(compose_cfg(tmp_path, "task=counting", "eval.limit=2", "eval.temperature=0.7"), tmp_path / "run", session=scripted)


def test_evaluate_splits_keeps_the_trainers_contract(tmp_path, compose_cfg, scripted):
    """The RL trainer calls `evaluate_splits` every `trainer.eval_every` steps."""
    from rft.data.splits import load_data
    from rft.eval.runner import evaluate_splits
    from rft.tasks.prompting import task_for
    from rft.types import Completion

    class Rollout:  # the RolloutGroup interface: completions come back grouped, out of order
        def generate(self, items, sampling, with_rewards=True):
            texts = scripted.generate(items, sampling)
            return [Completion(item.group, 0, [], text, [], "stop") for item, text in reversed(list(zip(items, texts)))], {}

    cfg = compose_cfg(tmp_path, "task=counting", "eval.limit=4")
    metrics = evaluate_splits(cfg, task_for(cfg), scripted.processor, Rollout(), load_data(cfg), tmp_path / "eval" / "step_5")
    assert metrics == {f"eval/{s}/{k}": v for s in ("id", "ood") for k, v in (("score", 50.0), ("format", 50.0), ("n_unparsed", 2.0))}
    rows = json.loads((tmp_path / "eval" / "step_5" / "results.json").read_text())
    assert {(r["checkpoint"], r["step"]) for r in rows} == {("step_5", 5)}
    assert len(_read_jsonl(tmp_path / "eval" / "step_5" / "predictions.jsonl")) == 8


def test_the_visual_rft_preset_is_greedy_with_1024_tokens():
    from hydra import compose, initialize_config_dir

    from rft.eval.runner import eval_sampling
    from rft.paths import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        # A real model: the embedded demo shortens generation on purpose.
        seeds = eval_sampling(compose(config_name="config", overrides=["model=qwen2vl_7b"]), seed=0)
        visual = eval_sampling(compose(config_name="config", overrides=["model=qwen2vl_7b", "eval=visual_rft"]), seed=0)
    assert (seeds.temperature, seeds.top_p, seeds.top_k, seeds.max_tokens, seeds.greedy) == (0.1, 0.9, 50, 768, False)
    assert (visual.max_tokens, visual.greedy) == (1024, True)
