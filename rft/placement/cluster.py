"""Connecting to Ray and reserving resources, with clear errors instead of silent hangs.

By default a local Ray is started (`cluster.address: null`); `auto` or `host:port` attaches to a
running cluster. Placement groups are waited on with a timeout: an infeasible request (more GPUs
than the cluster has) fails with a message that names what was asked and what exists.

Secure by default: a local Ray listens on 127.0.0.1 only and keeps Ray's token authentication
(on unless `RAY_AUTH_MODE=disabled`; the token is `~/.ray/auth_token`, or `RAY_AUTH_TOKEN` /
`RAY_AUTH_TOKEN_PATH`). Ray turns a `127.0.0.1` node address into the machine's address, and
its services then listen on every interface; only with Ray's "no multi-node cluster" switch
(`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, its default on macOS and Windows) does the local node
keep 127.0.0.1, and every service (GCS, raylet, object manager, agents, workers) binds to it.
The actors of a local run also get `GLOO_SOCKET_IFNAME` and `NCCL_SOCKET_IFNAME` set to the
loopback interface (unless set already), so the torch groups they open (learner ranks, weight
streaming, vLLM) connect over loopback too (NCCL's bootstrap; its data moves over P2P/SHM within
a node).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import ray
from ray.util.placement_group import placement_group, remove_placement_group

from rft.errors import UserError
from rft.paths import FORWARDED_ENV
from rft.tracking.console import worker_runtime_env

log = logging.getLogger(__name__)


class ResourceError(UserError, RuntimeError):
    """The cluster cannot host what the configuration asks for."""


LOOPBACK = "127.0.0.1"
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch: "0" = a local Ray only


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Initialise Ray unless already initialised; True when this call started it."""
    if ray.is_initialized():
        return False
    env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
    if address:
        ray.init(address=address, runtime_env=with_console(env), log_to_driver=not worker_runtime_env())
    else:
        start_local(num_cpus, env)
    return True


def with_console(env_vars: dict[str, str]) -> dict:
    """The runtime_env for `ray.init`: `env_vars`, and in a quiet run the actors' console set-up
    (their output goes to the run's launch.log: rft.tracking.console)."""
    quiet = worker_runtime_env()
    return {**quiet, "env_vars": {**env_vars, **quiet.get("env_vars", {})}}


def start_local(num_cpus: int | None, env_vars: dict[str, str] | None = None) -> None:
    """A new local Ray on loopback, never one that `ray start` left on this machine (attaching
    to it would refuse num_cpus). `env_vars` go to every worker (with the loopback gloo interface)."""
    loopback = loopback_interface()
    interfaces = {key: os.environ.get(key, loopback) for key in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")}
    env = {**(env_vars or {}), **interfaces}
    with _local_node_on_loopback():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, runtime_env=with_console(env), log_to_driver=not worker_runtime_env())


@contextlib.contextmanager
def _local_node_on_loopback() -> Iterator[None]:
    """While Ray starts a local node: its node address is 127.0.0.1 (see the module docstring).
    Ray reads the switch when it is imported, so its constant is set too; both are restored."""
    from ray._private import ray_constants

    saved = os.environ.get(LOCAL_ONLY_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[1]
        if saved[0] is None:
            os.environ.pop(LOCAL_ONLY_ENV, None)
        else:
            os.environ[LOCAL_ONLY_ENV] = saved[0]


def loopback_interface() -> str:
    """The name of the network interface that holds 127.0.0.1 (`lo` on Linux)."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(entry.address == LOOPBACK for entry in addresses):
            return name
    return "lo"


def single_node() -> bool:
    """True when the connected cluster has one live node (its services can talk over loopback)."""
    return sum(1 for node in ray.nodes() if node.get("Alive")) <= 1


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
