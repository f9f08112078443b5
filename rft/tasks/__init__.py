"""The tasks rft trains and evaluates, by name.

    from rft.tasks import get_task
    task = get_task("counting")
    task.messages(record, "rl")           # chat turn with one image slot per image
    task.default_rewards                  # {"format": 1.0, "accuracy": 1.0}
    task.evaluate(completions, records)   # EvalResult(score=…, …), 0–100

`get_task(name, **options)` passes options to the task (`box_format` for detection and
grounding, `list_classes` for classification). `vocabulary_corpus()` gathers representative
texts of every task, to train a tiny model's tokenizer.
"""

from __future__ import annotations

from typing import Any

from rft.tasks.base import SFT_STYLES, EvalResult, PromptStyle, Task
from rft.tasks.classification import ClassificationTask
from rft.tasks.counting import CountingTask
from rft.tasks.detection import DetectionTask
from rft.tasks.grounding import GroundingTask
from rft.tasks.spatial import SpatialTask
from rft.tasks.structure import StructureTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        CountingTask,
        StructureTask,
        SpatialTask,
        ClassificationTask,
        DetectionTask,
        GroundingTask,
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str, **options: Any) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid names: {', '.join(TASK_NAMES)}")
    return TASKS[name](**options)


def vocabulary_corpus() -> list[str]:
    """Prompts of every style, SFT targets and answers of every task's example records."""
    return [text for name in TASK_NAMES for text in get_task(name).vocabulary()]


__all__ = [
    "SFT_STYLES",
    "PromptStyle",
    "TASKS",
    "TASK_NAMES",
    "EvalResult",
    "Task",
    "get_task",
    "vocabulary_corpus",
]
