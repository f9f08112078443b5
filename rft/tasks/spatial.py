"""Spatial transformation (Reason-RFT, TRANCE): which calls turn the first image into the second.

Two images per record (initial, final). The problem lists the initial objects as tuples and asks
the question; every prompt style starts with the rules block (the tuple layout and the five
functions with their values). Answer: calls joined by ", ", e.g.
`change_color(1, 'red'), change_position(0, 'front')`. Rewards: format + spatial (exact calls,
repetition penalty). Score: the partial-credit score, x100.
"""

from __future__ import annotations

from typing import Any

from rft.data.records import Record
from rft.rewards.common import extract_answer
from rft.rewards.spatial import parse_calls, partial_credit, unique
from rft.tasks.base import Task

FUNCTIONS: dict[str, tuple[str, ...]] = {
    "change_size": ("small", "medium", "large"),
    "change_color": ("yellow", "gray", "cyan", "blue", "brown", "green", "red", "purple"),
    "change_material": ("glass", "metal", "rubber"),
    "change_shape": ("cube", "sphere", "cylinder"),
    "change_position": (
        "front", "behind", "left", "right",
        "front_left", "front_right", "behind_left", "behind_right",
    ),
}  # fmt: skip


def rules() -> str:
    lines = [
        "The first image shows the initial state of a scene and the second image its final state.",
        "Each initial object is given as a tuple ('object_id', 'shape', 'size', 'color', 'material').",
        "The scene was changed by one or more calls func(object_id, value) of these functions:",
    ]
    lines += [f"- {func}: {', '.join(values)}" for func, values in FUNCTIONS.items()]
    lines.append("Write the calls separated by ', ', for example: change_color(1, 'red'), change_position(0, 'front').")
    return "\n".join(lines)


RULES = rules()


def format_calls(calls: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{func}({obj}, '{value}')" for func, obj, value in calls)


class SpatialTask(Task):
    name = "spatial"
    default_rewards = {"format": 1.0, "spatial": 1.0}
    answer_hint = "(function calls)"
    examples = (
        Record(
            id="spatial-example-0",
            images=["spatial-0-initial.png", "spatial-0-final.png"],
            problem=(
                "Initial objects: ('0', 'cube', 'small', 'red', 'metal'), "
                "('1', 'sphere', 'large', 'blue', 'rubber')\n"
                "What transformations turn the first image into the second?"
            ),
            answer="change_color(1, 'red'), change_position(0, 'front')",
            cot=("Object 1 was a blue sphere and is red in the final image. Object 0 moved towards the camera."),
        ),
    )

    def question(self, record: Record) -> str:
        return f"{RULES}\n{record.problem.strip()}"

    def parse_answer(self, completion: str) -> str | None:
        """The predicted calls, deduplicated and written canonically; None if none parse."""
        calls = unique(parse_calls(extract_answer(completion)))
        return format_calls(calls) if calls else None

    def item_score(self, parsed: str | None, record: Record, **kw: Any) -> float:
        if parsed is None:
            return 0.0
        return partial_credit(parse_calls(parsed), parse_calls(record.answer))
