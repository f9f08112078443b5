"""The ready sweeps in sweeps/: each composes, every point passes rft's checks, and each job
would run the sweep's own primary config (dry runs through the ray_jobs launcher; no Ray)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SWEEPS = {
    "grpo_lr_beta": [f"algo.lr={lr} algo.beta={beta}" for lr in ("5e-07", "1e-06", "2e-06") for beta in ("0.0", "0.01", "0.04")],
    "num_generations": [f"algo.num_generations={g}" for g in (4, 8, 16)],
    "reward_weights": [f"reward.weights.format={w}" for w in ("0.25", "0.5", "1.0")],
}
OPTUNA_SWEEPS = ["optuna_lr_beta"]  # studies, not grids: need the `sweeps` extra (hydra-optuna-sweeper)


def _launch(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RFT_OUTPUTS": str(tmp_path / "outputs")}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "rft.launch", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_every_sweep_file_is_listed_here():
    assert sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml")) == sorted([*SWEEPS, *OPTUNA_SWEEPS])


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweep_points_compose_and_keep_their_primary_config(name, tmp_path):
    sweep_dir = tmp_path / "sweep"
    done = _launch(["-m", "--config-dir", "sweeps", "--config-name", name, "hydra.launcher.dry_run=true", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"dry run: {len(SWEEPS[name])} points compose" in output
    points = re.findall(r"#(\d+) : (.*)", output)
    assert [p for _, p in points] == SWEEPS[name]
    entrypoints = re.findall(r"entrypoint: (.*)", output)
    assert len(entrypoints) == len(SWEEPS[name])
    for index, command in enumerate(entrypoints):
        assert f"--config-dir=sweeps --config-name={name}" in command
        assert f"hydra.run.dir={sweep_dir / str(index)}" in command
    assert not (sweep_dir / "sweep.json").exists()  # a dry run submits nothing


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweeps_run_the_rl_stage_on_the_ray_jobs_launcher(name, tmp_path):
    done = _launch(["--config-dir", "sweeps", "--config-name", name, "--cfg", "all"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^stage:\n  name: rl$", done.stdout, re.M)
    assert "_target_: hydra_plugins.rft_ray_jobs.ray_jobs_launcher.RayJobsLauncher" in done.stdout


@pytest.mark.parametrize("name", OPTUNA_SWEEPS)
def test_optuna_sweeps_run_tpe_on_the_ray_jobs_launcher(name, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the `sweeps` extra is not installed")
    done = _launch(["--config-dir", "sweeps", "--config-name", name, "--cfg", "all"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "_target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper" in done.stdout
    assert "_target_: optuna.samplers.TPESampler" in done.stdout and "direction: maximize" in done.stdout
    assert "algo.lr: tag(log, interval(1e-6, 1e-3))" in done.stdout
    assert "_target_: hydra_plugins.rft_ray_jobs.ray_jobs_launcher.RayJobsLauncher" in done.stdout
