"""`<run dir>/result.json`: one typed record of how a run ended, written by the stage runner and
read by everything else (Reason-RFT's stage 2, Ray Jobs, sweeps, the Hydra launcher, benches).

    {"schema": 1, "stage": "rl", "status": "FINISHED", "checkpoint": ".../checkpoints/step_3",
     "metrics": {...last step's row...}, "eval_before": {...} | null, "eval_after": {...} | null,
     "optimized": {"name": "reward/mean", "direction": "maximize", "value": 0.41},
     "final_metric": 0.41, "stage1": {...} | null, "stage2": {...} | null}

`optimized` names the metric a sweep should optimise and in which direction (`trainer.optimized_metric`,
`trainer.optimized_direction`); `final_metric` repeats its value for readers that only want a
number (Hydra sweepers get it as the job's return value, in its own sign: a sweeper must be told
the direction, e.g. Optuna's `direction`). A Reason-RFT run nests its two stages' results.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1


class Direction(StrEnum):
    minimize = "minimize"
    maximize = "maximize"


@dataclass
class Optimized:
    """The metric a run is judged by: its name, which way is better, its final value (None when
    the run did not report it)."""

    name: str
    direction: Direction
    value: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Optimized:
        return cls(str(data["name"]), Direction(data["direction"]), _number(data.get("value")))


@dataclass
class RunResult:
    stage: str
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    status: str = "FINISHED"
    optimized: Optimized | None = None
    eval_before: dict[str, float] | None = None
    eval_after: dict[str, float] | None = None
    stage1: RunResult | None = None
    stage2: RunResult | None = None
    schema: int = SCHEMA_VERSION

    @property
    def final_metric(self) -> float | None:
        return self.optimized.value if self.optimized is not None else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["final_metric"] = self.final_metric
        for part in ("stage1", "stage2"):
            part_result = getattr(self, part)
            data[part] = part_result.to_dict() if part_result is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        optimized = data.get("optimized")
        parts = {p: cls.from_dict(data[p]) if isinstance(data.get(p), dict) else None for p in ("stage1", "stage2")}
        return cls(
            stage=str(data.get("stage", "")),
            metrics=dict(data.get("metrics") or {}),
            checkpoint=data.get("checkpoint"),
            status=str(data.get("status", "FINISHED")),
            optimized=Optimized.from_dict(optimized) if optimized else None,
            eval_before=data.get("eval_before"),
            eval_after=data.get("eval_after"),
            schema=int(data.get("schema", SCHEMA_VERSION)),
            **parts,
        )

    def lookup(self, name: str) -> float | None:
        """`name`'s final value: from the last evaluation, else the last step's metrics, else stage
        2's (a Reason-RFT run); None when absent or not a finite number."""
        for source in (self.eval_after or {}, self.metrics):
            value = _number(source.get(name))
            if value is not None:
                return value
        return self.stage2.lookup(name) if self.stage2 is not None else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def write_result(run_dir: str | Path, result: RunResult) -> Path:
    path = Path(run_dir) / RESULT_FILE
    path.write_text(json.dumps(result.to_dict(), indent=1, default=_json_default))
    return path


def read_result(run_dir: str | Path) -> RunResult | None:
    """`<run_dir>/result.json`, or None when it is not there (yet, or not on this machine) or unreadable."""
    try:
        data = json.loads((Path(run_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return RunResult.from_dict(data) if isinstance(data, dict) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return float(value)
