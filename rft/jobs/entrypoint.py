"""The shell command a Ray Job runs for one rft run, and reading the run's result back.

The entrypoint is the command a user would type, with the run folder made absolute and the
driver told to attach to the cluster the job runs on:

    <python> -m rft.launch <overrides> hydra.run.dir=<abs run dir> cluster.address=auto \
        && <python> -m rft.jobs.result <abs run dir>

A sweep run with `--config-dir DIR --config-name NAME` passes both on (DIR relative to the
project, whose copy is the job's working directory), so each job composes the same primary config.
`cluster.address=auto` matters: inside a job Ray sets RAY_ADDRESS, and the trainer's default
(start a local Ray with `num_cpus`) would be refused. The second command prints `result.json` as one
marked log line, so a submitter that cannot read the run folder (a remote cluster without a shared
file system) still gets the result from the job's log. Both are read as
`rft.tracking.result.RunResult`.

`<python>` is the submitting interpreter (`sys.executable`, the venv) for a cluster on this machine,
since the job's working_dir copy has no venv; for a remote cluster it is `python` on the nodes'
PATH unless `python` is given.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from rft.jobs.cluster import is_local_url
from rft.tracking.result import RESULT_FILE, RunResult, read_result  # noqa: F401 (the one reader, re-exported)

RESULT_MARKER = "RFT_RESULT "
# Overrides the entrypoint sets itself; a point's own values for them are dropped.
OWNED_KEYS = ("hydra.run.dir", "cluster.address")


def job_python(url: str, python: str | None = None) -> str:
    """The interpreter a job runs: `python` if given, the venv's for a local cluster, else `python`."""
    if python:
        return python
    return sys.executable if is_local_url(url) else "python"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def task_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides without those the entrypoint owns (`hydra.run.dir`, `cluster.address`)."""
    return [o for o in overrides if _key(o) not in OWNED_KEYS]


def entrypoint(python: str, overrides: Iterable[str], run_dir: str | Path, config_args: Sequence[str] = ()) -> str:
    """The job's shell command (every piece shell-quoted); `config_args` select the primary
    config (`--config-dir sweeps --config-name grpo_lr_beta`) when it is not the default."""
    run_dir = str(Path(run_dir))
    args = [*config_args, *task_overrides(overrides), f"hydra.run.dir={run_dir}", "cluster.address=auto"]
    launch = shlex.join([python, "-m", "rft.launch", *args])
    report = shlex.join([python, "-m", "rft.jobs.result", run_dir])
    return f"{launch} && {report}"


def config_args(config_name: str | None, config_dirs: Iterable[str], root: Path | None) -> list[str]:
    """`--config-dir`/`--config-name` for a job: empty for the default primary config `config`.
    A config dir inside the project `root` becomes relative (the job runs in the project's copy)."""
    args: list[str] = []
    for folder in config_dirs:
        path = Path(folder).resolve()
        if root is not None and path.is_relative_to(root.resolve()):
            path = path.relative_to(root.resolve())
        args.append(f"--config-dir={path.as_posix()}")
    if config_name and config_name != "config":
        args.append(f"--config-name={config_name}")
    return args


def result_line(result: RunResult) -> str:
    """The marked log line carrying a run's whole result (one line of JSON)."""
    return RESULT_MARKER + json.dumps(result.to_dict(), default=str)


def result_from_logs(logs: str) -> RunResult | None:
    """The last marked result line in a job's log, parsed; None when there is none."""
    for line in reversed(logs.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                data = json.loads(line[len(RESULT_MARKER) :])
            except ValueError:
                return None
            return RunResult.from_dict(data) if isinstance(data, dict) else None
    return None


def log_tail(logs: str, lines: int) -> str:
    """The last `lines` lines of a log."""
    return "\n".join(logs.rstrip("\n").splitlines()[-lines:])
