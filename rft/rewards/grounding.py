"""The grounding reward (Visual-RFT reasoning grounding, LISA): GIoU + 1 of one box.

The answer is `(x1,y1),(x2,y2)` in 0–1000 (or absolute pixels with `box_format="abs"`). Reward:
2 when the stripped answers are the same string, else GIoU(prediction, truth) + 1 in [0, 2];
0 when either box cannot be read. The two corners may come in any order.
"""

from __future__ import annotations

from collections.abc import Sequence

from rft.rewards.boxes import giou, parse_corners, to_norm1000
from rft.rewards.common import extract_answer


def giou_reward(
    completion: str,
    solution: str,
    box_format: str = "norm1000",
    image_size: Sequence[float] | None = None,
    **_: object,
) -> float:
    answer, truth_text = extract_answer(completion), extract_answer(solution)
    if answer and answer == truth_text:
        return 2.0
    predicted, truth = parse_corners(answer), parse_corners(truth_text)
    if predicted is None or truth is None:
        return 0.0
    # Scaling by positive factors keeps the corners ordered.
    return giou(to_norm1000(predicted, box_format, image_size), truth) + 1.0
