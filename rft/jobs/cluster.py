"""Reaching a Ray cluster's job server: address resolution, fast failure, and a local head.

An address is one of
- the dashboard's HTTP address, `http://<head>:8265` (what a laptop uses to reach a cluster),
- a GCS address `<head>:6379` or `auto` (the dashboard URL is then looked up in the GCS),
- a Ray Client address `ray://<head>:10001`.

`connect()` resolves it, checks the job server answers (`GET /api/version`) and returns a
`JobSubmissionClient`, all within `timeout_s`; anything else raises `ClusterUnreachable` with a
message saying what was tried and how to fix it (Ray's own client has no timeout and can hang for
minutes on an unroutable host). An explicit address wins over `RAY_ADDRESS`, which Ray's client
would otherwise silently prefer.

`local_head()` reuses the cluster of the last `ray start` on this machine when it answers, and
otherwise starts one (`ray start --head`) with the dashboard and GCS on 127.0.0.1 in a temp dir of
its own; it keeps running after the caller exits (so `python -m rft.jobs logs` works later);
`ray stop` ends it. That head listens on 127.0.0.1 only (`LOCAL_ONLY_ENV`, see
`rft.placement.cluster`) and has Ray's token authentication on: rft makes the token
(`~/.ray/auth_token`) if none exists. The client sends the token whenever one is at hand
(`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`), unless `RAY_AUTH_MODE=disabled`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
DEFAULT_TIMEOUT_S = 10.0
# Where a head started by rft keeps its sessions (its own, see local_head).
LOCAL_TEMP_DIR = os.path.join(tempfile.gettempdir(), f"rft-ray-{os.getuid()}")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
_ADDRESS_ENV = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")
# Ray's "no multi-node cluster" switch: a head started with it keeps 127.0.0.1 as its node address
# (`ray start --node-ip-address=127.0.0.1` alone becomes the machine's address, every service
# listening on all interfaces). Same value as rft.placement.cluster.LOCAL_ONLY_ENV.
LOCAL_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
_HINT = (
    "Start a cluster with `ray start --head --dashboard-host=127.0.0.1` (see jobs/README.md), "
    "or pass the head's dashboard address, e.g. cluster.address=http://<head>:8265 "
    "(or --address for python -m rft.jobs)"
)


class ClusterUnreachable(ConnectionError):
    """No Ray job server answered at the address within the time limit."""


def resolve_address(explicit: str | None) -> str | None:
    """The address to use: the explicit one, else RAY_ADDRESS, else None (caller's default)."""
    for value in (explicit, os.environ.get("RAY_ADDRESS")):
        if value and str(value).strip():
            return str(value).strip()
    return None


def is_local_url(url: str) -> bool:
    """True when the job server's host is this machine's loopback."""
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def _run_with_timeout(fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Run `fn` in a daemon thread; raise ClusterUnreachable if it takes longer than `timeout_s`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True, name="rft-jobs-connect")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ClusterUnreachable(f"{what}: no answer within {timeout_s:.0f} s. {_HINT}")
    if "error" in box:
        raise box["error"]
    return box["value"]


@contextlib.contextmanager
def _without_address_env() -> Iterator[None]:
    """Hide RAY_ADDRESS / RAY_API_SERVER_ADDRESS so Ray's client uses the address it is given."""
    saved = {key: os.environ.pop(key) for key in _ADDRESS_ENV if key in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def api_server_url(address: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The job server's HTTP URL for any accepted address form."""
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")

    def lookup() -> str:
        from ray.dashboard.utils import ray_address_to_api_server_url, ray_client_address_to_api_server_url

        with _without_address_env():
            if address.startswith("ray://"):
                return ray_client_address_to_api_server_url(address)
            return ray_address_to_api_server_url(address)

    try:
        return _run_with_timeout(lookup, timeout_s, f"looking up the dashboard of Ray cluster {address!r}").rstrip("/")
    except ClusterUnreachable:
        raise
    except Exception as err:
        raise ClusterUnreachable(f"cannot find a Ray cluster at {address!r}: {err}. {_HINT}") from None


def check_job_server(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The Ray version the job server at `url` runs; ClusterUnreachable when it does not answer.
    A cluster with token authentication answers 401 without a token: it is there (Ray's client,
    which sends the token, reports authentication problems itself)."""
    import requests

    try:
        response = requests.get(f"{url}/api/version", timeout=max(timeout_s, 0.5))
        if response.status_code in (401, 403):
            return "unknown (token authentication: Ray's client sends the token)"
        response.raise_for_status()
        return str(response.json()["ray_version"])
    except requests.exceptions.Timeout:
        reason = f"no answer within {timeout_s:.0f} s"
    except requests.exceptions.ConnectionError as err:
        reason = "connection refused" if "refused" in str(err).lower() else f"cannot connect ({type(err).__name__})"
    except (requests.exceptions.RequestException, ValueError, KeyError) as err:
        reason = f"not a Ray job server ({err})"
    raise ClusterUnreachable(f"cannot reach the Ray job server at {url}: {reason}. {_HINT}")


def connect(address: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
    """A JobSubmissionClient for `address` (default: RAY_ADDRESS, else DEFAULT_ADDRESS)."""
    deadline = time.monotonic() + timeout_s
    url = api_server_url(resolve_address(address) or DEFAULT_ADDRESS, timeout_s)
    check_job_server(url, max(deadline - time.monotonic(), 0.5))
    from ray.job_submission import JobSubmissionClient  # after the check: importing Ray takes seconds

    use_token_if_available()
    with _without_address_env():
        return _run_with_timeout(lambda: JobSubmissionClient(url), max(deadline - time.monotonic(), 1.0), f"connecting to {url}")


def use_token_if_available() -> None:
    """Let Ray's client send the cluster's token: with `RAY_AUTH_MODE` unset and a token at hand
    (`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`), token mode for this process."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def ensure_token() -> None:
    """A token for a head rft starts (made in `~/.ray/auth_token` when none is at hand), so that
    `ray start` turns token authentication on; nothing when `RAY_AUTH_MODE=disabled`."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    from ray._private.authentication.authentication_token_setup import generate_and_save_token
    from ray._raylet import AuthenticationTokenLoader

    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        generate_and_save_token()


def head_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `ray start --head` rft runs: loopback only, token made (see above)."""
    ensure_token()
    return {**(os.environ if environ is None else environ), **LOCAL_ONLY_ENV}


def free_ports(*preferred: int | None) -> list[int]:
    """One free port per argument: the preferred one when no address of this machine uses it,
    else one the OS picks. All sockets stay bound until every port is chosen, so they differ."""
    sockets, ports = [], []
    try:
        for want in preferred:
            for port in ([want] if want else []) + [0]:
                sock = socket.socket()
                try:
                    sock.bind(("", port))
                except OSError:
                    sock.close()
                    continue
                sockets.append(sock)
                ports.append(sock.getsockname()[1])
                break
            else:
                raise OSError("no free port on this machine")
    finally:
        for sock in sockets:
            sock.close()
    return ports


def ray_executable() -> str:
    """The `ray` CLI next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def cluster_in(temp_dir: str | None) -> str | None:
    """The dashboard URL of the cluster last started by `ray start` with this temp dir (None: Ray's
    default, /tmp/ray), if it still answers."""
    from ray._private.utils import read_ray_address

    gcs = read_ray_address(temp_dir)
    if not gcs:
        return None
    try:
        url = api_server_url(gcs, timeout_s=5)
        check_job_server(url, timeout_s=3)
    except ClusterUnreachable:
        return None
    return url


def start_head_command(gcs_port: int, dashboard_port: int, num_cpus: int, extra: list[str] | None = None) -> list[str]:
    """`ray start --head` on loopback, beside any other Ray on the machine: the job agent binds a
    port of its own choosing (0) instead of Ray's fixed 52365, and the Ray Client server gets a
    free port instead of 10001. A busy agent port would leave the head without a job agent:
    "No available agent to submit job"; a port picked here and bound seconds later can be taken
    meanwhile, so the agent's is not picked here."""
    (client_port,) = free_ports(None)
    return [
        ray_executable(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--include-dashboard=true",
        "--dashboard-agent-listen-port=0", f"--ray-client-server-port={client_port}",
        f"--num-cpus={num_cpus}", "--disable-usage-stats", *(extra or []),
    ]  # fmt: skip


def wait_for_job_server(url: str, timeout_s: float = 60.0) -> None:
    """Poll the job server until it answers; ClusterUnreachable after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check_job_server(url, timeout_s=2)
            return
        except ClusterUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_for_job_agent(temp_dir: str, timeout_s: float = 60.0) -> int:
    """The HTTP port of the job agent of the head last started with `temp_dir`, once it listens.
    The dashboard answers before the agent that runs jobs has registered, and an agent whose HTTP
    server failed stays alive without it (recording port -1): both leave the head unable to take
    jobs, so a head rft starts is not handed out before this passes."""
    session = Path(temp_dir) / "session_latest"
    deadline = time.monotonic() + timeout_s
    port = None
    while time.monotonic() < deadline:
        port = _recorded_agent_port(session)
        if port is not None and port != 0:
            break
        time.sleep(0.5)
    if port is not None and port > 0:
        return port
    state = "its HTTP server failed to start" if port == -1 else f"it did not start within {timeout_s:.0f} s"
    logs = [session / "logs" / name for name in ("dashboard_agent.log", "dashboard_agent.err")]
    tails = "\n".join(f"--- last lines of {log}:\n{_tail(log, 20)}" for log in logs)
    raise ClusterUnreachable(f"the job agent of the Ray head in {temp_dir} cannot take jobs: {state}.\n{tails}")


def _recorded_agent_port(session: Path) -> int | None:
    """The agent HTTP port Ray recorded in a session folder (-1: failed), None before it did."""
    for path in session.glob("dashboard_agent_listen_port_*"):
        text = path.read_text().strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def _tail(path: Path, lines: int) -> str:
    from rft.jobs.entrypoint import log_tail  # here: entrypoint imports this module

    try:
        return log_tail(path.read_text(errors="replace"), lines)
    except OSError as err:
        return f"({err})"


def local_head(num_cpus: int | None = None, temp_dir: str = LOCAL_TEMP_DIR, log: Callable[[str], None] = print) -> str:
    """The dashboard URL of a Ray head on this machine: the one `ray start` made (by you, in Ray's
    default temp dir, or by rft in `temp_dir`) if it answers, else a new one on loopback.

    rft's head lives in its own temp dir so that `ray.init()` elsewhere on the machine (which
    attaches to the cluster recorded in /tmp/ray) does not silently join it."""
    for folder in (None, temp_dir):
        existing = cluster_in(folder)
        if existing:
            log(f"using the local Ray cluster at {existing} (started earlier with `ray start`)")
            return existing
    cpus = num_cpus or max(os.cpu_count() or 1, 4)
    gcs_port, dashboard_port = free_ports(6379, 8265)
    command = start_head_command(gcs_port, dashboard_port, cpus, [f"--temp-dir={temp_dir}"])
    log(f"starting a local Ray head: {' '.join(command)}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=head_env())
    if done.returncode != 0:
        raise ClusterUnreachable(f"`ray start --head` failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    url = f"http://127.0.0.1:{dashboard_port}"
    wait_for_job_server(url)
    wait_for_job_agent(temp_dir)
    log(
        f"local Ray head ready at {url} ({cpus} CPUs); it keeps running for later sweeps and `python -m rft.jobs`; `ray stop` ends it (and every other Ray on this machine)"
    )
    return url
