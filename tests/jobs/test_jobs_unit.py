"""The Ray Jobs pieces without a cluster: entrypoints, runtime environments, sweep state, the
follow/stop loop against a fake job server, and fast, clear failures for unreachable addresses."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rft.jobs import entrypoint as ep
from rft.jobs import runtime_env as rtenv
from rft.jobs import sweep
from rft.jobs.cluster import ClusterUnreachable, connect, resolve_address
from rft.jobs.compose import PointError, compose_run
from rft.tracking.result import Direction, Optimized, RunResult, write_result

REPO = Path(__file__).resolve().parents[2]


# -- entrypoint --------------------------------------------------------------------------------
def test_entrypoint_sets_run_dir_and_attaches_to_the_job_cluster():
    command = ep.entrypoint("/venv/bin/python", ["algo.lr=1e-6", "cluster.address=http\\://h\\:8265", "hydra.run.dir=x"], "/abs/run 0")
    launch, report = command.split(" && ")
    args = shlex.split(launch)
    assert args[:3] == ["/venv/bin/python", "-m", "rft.launch"]
    assert args[3:] == ["algo.lr=1e-6", "hydra.run.dir=/abs/run 0", "cluster.address=auto"]  # the point's own values dropped
    assert shlex.split(report) == ["/venv/bin/python", "-m", "rft.jobs.result", "/abs/run 0"]


def test_entrypoint_quotes_overrides_with_shell_characters():
    override = "reward.weights={format:0.5,accuracy:1.0}"
    args = shlex.split(ep.entrypoint("python", [override, "run_name='a b'"], "/r").split(" && ")[0])
    assert override in args and "run_name='a b'" in args


def test_config_args_make_a_project_config_dir_relative(tmp_path):
    assert ep.config_args("config", [], REPO) == []
    assert ep.config_args("grpo_lr_beta", [str(REPO / "sweeps")], REPO) == ["--config-dir=sweeps", "--config-name=grpo_lr_beta"]
    assert ep.config_args("x", [str(tmp_path)], REPO) == [f"--config-dir={tmp_path}", "--config-name=x"]


def test_job_python_is_the_venv_for_a_local_cluster_only():
    assert ep.job_python("http://127.0.0.1:8265") == sys.executable
    assert ep.job_python("http://head.example:8265") == "python"
    assert ep.job_python("http://head.example:8265", "/opt/py") == "/opt/py"


def _result(value: float, metrics: dict) -> RunResult:
    return RunResult("rl", metrics, "/runs/x/checkpoints/step_2", optimized=Optimized("reward/mean", Direction.maximize, value))


def test_result_line_round_trips_through_a_log(tmp_path):
    write_result(tmp_path, _result(0.25, {"reward/mean": 0.5}))
    from rft.jobs.result import main

    assert main([str(tmp_path)]) == 0
    line = ep.result_line(ep.read_result(tmp_path))
    parsed = ep.result_from_logs(f"noise\n{line}\nmore noise\n")
    assert parsed == _result(0.25, {"reward/mean": 0.5})
    assert (parsed.final_metric, parsed.optimized.direction) == (0.25, "maximize")
    assert main([str(tmp_path / "missing")]) == 1
    assert ep.result_from_logs("no marker here") is None


# -- runtime environment ---------------------------------------------------------------------
def test_runtime_env_ships_the_project_without_heavy_folders(tmp_path):
    env = {"RFT_CACHE": "rel/cache", "RAY_AUTH_MODE": "disabled", "DS_ACCELERATOR": "cpu", "UNRELATED": "x"}
    runtime_env = rtenv.build_runtime_env(tmp_path / "out", environ=env)
    assert runtime_env["working_dir"] == str(REPO)
    for folder in (".venv", "outputs", ".cache", "multirun", ".git"):
        assert folder in runtime_env["excludes"]
    env_vars = runtime_env["env_vars"]
    assert env_vars["RFT_OUTPUTS"] == str((tmp_path / "out").resolve())
    assert Path(env_vars["RFT_CACHE"]).is_absolute()
    assert env_vars["DS_ACCELERATOR"] == "cpu" and "RAY_AUTH_MODE" not in env_vars  # the cluster's own mode
    assert env_vars["RAY_OVERRIDE_JOB_RUNTIME_ENV"] == "1"
    assert "UNRELATED" not in env_vars and "RAY_ADDRESS" not in env_vars


def test_runtime_env_excludes_an_outputs_root_inside_the_project():
    runtime_env = rtenv.build_runtime_env(REPO / "my_runs", environ={})
    assert "my_runs" in runtime_env["excludes"]


def test_template_merges_over_the_default(tmp_path):
    template = rtenv.load_template(REPO / "jobs" / "runtime_env.yaml")
    runtime_env = rtenv.build_runtime_env(tmp_path, template, {"EXTRA": "1"}, environ={"WANDB_MODE": "offline"})
    assert set(template["excludes"]) <= set(runtime_env["excludes"]) and ".venv" in runtime_env["excludes"]
    assert runtime_env["env_vars"]["EXTRA"] == "1" and runtime_env["env_vars"]["WANDB_MODE"] == "offline"
    custom = rtenv.merge_runtime_env(runtime_env, {"env_vars": {"WANDB_MODE": "online"}, "pip": ["x"]})
    assert custom["env_vars"]["WANDB_MODE"] == "online" and custom["pip"] == ["x"]


def test_template_must_be_a_mapping(tmp_path):
    bad = tmp_path / "env.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        rtenv.load_template(bad)
    with pytest.raises(ValueError, match="does not exist"):
        rtenv.load_template(tmp_path / "nope.yaml")


# -- composing single runs -------------------------------------------------------------------
def test_compose_run_gives_an_absolute_run_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("RFT_OUTPUTS", str(tmp_path))
    cfg, run_dir = compose_run(["stage=rl", "algo.lr=2e-6"])
    assert Path(run_dir).is_absolute() and Path(run_dir).parent == tmp_path / "runs"
    assert cfg.algo.lr == 2e-6


def test_compose_run_works_in_a_fresh_interpreter(tmp_path):
    """`python -m rft.jobs submit` composes before anything else has imported rft.config (which
    registers the schema `conf/config.yaml` starts from): nothing here may rely on that import."""
    code = "from rft.jobs.compose import compose_run; print(compose_run(['stage=rl'])[0].stage.name)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "RFT_OUTPUTS": str(tmp_path)}, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "rl", done.stderr


@pytest.mark.parametrize("bad", ["algo.lr=abc", "algo.beta=-1", "nosuch.key=1"])
def test_compose_run_names_the_bad_override(bad):
    with pytest.raises(PointError, match=bad.split("=")[0].replace(".", r"\.")):
        compose_run(["stage=rl", bad])


# -- sweep state and following ---------------------------------------------------------------
def _state(tmp_path, n=2):
    points = [sweep.Point(i, ["stage=rl", f"algo.lr={i}"], str(tmp_path / str(i)), submission_id=f"job{i}") for i in range(n)]
    return sweep.SweepState(str(tmp_path), "http://fake", points)


def test_sweep_json_round_trips(tmp_path):
    state = _state(tmp_path)
    state.points[0].final_metric = 0.5
    state.save()
    loaded = sweep.SweepState.load(tmp_path / sweep.SWEEP_FILE)
    assert loaded == state
    assert state.short_label(state.points[1]) == "algo.lr=1"


class FakeJobs:
    """A job server whose jobs follow scripted status sequences (one status per poll)."""

    def __init__(self, scripts: dict[str, list[str]], logs: dict[str, str] | None = None, interrupt_after: int | None = None):
        self.scripts, self.logs, self.stopped, self.calls = scripts, logs or {}, [], 0
        self.interrupt_after = interrupt_after

    def get_job_info(self, job_id):
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after and not self.stopped:
            raise KeyboardInterrupt
        script = self.scripts[job_id]
        status = "STOPPED" if job_id in self.stopped else (script.pop(0) if len(script) > 1 else script[0])
        return SimpleNamespace(status=status, message=f"{status.lower()}\nlast available logs: ...")

    def get_job_status(self, job_id):
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id):
        return self.logs.get(job_id, "")

    def stop_job(self, job_id):
        self.stopped.append(job_id)
        return True


def test_follow_records_results_and_failure_tails(tmp_path):
    state = _state(tmp_path)
    (tmp_path / "0").mkdir()
    write_result(tmp_path / "0", _result(0.75, {"m": 1}))
    logs = {"job1": "\n".join(f"line {i}" for i in range(100)) + "\nValueError: boom"}
    client = FakeJobs({"job0": ["PENDING", "RUNNING", "SUCCEEDED"], "job1": ["RUNNING", "FAILED"]}, logs)
    sweep.follow(client, state, poll_s=0.01, tail_lines=3)
    ok, bad = state.points
    assert (ok.status, ok.final_metric, ok.metrics, ok.optimized) == ("SUCCEEDED", 0.75, {"m": 1}, "reward/mean (maximize)")
    assert bad.status == "FAILED" and bad.log_tail == "line 98\nline 99\nValueError: boom"
    assert bad.message == "failed"  # Ray's appended log excerpt is cut; rft keeps its own tail
    saved = sweep.SweepState.load(state.path)
    assert [p.status for p in saved.points] == ["SUCCEEDED", "FAILED"]


def test_follow_reads_the_metric_from_the_log_when_the_run_folder_is_remote(tmp_path):
    state = _state(tmp_path, n=1)
    client = FakeJobs({"job0": ["SUCCEEDED"]}, {"job0": "x\n" + ep.result_line(_result(0.125, {}))})
    sweep.follow(client, state, poll_s=0.01)
    assert state.points[0].final_metric == 0.125


def test_ctrl_c_while_following_stops_the_sweeps_jobs(tmp_path):
    state = _state(tmp_path, n=3)
    state.points[2].status = "SUCCEEDED"  # already ended: not stopped again
    client = FakeJobs({"job0": ["RUNNING"], "job1": ["RUNNING"], "job2": ["SUCCEEDED"]}, interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        sweep.follow(client, state, poll_s=0.01)
    assert sorted(client.stopped) == ["job0", "job1"]
    assert [p.status for p in sweep.SweepState.load(state.path).points] == ["STOPPED", "STOPPED", "SUCCEEDED"]


# -- unreachable clusters --------------------------------------------------------------------
def test_explicit_address_wins_over_ray_address(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://from-env:8265")
    assert resolve_address("http://explicit:8265") == "http://explicit:8265"
    assert resolve_address(None) == "http://from-env:8265"
    monkeypatch.delenv("RAY_ADDRESS")
    assert resolve_address(None) is None


def test_local_head_reuses_a_running_cluster(monkeypatch):
    from rft.jobs import cluster

    monkeypatch.setattr(cluster, "cluster_in", lambda folder: "http://127.0.0.1:1234" if folder == "/rft-tmp" else None)
    monkeypatch.setattr(cluster.subprocess, "run", lambda *a, **k: pytest.fail("must not start a head"))
    assert cluster.local_head(temp_dir="/rft-tmp", log=lambda message: None) == "http://127.0.0.1:1234"


def test_head_command_keeps_everything_on_loopback_with_free_ports():
    from rft.jobs.cluster import start_head_command

    command = start_head_command(6390, 8270, 4, ["--temp-dir=/tmp/x"])
    assert command[1:3] == ["start", "--head"]
    for flag in ("--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--port=6390", "--dashboard-port=8270", "--num-cpus=4", "--temp-dir=/tmp/x"):
        assert flag in command
    assert "--dashboard-agent-listen-port=0" in command  # the agent binds a port itself: no race
    (client_port,) = [int(a.split("=")[1]) for a in command if a.startswith("--ray-client-server-port=")]
    assert client_port > 0


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
        return True


def test_free_ports_are_distinct_and_keep_a_free_preferred_one():
    from rft.jobs.cluster import free_ports

    ports = free_ports(None, None, None, None)
    assert len(set(ports)) == 4 and all(_port_is_free(p) for p in ports)
    with socket.socket() as busy:
        busy.bind(("", 0))
        taken = busy.getsockname()[1]
        free = free_ports(None)[0]
        assert free_ports(free)[0] == free
        assert free_ports(taken)[0] != taken


def _session_with_agent_port(tmp_path, port: str | None, log: str = "") -> Path:
    session = tmp_path / "session_latest"
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "dashboard_agent.log").write_text(log)
    if port is not None:
        (session / "dashboard_agent_listen_port_abc123").write_text(port)
    return tmp_path


def test_job_agent_wait_returns_the_recorded_port(tmp_path):
    from rft.jobs.cluster import wait_for_job_agent

    assert wait_for_job_agent(str(_session_with_agent_port(tmp_path, "41234")), timeout_s=1) == 41234


def test_a_job_agent_without_http_fails_with_its_log(tmp_path):
    from rft.jobs.cluster import wait_for_job_agent

    temp_dir = _session_with_agent_port(tmp_path, "-1", log="line 1\nOSError: [Errno 98] address already in use")
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="(?s)HTTP server failed to start.*Errno 98"):
        wait_for_job_agent(str(temp_dir), timeout_s=120)
    assert time.monotonic() - start < 30  # -1 is final: the timeout is not waited out


def test_a_job_agent_that_never_registers_times_out(tmp_path):
    from rft.jobs.cluster import wait_for_job_agent

    with pytest.raises(ClusterUnreachable, match="did not start within 1 s"):
        wait_for_job_agent(str(_session_with_agent_port(tmp_path, None)), timeout_s=1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_address_fails_fast_and_says_how_to_fix_it():
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="connection refused.*ray start --head"):
        connect(f"http://127.0.0.1:{_closed_port()}")
    assert time.monotonic() - start < 10


def test_silent_server_fails_within_the_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts connections, never answers
    threading.Thread(target=lambda: [server.accept() for _ in range(8)], daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(ClusterUnreachable, match="no answer within"):
            connect(f"http://127.0.0.1:{server.getsockname()[1]}", timeout_s=2)
        assert time.monotonic() - start < 5
    finally:
        server.close()


def test_dead_gcs_address_fails_within_the_timeout():
    # In a subprocess: Ray's GCS client keeps trying in a background thread after the timeout.
    start = time.monotonic()
    command = [sys.executable, "-m", "rft.jobs", "list", "--address", f"127.0.0.1:{_closed_port()}", "--timeout", "3"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 10
    assert done.returncode == 2 and "error: " in done.stderr and "ray start --head" in done.stderr


def test_launcher_fails_fast_on_an_unreachable_address(tmp_path):
    env = {**os.environ, "RFT_OUTPUTS": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    address = f"http://127.0.0.1:{_closed_port()}"
    args = ["-m", "hydra/launcher=ray_jobs", "stage=rl", "algo.lr=1e-6,2e-6", f"cluster.address={address}", f"hydra.sweep.dir={tmp_path / 's'}"]
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rft.launch", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 10 + 10  # the 10 s limit plus Hydra's start-up
    assert done.returncode != 0
    assert f"cannot reach the Ray job server at {address}: connection refused" in done.stderr
    assert "Traceback" not in done.stderr
