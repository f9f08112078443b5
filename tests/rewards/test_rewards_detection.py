"""Detection rewards: IoU and confidence from one greedy, confidence-sorted matching."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.rewards import RewardConfigError, get_reward
from rft.rewards.boxes import Detection, parse_detections

iou = get_reward("iou")
confidence = get_reward("confidence")

GT1, GT2 = [0, 0, 100, 100], [200, 200, 300, 300]


def boxes(*items: tuple[list[float], float]) -> str:
    return "[" + ", ".join(f"{{'Position': {b}, 'Confidence': {c}}}" for b, c in items) + "]"


def answer(*items: tuple[list[float], float]) -> str:
    return f"<think>I look.</think><answer>{boxes(*items)}</answer>"


TWO = boxes((GT1, 1), (GT2, 1))
ONE = boxes((GT1, 1))

# (completion, solution, expected iou, expected confidence)
CASES = [
    (answer((GT1, 0.9), (GT2, 0.8)), TWO, 1.0, 0.85),  # perfect
    (answer((GT1, 0.9)), TWO, 0.5, 0.9),  # one of two
    (answer(([0, 0, 100, 50], 0.7)), ONE, 0.0, 0.3),  # IoU exactly 0.5 is not a match
    (answer(([0, 0, 100, 80], 0.6)), ONE, 0.8, 0.6),  # IoU 0.8
    (answer((GT1, 0.9), (GT1, 0.5)), ONE, 1.0, 0.9),  # duplicate dropped (first kept)
    (answer((GT1, 0.9), ([500, 500, 600, 600], 0.2)), ONE, 0.5, 0.85),  # false positive
    # sorted by confidence: the 0.6-IoU box (c .9) takes GT1 before the perfect one (c .5)
    (answer(([0, 0, 100, 60], 0.9), (GT1, 0.5)), ONE, 0.3, 0.7),
    ("<answer>No Objects</answer>", "No Objects", 1.0, 1.0),  # correct empty answer
    ("<answer>[]</answer>", "<answer>No Objects</answer>", 1.0, 1.0),
    ("<answer>No Objects</answer>", ONE, 0.0, 0.0),  # missed everything
    (answer(([0, 0, 50, 50], 0.3)), "No Objects", 0.0, 0.7),  # box where there is none
    ("<answer>a box at the top</answer>", ONE, 0.0, 0.0),  # malformed
    ("", ONE, 0.0, 0.0),  # empty
    # truncated after the first entry: repaired to the first box
    ("<answer>[{'Position': [0, 0, 100, 100], 'Confidence': 0.9}, {'Position': [200, 2",
     TWO, 0.5, 0.9),
    ("<answer>[[{'Position': [0, 0, 100, 100], 'Confidence': 1}]]</answer>", ONE, 1.0, 1.0),
    ('<answer>[{"Position": [0, 0, 100, 100], "Confidence": 1}]</answer>', ONE, 1.0, 1.0),
    (answer((GT1, 1.7)), ONE, 1.0, 1.0),  # confidence clipped to 1
    (answer(([0, 0, 100], 0.9), (GT1, 0.8)), ONE, 1.0, 0.8),  # a 3-number box is dropped
]  # fmt: skip


@pytest.mark.parametrize("completion,solution,expected_iou,expected_conf", CASES)
def test_detection_cases(completion: str, solution: str, expected_iou: float, expected_conf: float) -> None:
    assert iou([completion], [solution]) == [pytest.approx(expected_iou)]
    assert confidence([completion], [solution]) == [pytest.approx(expected_conf)]


def test_abs_boxes_are_converted_with_the_seen_image_size() -> None:
    completion = answer(([0, 0, 50, 25], 1))  # pixels of a 500 x 250 image = GT1 in 0-1000
    assert iou([completion], [ONE], box_format="abs", image_size=[(500, 250)]) == [1.0]
    assert iou([completion], [ONE], box_format="abs", image_size=(1000, 1000)) == [0.0]
    assert iou([completion], [ONE]) == [0.0]  # read as 0-1000 it is a quarter-size box


def test_abs_without_image_size_is_a_config_error() -> None:
    with pytest.raises(RewardConfigError):
        iou([answer((GT1, 1))], [ONE], box_format="abs")
    with pytest.raises(RewardConfigError):
        iou([answer((GT1, 1))], [ONE], box_format="pixels")


def test_parse_detections_repairs() -> None:
    assert parse_detections("No Objects.") == []
    assert parse_detections("<answer>'No Objects'</answer>") == []
    assert parse_detections("[{'Position': [1, 2, 3, 4], 'Confidence': 0.5}") is None
    assert parse_detections("<answer>[{'Position': [1, 2, 3, 4], 'Confidence': 0.5},") == [Detection((1.0, 2.0, 3.0, 4.0), 0.5)]
    assert parse_detections("[" * 100_000) is None  # too deep for json: unreadable, no crash
    assert parse_detections("[{'Position': [1, 2, 3, NaN], 'Confidence': 1}]") == []


box = st.tuples(st.integers(0, 900), st.integers(0, 900), st.integers(10, 100), st.integers(10, 100)).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=300, deadline=None)
@given(st.lists(box, min_size=1, max_size=6, unique_by=tuple), st.randoms(use_true_random=False))
def test_detection_properties(truth: list, rng: random.Random) -> None:
    solution = boxes(*[(b, 1) for b in truth])
    assert iou([solution], [solution]) == [1.0]
    assert confidence([solution], [solution]) == [1.0]
    # jittered boxes and a stray one, with distinct confidences: their order cannot matter
    jittered = [[v + rng.randint(-30, 30) for v in b] for b in truth] + [[0, 0, 999, 999]]
    preds = [(b, round(0.05 + 0.9 * i / len(jittered), 4)) for i, b in enumerate(jittered)]
    shuffled = preds[:]
    rng.shuffle(shuffled)
    for fn in (iou, confidence):
        assert fn([answer(*preds)], [solution]) == fn([answer(*shuffled)], [solution])
