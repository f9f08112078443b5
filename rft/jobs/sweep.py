"""The state of a sweep of Ray Jobs: `sweep.json`, a live status table, following and stopping.

`sweep.json` (in the sweep folder) lists every point: index, overrides, what it needs from the
cluster (`demand`), submission id, status (QUEUED → PENDING → RUNNING → SUCCEEDED | FAILED |
STOPPED; REJECTED when it needs more than the whole cluster has, SUBMIT_FAILED when the cluster
refused it, CANCELLED when the sweep was interrupted before it started), run folder, final metric,
metrics, the early-stopping record (`rungs`: the metric at each rung and the decision), and for
failures the tail of the job's log. It is rewritten atomically whenever something changes, so
another process (or a person) can read it at any time.

`follow()` polls the jobs until the sweep is done, showing a rich table (live on a terminal;
status changes are also logged, for non-interactive logs) and calling the launcher back on every
poll (admitting queued points, early stopping). Ctrl-C while following stops every job of the
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
QUEUED = "QUEUED"  # waiting in the launcher for room on the cluster; not submitted yet
REJECTED = "REJECTED"  # needs more than the whole cluster has; never submitted
SUBMIT_FAILED = "SUBMIT_FAILED"
CANCELLED = "CANCELLED"  # still queued when the sweep was interrupted
ENDED = TERMINAL | {SUBMIT_FAILED, REJECTED, CANCELLED}


@dataclass
class Point:
    index: int
    overrides: list[str]
    run_dir: str
    submission_id: str | None = None
    status: str = QUEUED
    final_metric: float | None = None
    metrics: dict[str, Any] | None = None
    optimized: str | None = None  # the final metric's name and direction, e.g. "reward/mean (maximize)"
    message: str | None = None
    log_tail: str | None = None
    demand: dict[str, float] = field(default_factory=dict)  # driver + placement bundles
    rungs: dict[str, dict[str, Any]] = field(default_factory=dict)  # early stopping: step -> value, decision
    early_stopped: bool = False  # stopped by the launcher's early stopping (its last metric is final_metric)

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(no overrides)"

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def active(self) -> bool:
        """Submitted and not ended: it holds (or is about to hold) cluster resources."""
        return self.submission_id is not None and not self.ended


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


def counts(state: SweepState) -> str:
    """`2 queued · 1 running · 1 finished` for the table's title and the log."""
    queued = sum(p.status == QUEUED for p in state.points)
    running = sum(p.active for p in state.points)
    finished = sum(p.ended for p in state.points)
    return f"{queued} queued · {running} running · {finished} finished"


def _early_stop_note(point: Point) -> str:
    """The last early-stopping decision taken for a point, e.g. `stopped at step 2 (3/4)`."""
    decided = [(int(step), rec) for step, rec in point.rungs.items() if rec.get("decision")]
    if not decided:
        return ""
    step, rec = max(decided, key=lambda item: item[0])
    return f"{rec['decision']} at step {step} ({rec.get('rank', '')})"


def status_table(state: SweepState):
    """A rich table of the points, the queue included."""
    from rich.table import Table

    from rft.jobs.resources import short

    table = Table(title=f"sweep {state.sweep_dir} on {state.address}: {counts(state)}")
    columns = ("#", "point", "needs", "job", "status", "metric", "early stop")
    for column in columns:
        table.add_column(column, overflow="fold")
    for p in state.points:
        metric = "" if p.final_metric is None else f"{p.final_metric:.4g}"
        table.add_row(str(p.index), state.short_label(p), short(p.demand), p.submission_id or "", p.status, metric, _early_stop_note(p))
    return table


def _finish(client, state: SweepState, point: Point, tail_lines: int, report: Callable[[str], None]) -> None:
    """Record a point that just ended: its result when it succeeded, its last metric when early
    stopping stopped it, its log tail otherwise."""
    if point.early_stopped and point.status == "STOPPED":
        report(f"point {point.index} ({state.short_label(point)}) stopped early; last metric {point.final_metric}")
        return
    point.early_stopped = False  # a stop that came after the job had ended
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
        if not point.active:
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
    """Stop every point that has not ended (queued ones are CANCELLED); wait up to `wait_s` for
    them to end; save."""
    for point in state.points:
        if point.status == QUEUED:
            point.status, point.message = CANCELLED, "the sweep was interrupted before it started"
    running = [p for p in state.points if p.active]
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


def all_ended(state: SweepState) -> bool:
    return all(p.ended for p in state.points)


def follow(
    client,
    state: SweepState,
    poll_s: float = 2.0,
    tail_lines: int = 40,
    stop_on_interrupt: bool = True,
    tick: Callable[[Callable[[str], None]], bool] | None = None,
    done: Callable[[SweepState], bool] = all_ended,
) -> None:
    """Poll until `done(state)` (default: every point has ended), showing the live table and
    calling `tick(report)` after every poll (True when it changed something); Ctrl-C stops the
    sweep's jobs.

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
            while not done(state):
                time.sleep(poll_s)
                changed = poll(client, state, tail_lines, report)
                if tick is not None:
                    changed = tick(report) or changed
                if changed:
                    state.save()
                    live.update(status_table(state), refresh=True)
        if not console.is_terminal:
            console.print()
    except KeyboardInterrupt:
        if stop_on_interrupt:
            console.print("\ninterrupted: stopping the sweep's jobs")
            stop_all(client, state)
            console.print(status_table(state))
        raise
