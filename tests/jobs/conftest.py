"""A private Ray head on loopback for the Ray Jobs tests, and helpers to run rft commands.

The head runs as `ray start --head --block` in its own temp dir with ports the OS picked: it does
not write /tmp/ray/ray_current_cluster, so a `ray.init()` elsewhere in the session starts its own
Ray instead of attaching here, and it is stopped by signalling the process this fixture started
(then any of its descendants still alive, by pid) — never `ray stop`, which would kill every Ray
on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAD_CPUS = 4


@dataclass
class Head:
    url: str  # the dashboard / job server
    gcs: str
    temp_dir: str
    process: subprocess.Popen

    def client(self):
        from rft.jobs.cluster import connect

        return connect(self.url)


def _start_head(num_cpus: int = HEAD_CPUS) -> Head:
    from rft.jobs.cluster import free_ports, start_head_command, wait_for_job_agent, wait_for_job_server

    temp_dir = tempfile.mkdtemp(prefix="rftj-", dir="/tmp")  # short: Ray's socket paths have a length limit
    gcs_port, dashboard_port = free_ports(None, None)
    command = start_head_command(gcs_port, dashboard_port, num_cpus, ["--block", f"--temp-dir={temp_dir}"])
    from rft.jobs.cluster import head_env

    env = head_env()  # loopback only, token authentication on
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 (the head process writes to it for its lifetime)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        wait_for_job_server(url, timeout_s=90)
        wait_for_job_agent(temp_dir, timeout_s=120)
        # `ray start` records the cluster in its temp dir last, just before it blocks.
        _wait_for_file(Path(temp_dir) / "ray_current_cluster", timeout_s=30)
    except Exception:
        _stop_head(process)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return Head(url, f"127.0.0.1:{gcs_port}", temp_dir, process)


def _wait_for_file(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(0.2)


def _stop_head(process: subprocess.Popen) -> None:
    import psutil

    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    _, alive = psutil.wait_procs(descendants, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def _stop_jobs(head: Head) -> None:
    client = head.client()
    for job in client.list_jobs():
        if not job.status.is_terminal():
            client.stop_job(job.submission_id)


@contextlib.contextmanager
def serving(head: Head):
    """Hold `head` open; afterwards stop its jobs, then the head, and remove its temp dir."""
    try:
        yield head
    finally:
        try:
            _stop_jobs(head)
        finally:
            _stop_head(head.process)
            shutil.rmtree(head.temp_dir, ignore_errors=True)


def sweep_command(head: Head, sweep_dir: Path, points: list[str], *extra: str) -> list[str]:
    """`rft.launch -m` arguments for a sweep of `points` through the `ray_jobs` launcher on `head`."""
    return [
        "rft.launch",
        "-m",
        "hydra/launcher=ray_jobs",
        *points,
        f"cluster.address={head.url}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.launcher.poll_s=1",
        *extra,
    ]


@pytest.fixture(scope="session")
def ray_head():
    """A real Ray head (dashboard and job server on 127.0.0.1), shared by the Ray Jobs tests."""
    from rft.jobs.cluster import ClusterUnreachable

    try:
        head = _start_head()
    except ClusterUnreachable as err:  # e.g. a job agent that failed: one more head, the reason kept
        warnings.warn(f"replacing a Ray head that could not take jobs: {err}", stacklevel=1)
        head = _start_head()
    with serving(head):
        yield head


@pytest.fixture(scope="session")
def job_env(tmp_path_factory) -> dict[str, str]:
    """The environment for rft commands run by the tests (outputs in a temporary folder)."""
    outputs = tmp_path_factory.mktemp("rft-outputs")
    env = {**os.environ, "RFT_OUTPUTS": str(outputs), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


def _run_rft(args: list[str], env: dict[str, str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """`python -m <args>` from the repository root; output captured as text."""
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


def _wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="session")
def run_rft():
    """`run_rft(["rft.jobs", "list", ...], env)`: run `python -m ...` from the repository root."""
    return _run_rft


@pytest.fixture(scope="session")
def wait_until():
    """`wait_until(predicate, timeout, what=...)`: poll until truthy, else fail the test."""
    return _wait_until
