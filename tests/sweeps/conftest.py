"""A 2-CPU Ray head for the sweep tests (this project's machines have 2 cores; the head started
like `ray start --head --num-cpus=2`), built with the Ray Jobs tests' head helpers, and their
fixtures for running rft commands (`job_env`, `run_rft`, `wait_until`)."""

from __future__ import annotations

import pytest
from jobs.conftest import _start_head, job_env, run_rft, serving, wait_until  # noqa: F401 (fixtures)

SMALL_HEAD_CPUS = 2


@pytest.fixture(scope="module")
def small_head():
    """A Ray head with 2 logical CPUs, for one test module; stopped by pid afterwards."""
    with serving(_start_head(SMALL_HEAD_CPUS)) as head:
        yield head
