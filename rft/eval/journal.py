"""`predictions.jsonl` as the evaluation's journal: what a resumed evaluation does not redo.

Each finished record is one line, appended and flushed to disk as soon as its batch is scored;
a record is done when a line with its (model, checkpoint, split, id) exists. A line torn by a
crash mid-write is cut off when the journal is opened. Aggregate scores are recomputed from the
journal's completions at the end of each split, so a resumed split scores exactly like an
uninterrupted one (detection's mAP is not a mean of per-record scores).

`settings.json` beside it records what the completions depend on (task, prompt, sampling, seed,
engine, pixel budget, data); resuming with other settings raises `EvalSettingsError` naming the
keys that differ, instead of mixing completions from two configurations in one table.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rft.errors import UserError

log = logging.getLogger(__name__)
Key = tuple[str, str, str, str]


class EvalSettingsError(UserError, RuntimeError):
    """The run folder holds predictions made with other settings."""


def row_key(row: dict[str, Any]) -> Key:
    return (str(row["model"]), str(row["checkpoint"]), str(row["split"]), str(row["id"]))


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: dict[Key, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # a write torn by a crash: drop the partial line
            cut = data.rfind(b"\n") + 1
            log.warning("%s: dropping a partial last line (%d bytes)", self.path, len(data) - cut)
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                self.rows[row_key(row)] = row
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: skipping a line that is not a prediction", self.path, number)

    def __len__(self) -> int:
        return len(self.rows)

    def done(self, model: str, checkpoint: str, split: str, record_id: str) -> bool:
        return (model, checkpoint, split, record_id) in self.rows

    def get(self, model: str, checkpoint: str, split: str, record_id: str) -> dict[str, Any]:
        return self.rows[(model, checkpoint, split, record_id)]

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())
        for row in rows:
            self.rows[row_key(row)] = row


def check_settings(path: Path, settings: dict[str, Any], journal: Journal) -> None:
    """Write `settings` to `path`, or, when the journal already holds predictions, check that
    they were made with the same settings."""
    path = Path(path)
    if len(journal) and path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            details = "; ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise EvalSettingsError(
                f"{journal.path} holds predictions made with other settings ({details}); "
                "evaluate into a new run folder, or delete that folder's eval/ to start over"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1, sort_keys=True))
