"""The three places a run's metrics go: a JSON-lines file, mlflow, and wandb.

Each sink has the same four methods: `log(step, metrics)`, `log_params(params)`,
`log_artifact(path)`, `close(status)`, with `status` one of FINISHED, FAILED, KILLED. The
`Tracker` owns them and shields training from the optional ones; the JSON-lines file is the record
of truth and its errors are never swallowed.

mlflow is driven through `MlflowClient` with explicit run ids, never through the fluent
`mlflow.start_run` API, whose process-global active run breaks nested runs and threads.

Resuming at a checkpoint's step (`resume_step`) redoes the steps after it, and every step must be
recorded once. metrics.jsonl drops its rows after that step. mlflow cannot delete metric points
(logging a step again adds a second point), so a resumed run that holds points after that step is
superseded: a new run takes its name, tags, start time, params, artifacts and the points up to
that step (tag `rft.supersedes` names the old run), and the old run is deleted (soft: mlflow's
`restore_run` brings it back). wandb keeps the first value of a step it has seen, so its redone
steps are dropped (its server-side rewind, `resume_from`, is not offered offline).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rft.tracking.params import mlflow_key, to_number, truncate_value

STATUSES = ("FINISHED", "FAILED", "KILLED")


class JsonlSink:
    """`<run_dir>/metrics.jsonl`: one JSON object per `log` call with `step` and `wall_time`.

    Appends across restarts; `resume_step` drops rows logged after the checkpoint being resumed,
    so a crashed tail does not appear twice. Flushed after every line. Non-finite floats are
    written as NaN / Infinity (Python's json reads them back; strict parsers do not).
    """

    name = "jsonl"

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.params_path = Path(run_dir) / "params.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            _truncate_after(self.path, resume_step)
        self._file = self.path.open("a", encoding="utf-8")
        if self._file.tell() and not _ends_with_newline(self.path):
            self._file.write("\n")  # a torn last line from a crash must not swallow the next row
        self._params: dict[str, str] = _read_json(self.params_path)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        row = {"step": int(step), "wall_time": round(time.time(), 3)}
        for key, value in metrics.items():
            number = to_number(value)
            row[key] = number if number is not None else _jsonable(value)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def log_params(self, params: Mapping[str, str]) -> None:
        self._params.update(params)
        tmp = self.params_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._params, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.params_path)

    def log_artifact(self, path: Path) -> None:
        """Artifacts already live in the run directory; nothing to copy."""

    def close(self, status: str = "FINISHED") -> None:
        if not self._file.closed:
            self._file.close()


class MlflowSink:
    """One mlflow run (a child run when `parent_run_id` is given), resumable by run id."""

    name = "mlflow"

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str | None,
        *,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_step: int | None = None,
    ):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        experiment_id = self._experiment_id(experiment)
        self.run_id = run_id if run_id and self._reopen(run_id) else None
        if self.run_id is not None and resume_step is not None:
            self.run_id = supersede_after(self.client, self.run_id, resume_step)
        if self.run_id is None:
            all_tags = {"mlflow.runName": run_name or "", **(tags or {})}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id  # what the mlflow UI nests by
            all_tags = {k: truncate_value(str(v), 8000) for k, v in all_tags.items() if v != ""}
            self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
        self._logged_params = dict(self.client.get_run(self.run_id).data.params)

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=_artifact_location(self.uri, name))
        except MlflowException:  # another process created it between the two calls
            return self.client.get_experiment_by_name(name).experiment_id

    def _reopen(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
        except Exception:
            return False
        self.client.update_run(run_id, status="RUNNING")
        return True

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(mlflow_key(k), v, now, int(step)) for k, v in ((k, to_number(v)) for k, v in metrics.items()) if v is not None]
        for i in range(0, len(batch), 1000):  # mlflow's per-request limit
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        fresh, changed = {}, []
        for key, value in params.items():
            k, v = mlflow_key(key), truncate_value(str(value))
            if k not in self._logged_params:
                fresh[k] = v
            elif self._logged_params[k] != v:
                changed.append(k)
        items = [Param(k, v) for k, v in fresh.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        self._logged_params.update(fresh)
        if changed:  # mlflow params are immutable; a resumed run with a changed config keeps the old ones
            warnings.warn(f"mlflow run {self.run_id}: params changed on resume kept at old values: {changed[:10]}", RuntimeWarning, stacklevel=3)

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        else:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class WandbSink:
    """One wandb run, offline by default, its files under `<run_dir>/wandb`."""

    name = "wandb"

    def __init__(
        self,
        run_dir: Path,
        project: str,
        run_name: str | None,
        config: Mapping[str, Any] | None,
        *,
        mode: str = "offline",
        run_id: str | None = None,
        group: str | None = None,
        tags: Mapping[str, str] | None = None,
    ):
        import wandb

        self.run = wandb.init(
            project=project,
            name=run_name,
            config=dict(config or {}),
            dir=str(run_dir),
            mode=mode,
            id=run_id,
            resume="allow" if run_id else None,
            group=group,
            tags=[f"{k}:{v}"[:64] for k, v in (tags or {}).items()] or None,
            reinit="create_new",
        )
        self.run_id = self.run.id

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        row = {k: v for k, v in ((k, to_number(v)) for k, v in metrics.items()) if v is not None}
        self.run.log(row, step=int(step))

    def log_params(self, params: Mapping[str, str]) -> None:
        self.run.config.update(dict(params), allow_val_change=True)

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        self.run.save(str(path / "*") if path.is_dir() else str(path), base_path=str(path.parent), policy="now")

    def close(self, status: str = "FINISHED") -> None:
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)


def supersede_after(client: Any, run_id: str, step: int) -> str:
    """`run_id` if it holds no metric point after `step`; else the id of a copy without them
    (see the module docstring), the old run deleted."""
    old = client.get_run(run_id)
    history = {key: client.get_metric_history(run_id, key) for key in old.data.metrics}
    if all(point.step <= step for points in history.values() for point in points):
        return run_id
    tags = {**old.data.tags, "rft.supersedes": run_id}
    new_id = client.create_run(old.info.experiment_id, start_time=old.info.start_time, tags=tags, run_name=old.info.run_name).info.run_id
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in old.data.params.items()]
    kept = [point for points in history.values() for point in points if point.step <= step]
    for i in range(0, len(params), 100):  # mlflow's per-request limits
        client.log_batch(new_id, params=params[i : i + 100])
    for i in range(0, len(kept), 1000):
        client.log_batch(new_id, metrics=kept[i : i + 1000])
    _copy_artifacts(client, run_id, new_id)
    client.update_run(new_id, status="RUNNING")
    client.delete_run(run_id)
    return new_id


def _copy_artifacts(client: Any, source_run: str, target_run: str) -> None:
    import tempfile

    if not client.list_artifacts(source_run):
        return
    with tempfile.TemporaryDirectory() as tmp:
        client.log_artifacts(target_run, client.download_artifacts(source_run, "", tmp))


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Beside the SQLite file for `sqlite:///` stores (mlflow's default, ./mlruns, depends on the
    working directory); the server decides for anything else."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :])
    return (db.parent / "mlartifacts" / experiment).resolve().as_uri()


def _truncate_after(path: Path, step: int) -> None:
    kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if _row_step(line) <= step]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _row_step(line: str) -> float:
    """Step of a JSON line; a torn line from a crash counts as after every step (dropped)."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
