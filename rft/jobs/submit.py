"""Submitting one rft run as a Ray Job, and looking at a finished job's result.

`submit_run()` is shared by `python -m rft.jobs submit` and the `ray_jobs` Hydra launcher: the
same entrypoint, runtime environment, resources and metadata (`rft_run_dir`, `rft_overrides`, and
for sweeps `rft_sweep`, `rft_point`), so `python -m rft.jobs status|list` can show any of them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from rft.jobs.entrypoint import entrypoint, log_tail, read_result, result_from_logs, task_overrides
from rft.tracking.result import RunResult

# A freshly started head serves HTTP before its job agent registers ("No available agent").
AGENT_WAIT_S = 30.0
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
# Ray logs an INFO line per file it leaves out of the working_dir package, and warns once per
# directory it now excludes by default (.git, .venv: rft excludes them anyway).
QUIET_LOGGERS = {"ray._private.runtime_env.packaging": logging.WARNING, "ray._private.runtime_env.working_dir": logging.ERROR}


def new_submission_id(prefix: str = "rft") -> str:
    """A readable, unique submission id: `<prefix>-<YYmmdd-HHMMSS>-<6 hex>`."""
    return f"{prefix}-{time.strftime('%y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def submit_run(
    client,
    *,
    overrides: Iterable[str],
    run_dir: str,
    python: str,
    runtime_env: dict[str, Any],
    cpus: float,
    gpus: float,
    submission_id: str | None = None,
    metadata: dict[str, str] | None = None,
    config_args: Sequence[str] = (),
) -> str:
    """Submit `python -m rft.launch <overrides>` writing to `run_dir`; returns the submission id."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    overrides = task_overrides(overrides)
    meta = {"rft_run_dir": str(run_dir), "rft_overrides": " ".join(overrides), **(metadata or {})}
    kwargs = dict(
        entrypoint=entrypoint(python, overrides, run_dir, config_args),
        runtime_env=runtime_env,
        submission_id=submission_id or new_submission_id(),
        metadata=meta,
        entrypoint_num_cpus=cpus,
        entrypoint_num_gpus=gpus or None,
    )
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(**kwargs)
        except RuntimeError as err:
            if "No available agent" not in str(err):
                raise
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the cluster's job agent did not become available within {AGENT_WAIT_S:.0f} s (see "
                    "dashboard_agent.log in the head's session logs; a port conflict with another Ray on the "
                    "head node is a common cause)"
                ) from err
            time.sleep(1.0)


def job_result(client, submission_id: str, run_dir: str | None) -> RunResult | None:
    """A finished job's result: its run folder's result.json if readable here, else its log line."""
    if run_dir:
        result = read_result(run_dir)
        if result is not None:
            return result
    return result_from_logs(client.get_job_logs(submission_id))


def failure_tail(client, submission_id: str, lines: int) -> str:
    """The last `lines` lines of a job's log (for failure reports)."""
    try:
        return log_tail(client.get_job_logs(submission_id), lines)
    except Exception as err:  # the log is a courtesy; never mask the failure itself
        return f"(log unavailable: {err})"
