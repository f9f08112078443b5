"""Reasoning grounding (Visual-RFT, LISA): the box of the object a sentence describes.

`problem` is the description, `meta["image_size"]` the original `(w, h)`, the answer
`(x1,y1),(x2,y2)` in 0–1000. Rewards: format + giou. Score: mean IoU of the predicted box with
the true one, x100 (an unreadable answer counts as IoU 0). `box_format="abs"` as in detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rft.data.records import Record
from rft.rewards.boxes import Box, iou, parse_corners, to_norm1000
from rft.rewards.common import extract_answer
from rft.tasks.base import EvalResult, check_aligned, summarize, think_instruction
from rft.tasks.detection import BoxTask, box_frames

ANSWER_FORMAT = "(x1,y1),(x2,y2)"


class GroundingTask(BoxTask):
    name = "grounding"
    default_rewards = {"format": 1.0, "giou": 1.0}
    examples = (
        Record(
            id="grounding-example-0",
            images=["grounding-0.png"],
            problem="the object you would use to cut paper",
            answer="(412,233),(655,590)",
            cot="Scissors cut paper; the scissors lie in the middle of the desk.",
            meta={"image_size": [640, 480]},
        ),
    )

    def question(self, record: Record) -> str:
        coords = "integer coordinates between 0 and 1000" if self.box_format == "norm1000" else "integer pixel coordinates of the image"
        return f'Find the region that this sentence describes: "{record.problem.strip()}". Give its bounding box as {ANSWER_FORMAT} with {coords}.'

    def rl_prompt(self, record: Record) -> str:
        return f"{self.question(record)} {think_instruction('')} The output answer format should be: <think> ... </think> <answer>{ANSWER_FORMAT}</answer>"

    def parse_answer(self, completion: str) -> str | None:
        answer = extract_answer(completion)
        return answer if parse_corners(answer) is not None else None

    def evaluate(
        self,
        completions: Sequence[str],
        records: Sequence[Record],
        box_format: Any = None,
        image_size: Any = None,
        **_: Any,
    ) -> EvalResult:
        """Mean IoU x100; `box_format`/`image_size` as the rewards take them (see `box_frames`)."""
        check_aligned(completions, records)
        frames = box_frames(records, self.box_format, box_format, image_size)
        answers = [extract_answer(c) for c in completions]
        boxes = [parse_corners(a) for a in answers]
        truths = [_truth(r) for r in records]
        parsed = [a if b is not None else None for a, b in zip(answers, boxes)]
        per_item = [0.0 if box is None else iou(to_norm1000(box, fmt, size), truth) for box, truth, (fmt, size) in zip(boxes, truths, frames)]
        return EvalResult(**summarize(per_item, parsed), per_item=per_item, parsed=parsed)


def _truth(record: Record) -> Box:
    box = parse_corners(record.answer)
    if box is None:
        raise ValueError(f"record {record.id!r}: unreadable grounding answer {record.answer!r}")
    return box
