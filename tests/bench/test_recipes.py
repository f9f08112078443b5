"""`python -m rft.bench recipes` without running a job: every method point composes with the
project's Hydra config (for real, and through the `ray_jobs` launcher's dry run), and results
written in the real format (`rft.tracking.result.write_result`) land in the right table cells."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from rft.bench import recipes
from rft.jobs.compose import compose_run
from rft.tracking.result import RunResult, write_result

REPO = Path(__file__).resolve().parents[2]
TASKS, SEEDS = ["counting", "structure"], [0, 1]


@pytest.mark.parametrize("recipe", recipes.recipes(extra=True), ids=lambda r: r.name)
def test_every_point_composes(recipe):
    for task in TASKS:
        for seed in SEEDS:
            cfg, _ = compose_run([*recipes.point_overrides(recipe, task, seed), recipes.SUBDIR_OVERRIDE])
            stage = "ans_sft" if recipe.name == "ans_sft" else "reason_rft"
            assert (cfg.task.name, cfg.trainer.seed, cfg.data.synth_seed, cfg.stage.name) == (task, seed, seed, stage)
            assert cfg.hydra.sweep.subdir == recipes.point_dir(Path("/x"), recipe, task, seed).name
            if recipe.name == "from_base":
                assert (cfg.sft.lr, cfg.sft.max_steps, cfg.stage.rl_data) == (0.0, 1, "all")
            if recipe.name in ("dr_grpo", "dapo"):
                assert cfg.algo.name == recipe.name


def test_the_launcher_dry_run_puts_each_point_in_its_folder(tmp_path):
    recipe = recipes.RECIPES[-1]
    command = recipes.sweep_command(recipe, TASKS, SEEDS, tmp_path, dry_run=True)
    env = {**os.environ, "RFT_OUTPUTS": str(tmp_path / "outputs")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    folders = [line.split("run folder:")[1].strip() for line in (done.stdout + done.stderr).splitlines() if "run folder:" in line]
    assert sorted(folders) == sorted(str(recipes.point_dir(tmp_path, recipe, t, s)) for t in TASKS for s in SEEDS)


def _evals(id_acc: float, ood_acc: float) -> dict[str, float]:
    return {"eval/id/score": id_acc, "eval/id/format": 100.0, "eval/ood/score": ood_acc, "eval/ood/format": 90.0}


def _write_point(out: Path, recipe, task: str, seed: int, before: dict, after: dict) -> None:
    run_dir = recipes.point_dir(out, recipe, task, seed)
    run_dir.mkdir(parents=True)
    stage2 = RunResult("rl", metrics={"reward/mean": 1.5}, eval_before=before, eval_after=after)
    write_result(run_dir, RunResult("reason_rft", metrics=dict(stage2.metrics), stage1=RunResult("cot_sft"), stage2=stage2))


def _write_ans_point(out: Path, task: str, seed: int, id_acc: float, ood_acc: float) -> Path:
    """A finished ans_sft point and its final evaluation, as rft.eval writes it (two checkpoints: the last counts)."""
    from rft.eval.report import write_results

    point = recipes.point_dir(out, recipes.ANS_SFT, task, seed)
    point.mkdir(parents=True)
    write_result(point, RunResult("ans_sft", metrics={"loss": 0.1}, checkpoint=str(point / "checkpoints" / "step_9")))
    rows = []
    for step, (id_score, ood_score) in ((5, (0.0, 0.0)), (9, (id_acc, ood_acc))):
        for split, score in (("id", id_score), ("ood", ood_score)):
            label = {"task": task, "model": str(point), "checkpoint": f"step_{step}", "step": step, "split": split}
            rows.append({**label, "subset": "all", "score": score, "n": 200, "n_unparsed": 0, "format": 0.0})
            rows.append({**label, "subset": "2", "score": 1.0, "n": 60, "n_unparsed": 0, "format": 0.0})
    write_results(point / recipes.FINAL / "eval", rows)
    return point


def test_the_ans_sft_evaluation_composes_with_the_points_overrides(tmp_path):
    point = recipes.point_dir(tmp_path, recipes.ANS_SFT, "counting", 1)
    assert recipes.eval_command(point, recipes.ANS_SFT, "counting", 1) is None  # not run yet
    _write_ans_point(tmp_path, "counting", 1, 40.0, 30.0)
    command = recipes.eval_command(point, recipes.ANS_SFT, "counting", 1, ["sft.max_steps=3"])
    assert command[1:3] == ["-m", "rft.eval"] and command[-1] == f"hydra.run.dir={point / recipes.FINAL}"
    cfg, _ = compose_run([arg for arg in command[3:] if not arg.startswith("hydra.")])
    assert (cfg.stage.name, cfg.task.name, cfg.data.synth_seed, cfg.sft.max_steps) == ("ans_sft", "counting", 1, 3)
    assert cfg.model.path == str(point / "checkpoints" / "step_9" / "hf")


def test_results_land_in_the_right_cells(tmp_path):
    base, ans, rft = recipes.RECIPES
    assert ans is recipes.ANS_SFT
    _write_ans_point(tmp_path, "counting", 0, 45.0, 35.0)  # counting seed 1: not evaluated
    for seed in SEEDS:
        _write_point(tmp_path, base, "counting", seed, _evals(0.0, 0.0), _evals(30.0 + seed, 20.0))
        _write_point(tmp_path, rft, "counting", seed, _evals(80.0, 60.0 + seed), _evals(82.0, 70.0 + 3 * seed))
    _write_point(tmp_path, rft, "structure", 0, _evals(50.0, 40.0), _evals(55.0, 45.0))  # structure seed 1 is missing

    payload = recipes.report(tmp_path, recipes.RECIPES, TASKS, SEEDS, wall_s=12.0, extra={})

    cells = payload["per_seed"]
    assert list(cells) == ["zero-shot", "ANS-SFT", "COT-SFT", "RL only (GRPO)", "Reason-RFT (GRPO)"]
    assert cells["ANS-SFT"]["counting"]["id accuracy"][0] == 45.0 and cells["ANS-SFT"]["counting"]["ood format"][0] == 0.0
    assert math.isnan(cells["ANS-SFT"]["counting"]["ood accuracy"][1])
    assert cells["RL only (GRPO)"]["counting"]["id accuracy"] == [30.0, 31.0]
    assert cells["COT-SFT"]["counting"]["ood accuracy"] == [60.0, 61.0]
    assert cells["Reason-RFT (GRPO)"]["counting"]["ood format"] == [90.0, 90.0]
    assert cells["Reason-RFT (GRPO)"]["structure"]["ood accuracy"][0] == 45.0 and math.isnan(cells["Reason-RFT (GRPO)"]["structure"]["ood accuracy"][1])
    mean, std = payload["summary"]["Reason-RFT (GRPO)"]["counting"]["ood accuracy"]
    assert (mean, round(std, 4)) == (71.5, round(2**0.5 * 1.5, 4))
    gain = payload["stage2_gain_ood"]["counting"]
    assert gain["per_seed"] == [10.0, 12.0] and gain["mean"] == 11.0 and gain["clear"] is True
    written = json.loads((tmp_path / "recipes.json").read_text())
    assert written["wall_s"] == 12.0 and written["summary"]["zero-shot"]["counting"]["id accuracy"] == [0.0, 0.0]
    assert (tmp_path / "recipes.png").read_bytes().startswith(b"\x89PNG")
