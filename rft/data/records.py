"""The record every reader produces and every task, trainer and evaluator consumes.

A `Record` is one example after loading: its images are absolute paths (already checked to
exist and decode), `answer` is the bare answer string (no `<answer>` tags), `cot` the chain of
thought when the source has one. Task-specific extras (a structure question's subset, a
detection record's category, the image size the boxes refer to) live in `meta`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Record:
    id: str
    images: list[str]
    problem: str
    answer: str
    cot: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
