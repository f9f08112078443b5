"""The grounding reward: GIoU + 1 of one `(x1,y1),(x2,y2)` box, 2 on an exact answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.rewards import get_reward

giou = get_reward("giou")
GT = "(0,0),(100,100)"

CASES = [
    ("<answer>(0,0),(100,100)</answer>", 2.0),  # same string
    ("<answer>(0, 0), (100, 100)</answer>", 2.0),  # same box: GIoU 1
    ("<answer>(100,100),(0,0)</answer>", 2.0),  # corners in the other order
    ("<answer>(0.0,0.0),(100.0,100.0)</answer>", 2.0),
    ("<answer>(0,0),(100,50)</answer>", 1.5),  # IoU 0.5, hull = union
    ("<answer>(25,25),(75,75)</answer>", 1.25),  # inside: IoU 0.25
    ("<answer>(200,0),(300,100)</answer>", 2 / 3),  # disjoint: -(30000 - 20000) / 30000
    ("<answer>(900,900),(1000,1000)</answer>", 0.02),  # far: -(1e6 - 2e4) / 1e6
    ("<think>(5,5),(6,6)</think><answer>(0,0),(100,50)</answer>", 1.5),  # answer span only
    ("<answer>the top left corner</answer>", 0.0),  # malformed
    ("<answer>(0,0),(100,</answer>", 0.0),  # truncated
    ("", 0.0),
]


@pytest.mark.parametrize("completion,expected", CASES)
def test_giou_cases(completion: str, expected: float) -> None:
    assert giou([completion], [GT]) == [pytest.approx(expected)]


def test_abs_corners_are_converted() -> None:
    completion = "<answer>(0,0),(20,40)</answer>"  # pixels of a 200 x 400 image
    assert giou([completion], [GT], box_format="abs", image_size=[(200, 400)]) == [2.0]


coord = st.integers(-50, 1050)


@settings(max_examples=400, deadline=None)
@given(coord, coord, coord, coord, coord, coord, coord, coord)
def test_giou_range_and_symmetry(a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int):
    first, second = f"({a},{b}),({c},{d})", f"({e},{f}),({g},{h})"
    forward = giou([f"<answer>{first}</answer>"], [second])[0]
    backward = giou([f"<answer>{second}</answer>"], [first])[0]
    assert 0.0 <= forward <= 2.0
    assert forward == pytest.approx(backward)
    assert giou([f"<answer>{first}</answer>"], [first]) == [2.0]
