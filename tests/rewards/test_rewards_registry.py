"""The reward registry, its totality on any text, kwargs handling and the weighted sum."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rft.paths import FORWARDED_ENV
from rft.rewards import (
    REWARD_NAMES,
    REWARD_RANGES,
    TOTAL,
    RewardConfigError,
    WeightedReward,
    get_reward,
    score_batch,
)
from rft.rewards.registry import STRICT_ENV, RewardCrashed, RewardSpec, _score_one, strict_rewards

SOLUTIONS = {
    "format": "3",
    "accuracy": "3",
    "spatial": "change_color(1, 'red'), change_position(0, 'front')",
    "spatial_partial": "change_color(1, 'red'), change_position(0, 'front')",
    "iou": "[{'Position': [0, 0, 100, 100], 'Confidence': 1}]",
    "confidence": "[{'Position': [0, 0, 100, 100], 'Confidence': 1}]",
    "classification": "sunflower",
    "giou": "(0,0),(100,100)",
}
FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<answer", "[", "]", "[[", "]]", "{", "}",
    "},", "'Position'", "'Confidence'", ": ", ", ", "0.5", "1000", "-1e400", "NaN", "1e308",
    "(", ")", "change_color", "(1, 'red')", "No Objects", "3", "3.0", "\\frac{1}{2}", "$",
    "sunflower", "\n", " ", "😀", "\x00", "\ud800", "\u202e",
]  # fmt: skip
near_miss = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=30).map("".join)


def test_registry_names_and_ranges() -> None:
    assert set(REWARD_NAMES) >= set(SOLUTIONS)
    assert set(REWARD_RANGES) == set(REWARD_NAMES)
    for low, high in REWARD_RANGES.values():
        assert low < high
    with pytest.raises(ValueError, match="accuracy"):
        get_reward("acuracy")


def assert_in_range(name: str, values: list[float]) -> None:
    low, high = REWARD_RANGES[name]
    for value in values:
        assert isinstance(value, float) and math.isfinite(value) and low <= value <= high


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
@settings(max_examples=250, deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_scores_in_range(name: str, text: str) -> None:
    assert_in_range(name, get_reward(name)([text], [SOLUTIONS[name]]))


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
@settings(max_examples=250, deadline=None)
@given(text=near_miss, solution=near_miss)
def test_near_miss_text_scores_in_range(name: str, text: str, solution: str) -> None:
    assert_in_range(name, get_reward(name)([text, text], [SOLUTIONS[name], solution]))


HUGE = {
    "repeated answer tags": "<answer>" * 125_000,
    "repeated blocks": "<think>" + "</think><answer></answer>" * 40_000,
    "one long word": "a" * 1_000_000,
    "open calls": "a(" * 500_000,
    "long call argument": "f(1, '" + "c" * 1_000_000,
    "open corners": "(1,2),(3," * 110_000,
    "deep list": "[" * 1_000_000,
    "open dicts": "[{" * 500_000,
    "emoji": "😀" * 500_000,
    "many boxes": "<answer>[" + "{'Position': [1, 2, 3, 4], 'Confidence': 0.5}, " * 20_000,
    "nested tags": "<answer><think>" * 50_000 + "</think></answer>" * 50_000,
}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_huge_and_adversarial_text_is_fast(name: str) -> None:
    reward = get_reward(name)
    reward(["warm up"], [SOLUTIONS[name]])
    start = time.perf_counter()
    assert_in_range(name, reward(list(HUGE.values()), [SOLUTIONS[name]] * len(HUGE)))
    assert time.perf_counter() - start < 10.0


def _boom(completion: str, solution: str) -> float:
    raise KeyError("bug")


def test_guard_turns_errors_and_nan_into_the_floor_and_clamps(monkeypatch) -> None:
    monkeypatch.delenv(STRICT_ENV, raising=False)
    boom = _boom
    assert _score_one("x", RewardSpec(boom, 0.0, 1.0, ""), "a", "b", {}) == 0.0
    assert _score_one("x", RewardSpec(lambda c, s: math.nan, 0.0, 1.0, ""), "a", "b", {}) == 0.0
    assert _score_one("x", RewardSpec(lambda c, s: 7.0, 0.0, 2.0, ""), "a", "b", {}) == 2.0


def test_strict_mode_raises_what_the_guard_would_hide(monkeypatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(RewardCrashed, match=r"reward 'x' raised KeyError\('bug'\) on completion 'a'"):
        _score_one("x", RewardSpec(_boom, 0.0, 1.0, ""), "a", "b", {})
    assert _score_one("x", RewardSpec(lambda c, s: math.nan, 0.0, 1.0, ""), "a", "b", {}) == 0.0  # NaN is not a crash


def test_the_suite_runs_strict() -> None:
    assert strict_rewards() and STRICT_ENV in FORWARDED_ENV  # set by tests/conftest.py, inherited by Ray actors


def test_lengths_and_kwargs_are_checked() -> None:
    accuracy = get_reward("accuracy")
    with pytest.raises(RewardConfigError):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(RewardConfigError, match="image_size"):
        get_reward("iou")(["a", "b", "c"], ["a", "b", "c"], image_size=[640, 480])
    # unknown kwargs (a dataset's other columns) are ignored
    assert accuracy(["<answer>3</answer>"], ["3"], prompts=["q"], image_size=[(4, 4)]) == [1.0]


def test_chat_message_completions_are_read() -> None:
    completion = [{"role": "assistant", "content": "<think>a</think><answer>3</answer>"}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "<answer>3</answer>"}]}]
    assert get_reward("accuracy")([completion, parts], ["3", "3"]) == [1.0, 1.0]


def detection_batch() -> tuple[list[str], list[str], dict]:
    truth = "[{'Position': [0, 0, 100, 100], 'Confidence': 1}]"
    completions = [
        "<think>a</think><answer>[{'Position': [0, 0, 50, 50], 'Confidence': 0.9}]</answer>",
        "<think>a</think><answer>[{'Position': [0, 0, 100, 100], 'Confidence': 0.9}]</answer>",
        "<answer>No Objects</answer>",
    ] * 4
    sizes = [(500, 500), (1000, 1000), (1000, 1000)] * 4
    return completions, [truth] * len(completions), {"box_format": "abs", "image_size": sizes}


def test_weighted_reward_components_and_total() -> None:
    completions, solutions, kwargs = detection_batch()
    scores = score_batch(completions, solutions, {"format": 1.0, "iou": 2.0, "confidence": 0.5}, **kwargs)
    assert scores["format"][:3] == [1.0, 1.0, 0.0]
    assert scores["iou"][:3] == [1.0, 1.0, 0.0]
    assert scores["confidence"][:3] == [0.9, 0.9, 0.0]
    assert scores[TOTAL][:3] == [pytest.approx(3.45), pytest.approx(3.45), 0.0]
    with pytest.raises(ValueError, match="unknown rewards"):
        WeightedReward({"format": 1.0, "ioU": 1.0})


def test_process_pool_gives_the_same_scores() -> None:
    completions, solutions, kwargs = detection_batch()
    completions += ["The answer is $\\frac{6}{2}$", "<answer>3</answer>"]
    solutions += ["3", "4"]
    kwargs["image_size"] += [(1, 1), (1, 1)]
    weights = {"format": 1.0, "accuracy": 1.0, "iou": 1.0, "confidence": 1.0}
    inline = score_batch(completions, solutions, weights, **kwargs)
    with WeightedReward(weights, num_workers=2, chunk_size=3) as pooled:
        assert pooled.score(completions, solutions, **kwargs) == inline
        assert pooled(completions, solutions, **kwargs) == inline[TOTAL]
    assert inline["accuracy"][-2:] == [1.0, 0.0]
