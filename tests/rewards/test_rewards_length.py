"""The length reward: hand-computed values and its range."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.rewards import REWARD_RANGES, get_reward

length = get_reward("length")


@pytest.mark.parametrize(
    "completion, max_chars, expected",
    [("", 256, 1.0), ("a" * 64, 256, 0.75), ("a" * 256, 256, 0.0), ("a" * 1000, 256, 0.0), ("abcd", 8, 0.5), ("é" * 4, 8, 0.5)],
)
def test_values(completion, max_chars, expected):
    assert length([completion], [""], max_chars=max_chars) == [pytest.approx(expected)]


@settings(max_examples=300)
@given(st.text(max_size=600))
def test_range(text):
    low, high = REWARD_RANGES["length"]
    assert low <= length([text], [""])[0] <= high
