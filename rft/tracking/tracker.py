"""`Tracker`: one object a training loop logs to; it fans out to metrics.jsonl, mlflow and wandb.

    with Tracker(run_dir, config=cfg, run_name="counting-grpo") as tracker:
        tracker.log(step, {"reward/mean": 0.4, "kl": kl_tensor})
        tracker.log_artifact(run_dir / "report.png")

- `<run_dir>/metrics.jsonl` is always written (whatever `sinks` says) and its errors propagate.
- mlflow: the tracking URI given, else `$MLFLOW_TRACKING_URI`, else an embedded SQLite store at
  `<outputs root>/mlflow.db` (mlflow's file store is deprecated). The config is logged flattened
  (dotted keys, string values, truncated to mlflow's limits). `parent_run_id` makes this a child
  run (sweeps, reason_rft's SFT and RL stages); `tracker.mlflow_run_id` is what a child needs.
- wandb: offline unless `wandb_mode` (or `$WANDB_MODE`) says otherwise, files under `<run_dir>/wandb`.
- An optional sink that fails (mlflow DB locked, bad URI, wandb service down) warns once per sink
  and call kind, and is tried again on the next call (a locked DB recovers); a sink that cannot
  start is left out. Training never dies of tracking.
- Restarting in the same run_dir resumes: metrics.jsonl is appended to and the same mlflow and
  wandb runs are continued; their ids live in `tracking.json`. `resume_step` (the step of the
  checkpoint a trainer resumed from) drops what was logged after it: metrics.jsonl rows, and in
  mlflow the run is superseded by a copy without those points (`rft.tracking.sinks`), so every
  step is recorded once. A negative `resume_step` (a trainer starting over) empties
  metrics.jsonl and opens new mlflow and wandb runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rft.tracking.params import flatten_config, to_number, to_plain
from rft.tracking.sinks import STATUSES, JsonlSink, MlflowSink, WandbSink

log = logging.getLogger(__name__)
KNOWN_SINKS = ("jsonl", "mlflow", "wandb")
STATE_FILE = "tracking.json"


def outputs_root() -> Path:
    """`$RFT_OUTPUTS`, else `<cwd>/outputs` (see rft.paths), absolute."""
    return Path(os.environ.get("RFT_OUTPUTS", "outputs")).expanduser().resolve()


def default_mlflow_uri() -> str:
    """`$MLFLOW_TRACKING_URI` if set, else `sqlite:///<outputs root>/mlflow.db`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = outputs_root()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


class Tracker:
    def __init__(
        self,
        run_dir: str | Path,
        sinks: Iterable[str] = KNOWN_SINKS,
        config: Any = None,
        run_name: str | None = None,
        mlflow_uri: str | None = None,
        mlflow_experiment: str = "rft",
        wandb_project: str = "rft",
        wandb_mode: str | None = None,
        parent_run_id: str | None = None,
        *,
        wandb_group: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_step: int | None = None,
    ):
        sinks = tuple(sinks)
        unknown = set(sinks) - set(KNOWN_SINKS)
        if unknown:
            raise ValueError(f"unknown tracking sinks {sorted(unknown)}; known: {KNOWN_SINKS}")
        self.run_dir = Path(run_dir).resolve()
        self.run_name = run_name or self.run_dir.name
        self._closed = False
        self._warned: set[str] = set()
        self._state = _read_state(self.run_dir / STATE_FILE)
        self._jsonl = JsonlSink(self.run_dir, resume_step=resume_step)
        self._optional: list[Any] = []
        plain_config = to_plain(config) or {}
        if "mlflow" in sinks:
            uri = mlflow_uri or default_mlflow_uri()
            resume_id = self._state.get("mlflow_run_id") if self._state.get("mlflow_uri") == uri and not _starts_over(resume_step) else None
            self._open(
                lambda: MlflowSink(uri, mlflow_experiment, self.run_name, parent_run_id=parent_run_id, run_id=resume_id, tags=tags, resume_step=resume_step),
                "mlflow",
            )
        if "wandb" in sinks:
            mode = wandb_mode or os.environ.get("WANDB_MODE", "offline")
            self._open(
                lambda: WandbSink(
                    self.run_dir,
                    wandb_project,
                    self.run_name,
                    plain_config,
                    mode=mode,
                    run_id=None if _starts_over(resume_step) else self._state.get("wandb_run_id"),
                    group=wandb_group,
                    tags=tags,
                ),
                "wandb",
            )
        self._save_state()
        if config is not None:
            self.log_params(flatten_config(plain_config))

    # ----------------------------------------------------------------- public API

    @property
    def mlflow_run_id(self) -> str | None:
        sink = self._sink("mlflow")
        return sink.run_id if sink else None

    @property
    def wandb_run_id(self) -> str | None:
        sink = self._sink("wandb")
        return sink.run_id if sink else None

    @property
    def active_sinks(self) -> list[str]:
        return ["jsonl"] + [s.name for s in self._optional]

    @property
    def metrics_path(self) -> Path:
        return self._jsonl.path

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record metrics at `step`. Tensors are converted once here (one host sync each)."""
        row = {k: (n if (n := to_number(v)) is not None else v) for k, v in metrics.items()}
        self._jsonl.log(step, row)
        self._fan_out("log", step, row)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record flat parameters (values are stringified)."""
        flat = {str(k): str(v) for k, v in params.items()}
        self._jsonl.log_params(flat)
        self._fan_out("log_params", flat)

    def log_artifact(self, path: str | Path) -> None:
        """Attach a file or folder to the run; copied under `<run_dir>/artifacts` if outside the run dir."""
        path = Path(path).resolve()
        if not path.exists():
            raise FileNotFoundError(path)
        if not path.is_relative_to(self.run_dir):
            dest = self.run_dir / "artifacts" / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree(path, dest, dirs_exist_ok=True) if path.is_dir() else shutil.copy2(path, dest))
        self._fan_out("log_artifact", path)

    def close(self, status: str = "FINISHED") -> None:
        """End the run with FINISHED, FAILED or KILLED. Safe to call twice."""
        if self._closed:
            return
        status = status.upper()
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self._closed = True
        self._fan_out("close", status)
        self._jsonl.close(status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close("FINISHED")
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")
        return False

    # ----------------------------------------------------------------- internals

    def _open(self, factory, name: str) -> None:
        try:
            self._optional.append(factory())
        except Exception as exc:
            self._warn_once(name, "start", exc)

    def _fan_out(self, method: str, *args: Any) -> None:
        for sink in self._optional:
            try:
                getattr(sink, method)(*args)
            except Exception as exc:
                self._warn_once(sink.name, method, exc)

    def _warn_once(self, sink: str, method: str, exc: BaseException) -> None:
        key = f"{sink}.{method}"
        if key in self._warned:
            log.debug("tracking sink %s failed again in %s: %s", sink, method, exc)
            return
        self._warned.add(key)
        msg = f"tracking sink {sink!r} failed in {method} ({type(exc).__name__}: {exc}); training continues"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        log.warning(msg)

    def _sink(self, name: str) -> Any:
        return next((s for s in self._optional if s.name == name), None)

    def _save_state(self) -> None:
        state = dict(self._state)
        if (sink := self._sink("mlflow")) is not None:
            state.update(mlflow_run_id=sink.run_id, mlflow_uri=sink.uri)
        if (sink := self._sink("wandb")) is not None:
            state.update(wandb_run_id=sink.run_id)
        self._state = state
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")


def _starts_over(resume_step: int | None) -> bool:
    """A trainer that resumed from no checkpoint redoes everything: new mlflow and wandb runs."""
    return resume_step is not None and resume_step < 0


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
