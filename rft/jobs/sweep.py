"""The state of a sweep of Ray Jobs: `sweep.json`, a live status table, following and stopping.

`sweep.json` (in the sweep folder) lists every point: index, overrides, submission id, status
(PENDING → RUNNING → SUCCEEDED | FAILED | STOPPED, or SUBMIT_FAILED), run folder, final metric,
metrics, and for failures the tail of the job's log. It is rewritten atomically whenever something
changes, so another process (or a person) can read it at any time.

`follow()` polls the jobs until all have ended, showing a rich table (live on a terminal; status
changes are also logged, for non-interactive logs). Ctrl-C while following stops every job of the
sweep that has not ended, records them, and re-raises.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rft.jobs.submit import TERMINAL, failure_tail, job_result

log = logging.getLogger("rft.jobs")
SWEEP_FILE = "sweep.json"
SUBMIT_FAILED = "SUBMIT_FAILED"
ENDED = TERMINAL | {SUBMIT_FAILED}


@dataclass
class Point:
    index: int
    overrides: list[str]
    run_dir: str
    submission_id: str | None = None
    status: str = "PENDING"
    final_metric: float | None = None
    metrics: dict[str, Any] | None = None
    optimized: str | None = None  # the final metric's name and direction, e.g. "reward/mean (maximize)"
    message: str | None = None
    log_tail: str | None = None

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(no overrides)"

    @property
    def ended(self) -> bool:
        return self.status in ENDED


@dataclass
class SweepState:
    sweep_dir: str
    address: str
    points: list[Point]
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    @property
    def path(self) -> Path:
        return Path(self.sweep_dir) / SWEEP_FILE

    def save(self) -> None:
        """Write sweep.json atomically (temporary file, then rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{SWEEP_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, default=str))
        os.replace(tmp, self.path)

    def short_label(self, point: Point) -> str:
        """The point's overrides that differ between points (all of them for a single point)."""
        shared = set.intersection(*(set(p.overrides) for p in self.points)) if len(self.points) > 1 else set()
        return " ".join(o for o in point.overrides if o not in shared) or point.label

    @classmethod
    def load(cls, path: str | Path) -> SweepState:
        data = json.loads(Path(path).read_text())
        data["points"] = [Point(**p) for p in data["points"]]
        return cls(**data)


def describe(result) -> str | None:
    """A `RunResult`'s optimised metric as "name (direction)"; None when it names none."""
    opt = result.optimized
    return f"{opt.name} ({opt.direction})" if opt is not None else None


def first_line(message: str | None) -> str | None:
    """Ray's job message without the log excerpt it appends to failures (rft keeps its own tail)."""
    if not message or not message.strip():
        return message
    return message.strip().splitlines()[0].split(", last available logs")[0].rstrip(",: ")


def status_name(status: Any) -> str:
    """Ray's JobStatus (a `(str, Enum)`, whose str() is "JobStatus.RUNNING") or its string, as
    the plain name, e.g. "RUNNING". Ray's enum, not one of rft's StrEnum config choices."""
    return str(getattr(status, "value", status))


def status_table(state: SweepState):
    """A rich table of the points."""
    from rich.table import Table

    table = Table(title=f"sweep {state.sweep_dir} on {state.address}")
    for column in ("#", "point", "job", "status", "final metric"):
        table.add_column(column, overflow="fold")
    for p in state.points:
        metric = "" if p.final_metric is None else f"{p.final_metric:.4g}"
        table.add_row(str(p.index), state.short_label(p), p.submission_id or "", p.status, metric)
    return table


def _finish(client, state: SweepState, point: Point, tail_lines: int, report: Callable[[str], None]) -> None:
    """Record a point that just ended: its result when it succeeded, its log tail otherwise."""
    if point.status == "SUCCEEDED":
        result = job_result(client, point.submission_id, point.run_dir)
        if result is not None:
            point.final_metric, point.metrics = result.final_metric, result.metrics
            point.optimized = describe(result)
        return
    point.log_tail = failure_tail(client, point.submission_id, tail_lines)
    report(
        f"point {point.index} ({state.short_label(point)}) {point.status}: {point.message or ''}\nlast lines of job {point.submission_id}:\n{point.log_tail}"
    )


def poll(client, state: SweepState, tail_lines: int = 40, report: Callable[[str], None] = log.info) -> bool:
    """Update every point that has not ended, once; True when something changed (then saved)."""
    changed = False
    for point in state.points:
        if point.ended:
            continue
        info = client.get_job_info(point.submission_id)
        status = status_name(info.status)
        if status == point.status:
            continue
        point.status, point.message, changed = status, first_line(info.message), True
        report(f"point {point.index} ({state.short_label(point)}): {status}")
        if point.ended:
            _finish(client, state, point, tail_lines, report)
    if changed:
        state.save()
    return changed


def stop_all(client, state: SweepState, wait_s: float = 15.0) -> None:
    """Stop every point that has not ended; wait up to `wait_s` for them to end; save."""
    running = [p for p in state.points if not p.ended and p.submission_id]
    for point in running:
        try:
            client.stop_job(point.submission_id)
        except Exception as err:
            log.warning("could not stop job %s: %s", point.submission_id, err)
    deadline = time.monotonic() + wait_s
    while True:
        for point in running:
            info = client.get_job_info(point.submission_id)
            point.status, point.message = status_name(info.status), first_line(info.message)
        if all(p.ended for p in running) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    state.save()


def follow(client, state: SweepState, poll_s: float = 2.0, tail_lines: int = 40, stop_on_interrupt: bool = True) -> None:
    """Poll until every point has ended, showing the live table; Ctrl-C stops the sweep's jobs.

    On a terminal the table updates in place and reports go through rich; otherwise (logs, CI)
    every status change is logged and the final table printed.
    """
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    try:
        with Live(status_table(state), console=console, auto_refresh=False) as live:
            report = live.console.print if console.is_terminal else log.info
            while not all(p.ended for p in state.points):
                time.sleep(poll_s)
                if poll(client, state, tail_lines, report):
                    live.update(status_table(state), refresh=True)
        if not console.is_terminal:
            console.print()
    except KeyboardInterrupt:
        if stop_on_interrupt:
            console.print("\ninterrupted: stopping the sweep's jobs")
            stop_all(client, state)
            console.print(status_table(state))
        raise
