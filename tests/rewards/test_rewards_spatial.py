"""Spatial transformation: the RL reward (repetition penalty) and the partial-credit score."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.rewards import get_reward
from rft.rewards.spatial import parse_calls

spatial = get_reward("spatial")
partial = get_reward("spatial_partial")
SEED_CALL = re.compile(r"(\w+)\((\w+),\s*'?(\w+)'?\)")

SOLUTION = "change_color(1, 'red'), change_position(0, 'front')"
CC1 = "change_color(1, 'red')"
CP0 = "change_position(0, 'front')"

RL_CASES = [
    (f"<answer>{CC1}, {CP0}</answer>", 1.0),
    (f"<answer>{CP0}, {CC1}</answer>", 1.0),  # order does not matter
    (f"<answer>{CC1}</answer>", 0.5),  # one of two
    (f"<answer>{CC1}, change_position(0, 'behind')</answer>", 0.5),  # one right, one wrong
    (f"<answer>{CC1}, {CC1}, {CP0}</answer>", 2 / 3),  # rho = 2/3, exact 2 of 2
    (f"<answer>{CC1}, {CP0}, change_size(1, 'small')</answer>", 2 / 3),  # extra call: 2 / 3
    (f"<answer>{CC1}, {CC1}, {CC1}, {CC1}</answer>", 0.125),  # rho 1/4 * 1/2
    ("<answer>change_color(1, red), change_position(0, front)</answer>", 1.0),  # unquoted
    (f"<answer>{CC1}, change_posit", 0.5),  # truncated: no tag, whole text
    (f"<think>change_size(0, 'large')</think><answer>{CC1}</answer>", 0.5),  # answer span only
    ("<answer>change_color(0, 'red')</answer>", 0.0),  # wrong object
    ("<answer>I do not know</answer>", 0.0),  # nothing parses
    ("", 0.0),
]


@pytest.mark.parametrize("completion,expected", RL_CASES)
def test_spatial_rl_cases(completion: str, expected: float) -> None:
    assert spatial([completion], [SOLUTION]) == [pytest.approx(expected)]


PARTIAL_CASES = [
    (f"{CC1}, {CP0}", SOLUTION, 1.0),
    (f"change_color(1, 'blue'), {CP0}", SOLUTION, 0.75),  # (func, obj) 0.5
    ("change_color(0, 'red')", SOLUTION, 0.25),  # (func, value) 0.5 / 2
    ("change_color(2, 'green')", SOLUTION, 0.125),  # func only 0.25 / 2
    ("change_size(1, 'red')", SOLUTION, 0.0),  # nothing shared with a function
    (f"{CC1}, {CC1}", SOLUTION, 0.5),  # duplicates dropped, no penalty
    (f"{CC1}, {CP0}, change_shape(0, 'cube')", SOLUTION, 2 / 3),  # extra call widens the base
    # two leftovers, each takes the first fitting (func, obj) partner
    ("change_color(2, 'red'), change_color(1, 'blue')",
     "change_color(1, 'red'), change_color(2, 'blue')", 0.5),
    # (func, obj) is preferred to (func, value); the next leftover falls back to func only
    ("change_color(2, 'blue'), change_color(3, 'red')",
     "change_color(1, 'blue'), change_color(2, 'red')", 0.375),
    ("", SOLUTION, 0.0),
    (CC1, "", 0.0),
]  # fmt: skip


@pytest.mark.parametrize("completion,solution,expected", PARTIAL_CASES)
def test_spatial_partial_cases(completion: str, solution: str, expected: float) -> None:
    assert partial([f"<answer>{completion}</answer>"], [solution]) == [pytest.approx(expected)]


call_text = st.lists(st.sampled_from(["f", "(", ")", ",", " ", "'", "a", "1", "_", "é", "\n", "x("]), max_size=16).map("".join)


@settings(max_examples=1500, deadline=None)
@given(call_text)
def test_call_parser_equals_seed_regex(text: str) -> None:
    assert parse_calls(text) == SEED_CALL.findall(text)


FUNCS = ["change_size", "change_color", "change_shape", "change_position"]
calls = st.lists(
    st.tuples(st.sampled_from(FUNCS), st.sampled_from("0123"), st.sampled_from(["red", "front"])),
    min_size=1,
    max_size=5,
    unique=True,
)


def render(items: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{f}({o}, '{v}')" for f, o, v in items)


@settings(max_examples=400, deadline=None)
@given(calls, calls, st.randoms(use_true_random=False))
def test_spatial_properties(pred: list, truth: list, rng: random.Random) -> None:
    solution = render(truth)
    assert spatial([solution], [solution]) == [1.0]
    assert partial([solution], [solution]) == [1.0]
    rl = spatial([render(pred)], [solution])[0]
    shuffled = pred[:]
    rng.shuffle(shuffled)
    assert spatial([render(shuffled)], [solution])[0] == pytest.approx(rl)
    # Partial credit only adds to the exact matches the RL reward counts.
    assert rl <= partial([render(pred)], [solution])[0] + 1e-12
