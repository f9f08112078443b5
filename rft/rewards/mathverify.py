"""math-verify with a timeout that works in any thread, Ray actor or pool worker.

math-verify bounds its own work with `signal.alarm`, which only works in the main thread of the
main interpreter (elsewhere `parse`/`verify` raise, and the seeds' rewards then silently score 0),
and which clobbers any other SIGALRM user (pytest-timeout, for one). Here math-verify runs with its
signal timeouts disabled (`parsing_timeout=None`, `timeout_seconds=None`) in a long-lived child
process (`rft.rewards._mathverify_worker`); the caller waits on the child's pipe for at most
`timeout` seconds and, past it, kills the child (the next call starts a fresh one) and returns
False. Inputs are also cut to their last `max_chars` characters (math-verify takes the last answer
it finds), so megabyte-long completions cost milliseconds, not a timeout each.

A plain subprocess rather than `multiprocessing`: it works inside daemonic pool workers, and it
never re-imports the caller's `__main__` (a Ray worker's, a user's script). One child per calling
process, shared by its threads under a lock; its start-up (importing sympy, about a second) is
not counted against `timeout`. Protocol: one JSON line `[gold, prediction]` in, `1` or `0` out.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import weakref

from rft.rewards._mathverify_worker import READY as _READY

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_CHARS = 4_000
_STARTUP_TIMEOUT_S = 120.0
_WORKER_MODULE = "rft.rewards._mathverify_worker"


class MathVerifier:
    """Answers whether a prediction is equivalent to a gold answer, within a hard time bound."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S, max_chars: int = DEFAULT_MAX_CHARS):
        self.timeout = timeout
        self.max_chars = max_chars
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        # A forked child (a fork-started DataLoader worker, say) must not share the parent's
        # worker pipes or a lock another thread held at fork time; it starts its own worker.
        this = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (v := this()) is not None and v._forget())

    def verify(self, prediction: str, gold: str, timeout: float | None = None) -> bool:
        """True if math-verify finds `prediction` equal to `gold`; False on timeout or error."""
        prediction, gold = prediction[-self.max_chars :], gold[-self.max_chars :]
        if not prediction.strip() or not gold.strip():
            return False
        request = json.dumps([gold, prediction]) + "\n"
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            try:
                proc = self._ensure_child()
                proc.stdin.write(request.encode())
                proc.stdin.flush()
                reply = _read_line(proc.stdout.fileno(), limit)
                if reply is not None:
                    return reply == "1"
                logger.warning("math-verify timed out after %.1fs; restarting its worker", limit)
            except (OSError, RuntimeError, ValueError) as err:
                logger.warning("math-verify worker failed (%s); restarting it", err)
            self._stop_child()
            return False

    def close(self) -> None:
        with self._lock:
            self._stop_child()

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._proc = None

    def _ensure_child(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop_child()
        proc = subprocess.Popen(
            [sys.executable, "-m", _WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_worker_env(),
        )
        self._proc = proc
        if _read_line(proc.stdout.fileno(), _STARTUP_TIMEOUT_S) != _READY:
            raise RuntimeError("math-verify worker did not start")
        return proc

    def _stop_child(self) -> None:
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait(timeout=10)
        for pipe in (self._proc.stdin, self._proc.stdout):
            pipe.close()
        self._proc = None


def _worker_env() -> dict[str, str]:
    """The caller's environment, with this checkout of `rft` importable even if not installed."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _read_line(fd: int, timeout: float) -> str | None:
    """One short reply line from `fd`, or None if none arrives within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 64)
        if not chunk:
            raise RuntimeError("math-verify worker exited")
        data += chunk
    return data.decode().strip()


_default = MathVerifier()
atexit.register(_default.close)


def verify_equal(prediction: str, gold: str, timeout: float | None = None) -> bool:
    """`MathVerifier.verify` on the process-wide worker."""
    return _default.verify(prediction, gold, timeout=timeout)
