"""Sweeps and single runs as Ray Jobs against a real Ray head on loopback (the `ray_head` fixture).

A whole sweep of tiny RL jobs that run to the end is tested once, on the 2-CPU head of
tests/sweeps/test_sweeps_ray.py (queueing, each point's config and result, early stopping); here
the jobs' own paths: loopback and the token, invalid points, the CLI, stopping, failures.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from jobs.conftest import sweep_command

from rft.jobs.sweep import SWEEP_FILE, SweepState

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TINY_RL = [
    "stage=rl", "task=counting", "model=tiny_qwen2vl", "trainer.max_steps=1", "trainer.prompts_per_step=2",
    "algo.num_generations=2", "rollout.max_tokens=16", "data.synth_n_train=8", "data.synth_n_test=4",
    "learner.num_workers=1", "cluster.job_cpus=0",
]  # fmt: skip
# The same job made long, for tests that stop it: it stays RUNNING for minutes.
LONG_RL = [o for o in TINY_RL if not o.startswith("trainer.max_steps")] + ["trainer.max_steps=1000", "tracking.sinks=[jsonl]"]


def _jobs(head) -> dict[str, str]:
    return {job.submission_id: str(job.status.value) for job in head.client().list_jobs()}


def _sweep_points(sweep_dir: Path):
    path = sweep_dir / SWEEP_FILE
    return SweepState.load(path).points if path.is_file() else []


def test_a_head_is_found_by_its_temp_dir(ray_head):
    from rft.jobs.cluster import cluster_in

    assert cluster_in(ray_head.temp_dir) == ray_head.url


def test_the_head_listens_on_loopback_and_wants_the_token(ray_head):
    """A head started as rft starts one: every process listens on loopback, and the job server
    refuses a request without the token."""
    import psutil
    import requests

    head = psutil.Process(ray_head.process.pid)
    exposed = []
    for proc in [head, *head.children(recursive=True)]:
        try:
            listening = [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        exposed += [f"{name} (pid {proc.pid}) listens on {a.ip}:{a.port}" for a in listening if not a.ip.startswith(("127.", "::ffff:127.", "::1"))]
    assert not exposed, "\n".join(exposed)
    assert requests.get(f"{ray_head.url}/api/jobs/", timeout=10).status_code == 401


def test_sweep_with_an_invalid_point_submits_nothing(ray_head, job_env, run_rft, tmp_path):
    before = _jobs(ray_head)
    schema = run_rft(sweep_command(ray_head, tmp_path / "a", [*TINY_RL, "algo.lr=1e-6,abc"]), job_env, timeout=120)
    assert schema.returncode != 0 and "algo.lr=abc" in schema.stdout + schema.stderr
    checks = run_rft(sweep_command(ray_head, tmp_path / "b", [*TINY_RL, "algo.beta=0,-1"]), job_env, timeout=120)
    message = checks.stdout + checks.stderr
    assert checks.returncode != 0 and "nothing was submitted" in message
    assert "#1 [" in message and "algo.beta=-1" in message and "algo.beta: must be >= 0" in message
    assert _jobs(ray_head) == before
    assert not (tmp_path / "a" / SWEEP_FILE).exists() and not (tmp_path / "b" / SWEEP_FILE).exists()


def test_failing_points_are_reported_with_their_log_tail(ray_head, job_env, run_rft, tmp_path):
    sweep_dir = tmp_path / "sweep"
    done = run_rft(sweep_command(ray_head, sweep_dir, [*TINY_RL, "model.path=/nonexistent/a,/nonexistent/b"]), job_env, timeout=300)
    assert done.returncode != 0
    points = SweepState.load(sweep_dir / SWEEP_FILE).points
    assert [p.status for p in points] == ["FAILED", "FAILED"]  # the first failure did not stop the second
    for point, name in zip(points, "ab"):
        assert f"/nonexistent/{name} does not exist" in point.log_tail
        assert f"/nonexistent/{name} does not exist" in done.stdout + done.stderr
    assert "sweep point 0 ended FAILED" in done.stderr


def test_ctrl_c_stops_the_sweeps_jobs(ray_head, job_env, wait_until, tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", *sweep_command(ray_head, sweep_dir, [*LONG_RL, "algo.lr=1e-6,2e-6"])]
    # Default SIGINT handling in the child even when this test runs where SIGINT is ignored.
    process = subprocess.Popen(command, cwd=REPO, env=job_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        wait_until(lambda: [p.status for p in _sweep_points(sweep_dir)] == ["RUNNING", "RUNNING"], 120, what="both points RUNNING")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "interrupted: its jobs were stopped" in output
    points = SweepState.load(sweep_dir / SWEEP_FILE).points
    assert [p.status for p in points] == ["STOPPED", "STOPPED"]
    assert all(_jobs(ray_head)[p.submission_id] == "STOPPED" for p in points)


def test_wait_false_returns_after_submitting(ray_head, job_env, run_rft, tmp_path):
    sweep_dir = tmp_path / "sweep"
    done = run_rft(sweep_command(ray_head, sweep_dir, [*LONG_RL, "algo.lr=1e-6,2e-6"], "hydra.launcher.wait=false"), job_env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    points = SweepState.load(sweep_dir / SWEEP_FILE).points
    client = ray_head.client()
    try:
        assert all(p.submission_id for p in points)
        assert all(str(client.get_job_status(p.submission_id).value) in ("PENDING", "RUNNING") for p in points)
        assert all(client.get_job_info(p.submission_id).metadata["rft_sweep"] == str(sweep_dir) for p in points)
    finally:
        for point in points:
            client.stop_job(point.submission_id)


def test_cli_submit_status_logs_stop_list(ray_head, job_env, run_rft, wait_until):
    address = ["--address", ray_head.url]
    submitted = run_rft(["rft.jobs", "submit", *address, "--id", "rft-cli-test", "--", *LONG_RL], job_env, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted rft-cli-test" in submitted.stdout
    run_dir = submitted.stdout.split("run folder: ")[1].splitlines()[0]
    assert Path(run_dir).is_absolute() and run_dir.startswith(job_env["RFT_OUTPUTS"])
    client = ray_head.client()
    wait_until(lambda: "rft.launch" in client.get_job_logs("rft-cli-test") or client.get_job_status("rft-cli-test").is_terminal(), 120, what="job log")
    status = run_rft(["rft.jobs", "status", *address, "rft-cli-test"], job_env, timeout=60)
    assert "rft-cli-test: RUNNING" in status.stdout and f"run folder: {run_dir}" in status.stdout
    logs = run_rft(["rft.jobs", "logs", *address, "rft-cli-test"], job_env, timeout=60)
    assert logs.returncode == 0 and "rft.launch" in logs.stdout
    listing = run_rft(["rft.jobs", "list", *address], job_env, timeout=60)
    assert "rft-cli-test" in listing.stdout
    stopped = run_rft(["rft.jobs", "stop", *address, "rft-cli-test"], job_env, timeout=120)
    assert stopped.returncode == 0 and "rft-cli-test: STOPPED" in stopped.stdout
    assert str(client.get_job_status("rft-cli-test").value) == "STOPPED"
    gone = run_rft(["rft.jobs", "status", *address, "no-such-job"], job_env, timeout=60)
    assert gone.returncode == 2 and "no job 'no-such-job'" in gone.stderr


def test_cli_submit_checks_the_configuration_before_submitting(ray_head, job_env, run_rft):
    before = _jobs(ray_head)
    done = run_rft(["rft.jobs", "submit", "--address", ray_head.url, "--", *TINY_RL, "algo.lr=abc"], job_env, timeout=120)
    assert done.returncode == 2 and "algo.lr=abc" in done.stderr and "nothing was submitted" in done.stderr
    assert _jobs(ray_head) == before
