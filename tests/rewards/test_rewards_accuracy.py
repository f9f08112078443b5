"""The accuracy reward (counting, structure): exact match, math-verify only without a tag."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.rewards import get_reward

accuracy = get_reward("accuracy")
T = "<think>I count them.</think>"

CASES = [
    (f"{T}<answer>3</answer>", "3", 1.0),
    (f"{T}<answer>3</answer>", "<answer>3</answer>", 1.0),  # tagged solution
    (f"{T}<answer>\n 3 \n</answer>", "3", 1.0),  # stripped
    (f"{T}<answer>4</answer>", "3", 0.0),  # wrong
    (f"{T}<answer>3.0</answer>", "3", 0.0),  # the seeds' known weakness
    (f"{T}<answer>The answer is 3</answer>", "3", 0.0),  # tagged: no math-verify fallback
    (f"{T}<answer>3</answer><answer>4</answer>", "4", 0.0),  # first span counts
    (f"{T}<answer>B</answer>", "B", 1.0),
    (f"{T}<answer>b</answer>", "B", 0.0),  # exact match is case-sensitive
    ("3", "3", 1.0),  # no tag: the whole completion, exact
    ("The count is $\\frac{6}{2}$.", "3", 1.0),  # no tag: math-verify
    ("The count is 4.", "3", 0.0),  # no tag: math-verify says no
    ("", "3", 0.0),  # empty
    (f"{T}<answer></answer>", "", 0.0),  # empty ground truth never matches
]


@pytest.mark.parametrize("completion,solution,expected", CASES)
def test_accuracy_cases(completion: str, solution: str, expected: float) -> None:
    assert accuracy([completion], [solution]) == [expected]


@pytest.mark.parametrize(
    "answer,solution,expected",
    [("3.0", "3", 1.0), ("1e3", "1000", 1.0), ("1,2", "12", 0.0), ("-2.50", "-2.5", 1.0),
     ("three", "3", 0.0), ("3.01", "3", 0.0), ("nan", "nan", 1.0), ("inf", "1e400", 0.0)],
)  # fmt: skip
def test_numeric_equivalence_option(answer: str, solution: str, expected: float) -> None:
    completion = f"{T}<answer>{answer}</answer>"
    assert accuracy([completion], [solution], numeric_equivalence=True) == [expected]


def test_truncated_answer_without_math_verify_scores_zero() -> None:
    assert accuracy([f"{T}<answer>3"], ["3"], math_verify=False) == [0.0]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12))
def test_numeric_equivalence_only_adds_credit(answer: str, solution: str) -> None:
    completion = f"{T}<answer>{answer}</answer>"
    plain = accuracy([completion], [solution])[0]
    numeric = accuracy([completion], [solution], numeric_equivalence=True)[0]
    assert plain <= numeric
