"""The format reward: hand-computed cases and equivalence with the seeds' regular expression."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.rewards import get_reward
from rft.rewards.common import answer_span
from rft.rewards.format import is_well_formatted

SEED_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
SEED_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

CASES = [
    ("<think>a</think><answer>b</answer>", 1.0),
    ("<think>a</think>\n\n <answer>b</answer>", 1.0),
    ("<think></think><answer></answer>", 1.0),
    ("<think>line\nline</think>\n<answer>\n3\n</answer>", 1.0),
    ("<think>a</think><answer>b</answer><answer>c</answer>", 1.0),
    ("<think><think>a</think></think><answer>b</answer>", 1.0),
    (" <think>a</think><answer>b</answer>", 0.0),  # leading space
    ("<think>a</think><answer>b</answer>\n", 0.0),  # trailing newline
    ("<think>a</think>so<answer>b</answer>", 0.0),  # text between the blocks
    ("<answer>b</answer>", 0.0),
    ("<think>a</think>", 0.0),
    ("<think>a</think><answer>b</answer", 0.0),  # truncated
    ("<think>a</answer><answer>b</think>", 0.0),
    ("<think></think><answer>", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize("completion,expected", CASES)
def test_format_cases(completion: str, expected: float) -> None:
    assert get_reward("format")([completion], ["x"]) == [expected]
    assert bool(SEED_FORMAT.fullmatch(completion)) == (expected == 1.0)


TOKENS = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "a", "<", ">", "/", "\u2003"]
tagged_text = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)


@settings(max_examples=1500, deadline=None)
@given(tagged_text)
def test_format_equals_seed_regex(text: str) -> None:
    assert is_well_formatted(text) == bool(SEED_FORMAT.fullmatch(text))


@settings(max_examples=800, deadline=None)
@given(tagged_text)
def test_answer_span_equals_seed_regex(text: str) -> None:
    match = SEED_ANSWER.search(text)
    assert answer_span(text) == (match.group(1) if match else None)


def test_format_is_linear_on_repeated_tags() -> None:
    # The seeds' backtracking regex takes minutes on this; the direct check takes milliseconds.
    text = "<think>" + "</think><answer></answer>x" * 40_000
    start = time.perf_counter()
    assert get_reward("format")([text], [""]) == [0.0]
    assert time.perf_counter() - start < 0.5
