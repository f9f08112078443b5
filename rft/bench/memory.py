"""Peak resident memory of each actor of a launch, sampled from /proc (Linux).

Every `interval` seconds the sampler walks the launch's process tree and adds each process's
resident memory (VmRSS) to its role: the Ray actor it belongs to (the nearest process, itself or
an ancestor, whose title Ray set to `ray::<Class>[.<method>]`, so a vLLM engine process started by
a rollout actor counts with that actor), or `driver+ray` (the launch, raylet, GCS, agents, idle
workers). A role's peak is the largest per-sample sum seen: memory that lives less than one
interval is missed, and pages shared between processes count once per process.

The learner's own number, `memory/learner_peak_rss_gb` (getrusage inside the actor), stays the
exact one for the learner; this gives the same view for every actor, the rollout ones included.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

DRIVER_ROLE = "driver+ray"
RAY_TITLE = "ray::"
NOT_ACTORS = ("IDLE", "DashboardAgent", "RuntimeEnvAgent", "JobSupervisor")


def role_of_title(title: str) -> str | None:
    """The actor class named by a Ray process title (`ray::RolloutWorker.generate` ->
    `RolloutWorker`); None for other processes and Ray's own workers."""
    if not title.startswith(RAY_TITLE):
        return None
    name = title[len(RAY_TITLE) :].split()[0].split(".")[0] if title[len(RAY_TITLE) :].strip() else ""
    return name if name and name not in NOT_ACTORS else None


def roles(parents: dict[int, int], titles: dict[int, str], root: int) -> dict[int, str]:
    """pid -> role for every process under `root` (see the module docstring)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, str] = {}
    todo = [(root, DRIVER_ROLE)]
    while todo:
        pid, inherited = todo.pop()
        role = role_of_title(titles.get(pid, "")) or inherited
        out[pid] = role
        todo += [(child, role) for child in children.get(pid, [])]
    return out


def peak_by_role(samples: list[dict[str, int]]) -> dict[str, float]:
    """GB: for each role, the largest of its per-sample byte sums."""
    peaks: dict[str, int] = {}
    for sample in samples:
        for role, used in sample.items():
            peaks[role] = max(peaks.get(role, 0), used)
    return {role: round(used / 1e9, 3) for role, used in sorted(peaks.items())}


class ProcessTreeSampler(threading.Thread):
    """Calls `sample()` every `interval` seconds on `root_pid`'s process tree until `stop()`
    (a daemon thread; does nothing where /proc is missing)."""

    def __init__(self, root_pid: int, interval: float = 1.0, probe: str = "/proc/self/status"):
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self._done = threading.Event()
        self.available = Path(probe).exists()

    def run(self) -> None:
        while self.available and not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        if self.is_alive():
            self.join(timeout=5)

    def sample(self) -> None:
        raise NotImplementedError


class TreeMemory(ProcessTreeSampler):
    """Samples the resident memory of `root_pid`'s process tree by role until `stop()`."""

    def __init__(self, root_pid: int, interval: float = 1.0):
        super().__init__(root_pid, interval, probe="/proc/self/status")
        self._peaks: dict[str, int] = {}

    def peaks_gb(self) -> dict[str, float]:
        return peak_by_role([self._peaks])

    def sample(self) -> None:
        parents, titles, rss = _proc_table()
        used: dict[str, int] = {}
        for pid, role in roles(parents, titles, self.root_pid).items():
            used[role] = used.get(role, 0) + rss.get(pid, 0)
        for role, value in used.items():
            self._peaks[role] = max(self._peaks.get(role, 0), value)


def _proc_table() -> tuple[dict[int, int], dict[int, str], dict[int, int]]:
    """(pid -> parent, pid -> title, pid -> resident bytes) for every readable process."""
    parents, titles, rss = {}, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[pid] = int(fields.get("PPid", "0").strip() or 0)
        titles[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    return parents, titles, rss
