"""Connecting to Ray and reserving resources, with clear errors instead of silent hangs.

By default a local Ray is started (`cluster.address: null`); `auto` or `host:port` attaches to a
running cluster. Placement groups are waited on with a timeout: an infeasible request (more GPUs
than the cluster has) fails with a message that names what was asked and what exists.
"""

from __future__ import annotations

import logging
import os

import ray
from ray.util.placement_group import placement_group, remove_placement_group

from rft.errors import UserError
from rft.paths import FORWARDED_ENV
from rft.tracking.console import worker_runtime_env

log = logging.getLogger(__name__)


class ResourceError(UserError, RuntimeError):
    """The cluster cannot host what the configuration asks for."""


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Initialise Ray unless already initialised; True when this call started it."""
    if ray.is_initialized():
        return False
    env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
    if address:
        ray.init(address=address, runtime_env=with_console(env), log_to_driver=not worker_runtime_env())
    else:
        # address="local": always a new local Ray, never one that `ray start` left on this machine
        # (attaching to it would refuse num_cpus).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, runtime_env=with_console(env), log_to_driver=not worker_runtime_env())
    return True


def with_console(env_vars: dict[str, str]) -> dict:
    """The runtime_env for `ray.init`: `env_vars`, and in a quiet run the actors' console set-up
    (their output goes to the run's launch.log: rft.tracking.console)."""
    quiet = worker_runtime_env()
    return {**quiet, "env_vars": {**env_vars, **quiet.get("env_vars", {})}}


def local_cpus_needed(bundles: list[dict[str, float]]) -> int:
    """Logical CPUs a local Ray must advertise for these bundles (at least the machine's cores)."""
    asked = sum(b.get("CPU", 0.0) for b in bundles)
    return max(os.cpu_count() or 1, int(-(-asked // 1)) + 1)


def reserve(bundles: list[dict[str, float]], timeout_s: float, strategy: str = "PACK"):
    """A ready placement group for `bundles`, or ResourceError after `timeout_s`."""
    group = placement_group(bundles, strategy=strategy)
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
        raise ResourceError(_unplaced_message(bundles, timeout_s, ray.cluster_resources(), ray.available_resources()))
    return group


def _unplaced_message(bundles: list[dict[str, float]], timeout_s: float, totals: dict, free: dict) -> str:
    """Why a placement group was not ready: more than the cluster has at all (lower the asks or add
    nodes), or more than is free now (other jobs hold the rest: wait longer, or queue through the
    sweep launcher, which only starts runs that fit)."""
    asked: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            asked[key] = asked.get(key, 0.0) + value
    view = {key: totals.get(key, 0.0) for key in asked}
    head = f"could not reserve {bundles} within {timeout_s:.0f}s"
    if any(value > totals.get(key, 0.0) for key, value in asked.items()):
        return f"{head}: they need {asked} but the whole cluster has {view} (lower rollout/learner num_workers or their cpus_per_worker/gpus_per_worker, or add nodes)"
    now = {key: free.get(key, 0.0) for key in asked}
    return (
        f"{head}: the cluster has {view} in all but only {now} free (other jobs or runs hold the rest); "
        f"raise cluster.placement_timeout_s to wait for them, or run sweeps through hydra/launcher=ray_jobs, which starts a point only when it fits"
    )
