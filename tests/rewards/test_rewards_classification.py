"""The classification reward: normalised containment, with the seed's empty-answer loophole shut."""

from __future__ import annotations

import pytest

from rft.rewards import get_reward

classification = get_reward("classification")

CASES = [
    ("<answer>sunflower</answer>", "sunflower", 1.0),
    ("<answer>Sunflower</answer>", "sunflower", 1.0),  # lower-cased
    ("<answer>sun_flower</answer>", "sunflower", 1.0),  # underscores removed
    ("<answer>Sun Flower</answer>", "sunflower", 1.0),  # spaces removed
    ("<answer>common sunflower</answer>", "sunflower", 1.0),  # truth inside the answer
    ("<answer>rose</answer>", "desert rose", 1.0),  # answer inside the truth
    ("<answer>Boeing 747</answer>", "<answer>boeing_747</answer>", 1.0),  # tagged solution
    ("<answer>daisy</answer>", "sunflower", 0.0),  # wrong
    ("<answer></answer>", "sunflower", 0.0),  # empty: 1 in the seed, 0 here
    ("<answer> _ </answer>", "sunflower", 0.0),  # empty after normalising
    ("", "sunflower", 0.0),
    ("sunflower", "sunflower", 1.0),  # no tag: the whole completion
    ("<think>a sunflower?</think><answer>daisy</answer>", "sunflower", 0.0),  # span only
    ("<answer>sunflower</answer>", "", 0.0),  # empty truth
]


@pytest.mark.parametrize("completion,solution,expected", CASES)
def test_classification_cases(completion: str, solution: str, expected: float) -> None:
    assert classification([completion], [solution]) == [expected]
