"""Start `python -m rft.launch` runs as subprocesses and read back what they wrote.

Every run gets its own folder (`hydra.run.dir`); its console output goes to `<run>/launch.out`.
A run is never retried: a failure is recorded (return code, the log's last lines) and the
benchmark goes on with the next one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rft.bench.memory import ProcessTreeSampler
from rft.tracking import result as result_file
from rft.tracking.result import RunResult

LOG_NAME = "launch.out"
TAIL_LINES = 20
KILLED = -9  # the return code recorded for a run stopped at its time limit


@dataclass
class LaunchResult:
    """One finished (or failed) launch."""

    run_dir: str
    overrides: list[str]
    returncode: int
    wall_s: float
    load_before: float
    load_after: float
    cpu_s: float | None = None  # CPU seconds of the launch and every process under it (Linux)
    peak_rss_gb: dict[str, float] = field(default_factory=dict)  # per actor role (rft.bench.memory)
    log_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def launch_command(run_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "rft.launch", *overrides, f"hydra.run.dir={Path(run_dir).resolve()}"]


def launch(run_dir: Path, overrides: list[str], timeout_s: float | None = None, echo: bool = False) -> LaunchResult:
    """Run one launch to completion; its output goes to `<run_dir>/launch.out` (and the console
    with `echo`). A run past `timeout_s` is stopped and recorded as failed (KILLED)."""
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_NAME
    load_before, start = load_average(), time.perf_counter()
    with open(log_path, "w") as log:
        returncode, cpu_s, peak_rss = run_command(launch_command(run_dir, overrides), log, timeout_s, echo)
    wall = time.perf_counter() - start
    return LaunchResult(str(run_dir), list(overrides), returncode, round(wall, 1), load_before, load_average(), cpu_s, peak_rss, _tail(log_path))


def run_command(command: list[str], log, timeout_s: float | None, echo: bool) -> tuple[int, float | None, dict[str, float]]:
    """Run `command` in its own session, copying its output to `log`; past `timeout_s` it gets
    SIGINT (the launch shuts Ray down), then SIGKILL for its whole process group. Returns the
    exit status, the CPU seconds of the process tree and its peak resident memory per role."""
    from rft.bench.memory import TreeMemory

    env = {**os.environ, "RFT_PROGRESS": os.environ.get("RFT_PROGRESS", "0")}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, bufsize=1, start_new_session=True)
    pump = threading.Thread(target=_copy, args=(proc.stdout, log, echo), daemon=True)
    pump.start()
    meter = CpuMeter(proc.pid)
    meter.start()
    memory = TreeMemory(proc.pid)
    memory.start()
    returncode = KILLED
    try:
        returncode = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        log.write(f"\n[rft.bench] stopped after {timeout_s:.0f} s\n")
    except KeyboardInterrupt:  # the child has its own session: Ctrl-C does not reach it
        _stop(proc)
        raise
    finally:
        meter.stop()
        memory.stop()
    pump.join(timeout=10)
    return returncode, meter.total_s(), memory.peaks_gb()


def _copy(stream, log, echo: bool) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()


def _stop(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class CpuMeter(ProcessTreeSampler):
    """CPU seconds used by a process and all its descendants (Ray's raylet, workers, vLLM's
    engine processes), sampled from /proc every `interval` seconds: each process counts with the
    last value seen, so only processes that live less than one interval are missed. Unlike wall
    time this hardly depends on what else the machine runs; on 2 cores, wall time on an idle
    machine is roughly between cpu_s / 2 and cpu_s plus start-up waits. None off Linux."""

    def __init__(self, root_pid: int, interval: float = 1.0):
        super().__init__(root_pid, interval, probe="/proc/self/stat")
        self._seen: dict[tuple[int, int], float] = {}
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def total_s(self) -> float | None:
        return round(sum(self._seen.values()), 1) if self.available else None

    def sample(self) -> None:
        stats = _proc_stats()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        todo = [self.root_pid]
        while todo:
            pid = todo.pop()
            if pid in stats:
                _, start, ticks = stats[pid]
                self._seen[(pid, start)] = ticks / self._tick
            todo += children.get(pid, [])


def _proc_stats() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, start time, utime + stime in clock ticks) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
        out[int(entry)] = (int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]))
    return out


def _tail(path: Path) -> list[str]:
    lines = path.read_text(errors="replace").splitlines()
    return lines[-TAIL_LINES:]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of `<run_dir>/metrics.jsonl` that carry a training step's metrics."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if "timing/step_s" in row]


def read_result(run_dir: Path) -> RunResult | None:
    """The run's `result.json` (None when the run wrote none)."""
    return result_file.read_result(run_dir)


def median_after_warmup(rows: list[dict[str, Any]], key: str) -> float:
    """Median of `key` over the steps after the first (the warm-up step); the first step alone
    when it is the only one. NaN when no row has the key."""
    steady = rows[1:] if len(rows) > 1 else rows
    values = [float(row[key]) for row in steady if key in row and finite(row[key])]
    return statistics.median(values) if values else float("nan")


def finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return path
