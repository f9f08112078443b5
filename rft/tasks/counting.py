"""Visual counting (Reason-RFT, CLEVR-Math style): how many objects, answer a number.

Rewards: format + accuracy. Score: exact match, then math-verify, x100.
"""

from __future__ import annotations

from typing import Any

from rft.data.records import Record
from rft.rewards.accuracy import answer_correct
from rft.tasks.base import Task


class CountingTask(Task):
    name = "counting"
    default_rewards = {"format": 1.0, "accuracy": 1.0}
    answer_hint = "(number)"
    examples = (
        Record(
            id="counting-example-0",
            images=["counting-0.png"],
            problem="How many objects are there in the image?",
            answer="3",
            cot="I can see a red cube, a blue sphere and a green cylinder, so there are 3 objects.",
        ),
        Record(
            id="counting-example-1",
            images=["counting-1.png"],
            problem="Subtract all small metal spheres. How many objects are left?",
            answer="5",
            cot="There are 7 objects. Two of them are small metal spheres. 7 - 2 = 5.",
        ),
    )

    def item_score(self, parsed: str | None, record: Record, **kw: Any) -> float:
        return score_exact_then_math(parsed, record, **kw)


def score_exact_then_math(
    parsed: str | None,
    record: Record,
    numeric_equivalence: bool = False,
    math_verify: bool = True,
    math_verify_timeout: float | None = None,
    **_: Any,
) -> float:
    """1 if the parsed answer equals the record's answer exactly or by math-verify, else 0."""
    if parsed is None:
        return 0.0
    ok = answer_correct(parsed, record.answer.strip(), numeric_equivalence, math_verify, math_verify_timeout)
    return 1.0 if ok else 0.0
