"""A 2-CPU Ray head for the sweep tests (this project's machines have 2 cores; the head started
like `ray start --head --num-cpus=2`), built with the Ray Jobs tests' head helpers, and their
fixtures for running rft commands (`job_env`, `run_rft`, `wait_until`)."""

from __future__ import annotations

import shutil

import pytest
from jobs.conftest import _start_head, _stop_head, _stop_jobs, job_env, run_rft, wait_until  # noqa: F401 (fixtures)

SMALL_HEAD_CPUS = 2


@pytest.fixture(scope="module")
def small_head():
    """A Ray head with 2 logical CPUs, for one test module; stopped by pid afterwards."""
    head = _start_head(SMALL_HEAD_CPUS)
    try:
        yield head
    finally:
        try:
            _stop_jobs(head)
        finally:
            _stop_head(head.process)
            shutil.rmtree(head.temp_dir, ignore_errors=True)
