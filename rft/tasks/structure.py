"""Structure perception (Reason-RFT, geometry): multiple choice (A–D) or a number.

A record's subset is `meta["subset"]` ("choice" or "non_choice"); without it, the seeds' rule:
an answer that is a letter A–D makes a choice question. Choice questions list their options in
the problem as lines "A. …". Rewards: format + accuracy. Score: exact match, then math-verify,
x100, reported overall and per subset.
"""

from __future__ import annotations

from typing import Any

from rft.data.records import Record
from rft.tasks.base import Task, think_instruction
from rft.tasks.counting import score_exact_then_math

CHOICE, NON_CHOICE = "choice", "non_choice"
CHOICE_HINT = "(chosen letter)"
NUMBER_HINT = "(float number or int number)"
SELECT_LETTER = "Please select the correct answer by writing the letter (A, B, C or D) that precedes your choice."


class StructureTask(Task):
    name = "structure"
    default_rewards = {"format": 1.0, "accuracy": 1.0}
    examples = (
        Record(
            id="structure-example-0",
            images=["structure-0.png"],
            problem=("In the triangle ABC, angle A is 50 degrees and angle B is 60 degrees. Find angle C.\nA. 50\nB. 60\nC. 70\nD. 80"),
            answer="C",
            cot="The angles of a triangle sum to 180 degrees, so C = 180 - 50 - 60 = 70, option C.",
            meta={"subset": CHOICE},
        ),
        Record(
            id="structure-example-1",
            images=["structure-1.png"],
            problem="The rectangle has sides 4 and 2.5. Find its area.",
            answer="10",
            cot="The area of a rectangle is width times height: 4 * 2.5 = 10.",
            meta={"subset": NON_CHOICE},
        ),
    )

    def subset_of(self, record: Record) -> str:
        subset = record.meta.get("subset")
        if subset in (CHOICE, NON_CHOICE):
            return subset
        return CHOICE if record.answer.strip() in ("A", "B", "C", "D") else NON_CHOICE

    def hint(self, record: Record) -> str:
        return CHOICE_HINT if self.subset_of(record) == CHOICE else NUMBER_HINT

    def question(self, record: Record) -> str:
        question = record.problem.strip()
        return f"{question} {SELECT_LETTER}" if self.subset_of(record) == CHOICE else question

    def rl_prompt(self, record: Record) -> str:
        # The seeds break the line between the letter request and the format instruction.
        separator = "\n" if self.subset_of(record) == CHOICE else " "
        return f"{self.question(record)}{separator}{think_instruction(self.hint(record))}"

    def item_score(self, parsed: str | None, record: Record, **kw: Any) -> float:
        return score_exact_then_math(parsed, record, **kw)
