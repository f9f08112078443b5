"""Secure by default: a run's processes listen on loopback only, and Ray wants its token.

A one-step RL run (two learner ranks, weights streamed over gloo) runs on the session's Ray,
which is started as a run starts one; meanwhile every listening TCP socket of this process and
its descendants (GCS, raylet, agents, workers, vLLM's engine process) is recorded. Any address
other than loopback fails the test, naming the process. Then an unauthenticated request to the
GCS must be refused.
"""

from __future__ import annotations

import threading

import psutil
import pytest
from rft_test_helpers import MOVING, TINY_RL, assert_every_step_moves_and_is_synced, compose, read_metrics

pytestmark = pytest.mark.slow

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listening_sockets(root: psutil.Process) -> dict[tuple[int, str, int], str]:
    """(pid, ip, port) -> process description, for every listening TCP socket of `root`'s tree."""
    found = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            connections = proc.net_connections(kind="inet")
            described = f"{proc.name()} (pid {proc.pid}: {' '.join(proc.cmdline())[:120]})"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN:
                found[(proc.pid, conn.laddr.ip, conn.laddr.port)] = described
    return found


def is_loopback(ip: str) -> bool:
    return ip in LOOPBACK or ip.startswith(("127.", "::ffff:127."))


def test_listening_sockets_of_a_run_are_loopback_only(ray_cluster, tmp_path):
    from rft.trainer import run

    cfg = compose(TINY_RL + MOVING + ["trainer.max_steps=1", "learner.num_workers=2", "learner.zero_stage=2", "rollout.weight_sync=gloo"])
    me = psutil.Process()
    seen: dict[tuple[int, str, int], str] = {}
    errors: list[BaseException] = []

    def train() -> None:
        try:
            run(cfg, tmp_path / "run")
        except BaseException as err:  # re-raised below, after the watch stops
            errors.append(err)

    worker = threading.Thread(target=train, name="exposure-run")
    worker.start()
    while worker.is_alive():
        seen.update(listening_sockets(me))
        worker.join(timeout=0.5)
    if errors:
        raise errors[0]
    names = " ".join(seen.values())
    assert "gcs_server" in names and "raylet" in names, f"the watch did not see Ray's processes: {sorted(set(seen.values()))}"
    exposed = [f"{what} listens on {ip}:{port}" for (_, ip, port), what in sorted(seen.items()) if not is_loopback(ip)]
    assert not exposed, "\n".join(exposed)
    assert_every_step_moves_and_is_synced(read_metrics(tmp_path / "run"), [1])


def test_ray_refuses_a_request_without_the_token(ray_cluster):
    import grpc
    from ray._raylet import AuthenticationMode, get_authentication_mode
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    assert get_authentication_mode() == AuthenticationMode.TOKEN
    gcs = ray_cluster.get_runtime_context().gcs_address
    with grpc.insecure_channel(gcs) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
