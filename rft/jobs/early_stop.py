"""Early stopping for sweeps: successive halving over training steps (ASHA-style rungs).

`hydra.launcher.early_stop.rungs=[2,4]` names the steps at which running points are compared on
one metric (`metric`, default the point's `trainer.optimized_metric` or its stage's own; with its
direction). A point's value at a rung is the first value of the metric it logged at a step >= the
rung, read from its `metrics.jsonl` (so `trainer.eval_every` metrics work too: the rung is passed
at the first evaluation at or after it).

The decision for a running point at a rung is taken once at least `min_points` points (running or
ended, from every batch of the sweep) have a value there: it goes on when it ranks among the best
`max(1, ceil(n / reduction_factor))` of the n values, and is stopped otherwise (through Ray Jobs'
stop). Points that reach a rung before `min_points` others have are judged as soon as enough have.
Each decision, the value, and the rank are recorded in the point's `rungs` in sweep.json; a stopped
point's last logged metric becomes its final metric, which the launcher returns to Hydra.

It reads the run folders, so the submitting machine must see them (one machine, or a shared
file system: `RFT_OUTPUTS` on shared storage).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rft.jobs.sweep import Point, SweepState

METRICS_FILE = "metrics.jsonl"
CONTINUE, STOP = "continue", "stop"


@dataclass
class EarlyStopConf:
    rungs: list[int] = field(default_factory=list)  # steps at which points are compared; empty: off
    metric: str | None = None  # null: trainer.optimized_metric, else the stage's own
    direction: str | None = None  # maximize | minimize; null: the metric's own (given with `metric`: required)
    reduction_factor: float = 2.0  # keep the best 1/reduction_factor at each rung
    min_points: int = 2  # values needed at a rung before anyone there is judged


def read_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl; a torn last line (the run is writing) is skipped."""
    path = Path(run_dir) / METRICS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def _value(row: dict[str, Any], names: Sequence[str]) -> float | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def value_at(rows: Iterable[dict[str, Any]], names: Sequence[str], step: int) -> float | None:
    """The first value of the metric logged at a step >= `step`; None before the run gets there."""
    for row in rows:
        value = _value(row, names)
        if value is not None and int(row["step"]) >= step:
            return value
    return None


def last_value(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> float | None:
    """The metric's last logged value."""
    for row in reversed(rows):
        value = _value(row, names)
        if value is not None:
            return value
    return None


def _goodness(value: float, maximize: bool) -> float:
    """Larger is better; NaN is worst."""
    if math.isnan(value):
        return -math.inf
    return value if maximize else -value


@dataclass
class EarlyStopper:
    """Applies successive halving to a sweep's running points (call `check` on every poll)."""

    conf: EarlyStopConf
    names: tuple[str, ...]  # the metric, or the names tried in order (a stage's default target)
    maximize: bool
    _read_after_end: set[int] = field(default_factory=set)  # ended points whose rungs were read once more

    @property
    def label(self) -> str:
        return f"{' / '.join(self.names)} ({'maximize' if self.maximize else 'minimize'})"

    def check(self, state: SweepState, stop: Callable[[Point], None], report: Callable[[str], None]) -> bool:
        """Record new rung values, decide where enough points have reached a rung, stop losers.
        True when anything changed."""
        changed = self._record(state)
        for rung in sorted(self.conf.rungs):
            changed = self._decide(state, rung, stop, report) or changed
        return changed

    def _record(self, state: SweepState) -> bool:
        changed = False
        for point in state.points:
            if point.submission_id is None or point.early_stopped or point.index in self._read_after_end:
                continue
            if point.ended:  # one last read: it may have passed rungs since the previous poll
                self._read_after_end.add(point.index)
            rows = read_rows(point.run_dir)
            last = last_value(rows, self.names)
            if point.active and last is not None and last != point.final_metric:
                point.final_metric, changed = last, True  # the latest value; the result replaces it at the end
            for rung in self.conf.rungs:
                if str(rung) in point.rungs:
                    continue
                value = value_at(rows, self.names, rung)
                if value is not None:
                    point.rungs[str(rung)] = {"value": value}
                    changed = True
        return changed

    def _decide(self, state: SweepState, rung: int, stop: Callable[[Point], None], report: Callable[[str], None]) -> bool:
        key = str(rung)
        reached = [p for p in state.points if key in p.rungs]
        if len(reached) < max(self.conf.min_points, 1):
            return False
        ranked = sorted(reached, key=lambda p: (-_goodness(p.rungs[key]["value"], self.maximize), p.index))
        keep = max(1, math.ceil(len(ranked) / self.conf.reduction_factor))
        changed = False
        for rank, point in enumerate(ranked, start=1):
            record = point.rungs[key]
            if record.get("decision") or not point.active or point.early_stopped:
                continue
            record["rank"] = f"{rank}/{len(ranked)}"
            record["decision"] = CONTINUE if rank <= keep else STOP
            changed = True
            if record["decision"] == STOP:
                point.early_stopped = True
                point.final_metric = point.final_metric if point.final_metric is not None else record["value"]
                report(
                    f"early stop: point {point.index} ({state.short_label(point)}) at step {rung}: "
                    f"{self.label} = {record['value']:.4g}, rank {rank} of {len(ranked)} (the best {keep} go on)"
                )
                stop(point)
        return changed
