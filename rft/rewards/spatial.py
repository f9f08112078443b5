"""Spatial transformation: the RL reward and the partial-credit evaluation score.

An answer is a sequence of calls `func(object_id, value)`, parsed as the seeds do with
`(\\w+)\\((\\w+),\\s*'?(\\w+)'?\\)` from the `<answer>` span (the whole text without a tag).

- `spatial` (RL): P = unique predicted calls, S = solution calls, rho = |P| / #predicted
  (repetition penalty); reward = rho * |P ∩ S| / max(|P|, |S|); 0 when nothing parses.
- `spatial_partial` (evaluation): no repetition penalty (P is deduplicated); exact calls score 1;
  each leftover prediction, in order, then takes the first leftover solution call with the same
  (func, object) for 0.5, else the same (func, value) for 0.5, else the same func for 0.25;
  the item scores the total / max(|P|, |S|).
Both lie in [0, 1].
"""

from __future__ import annotations

import re

from rft.rewards.common import extract_answer

Call = tuple[str, str, str]

# The seeds' pattern with possessive quantifiers (same matches: each `\w+` is followed by a
# non-word character, so giving characters back never helps) and a start only where a word
# begins (the leftmost match always starts there); both keep the scan linear on long words.
_CALL = re.compile(r"(?<!\w)(\w++)\((\w++),\s*+'?(\w++)'?\)")


def parse_calls(text: str) -> list[Call]:
    """Every call in `text`, in order, duplicates kept."""
    return _CALL.findall(text)


def unique(calls: list[Call]) -> list[Call]:
    return list(dict.fromkeys(calls))


def _answer_calls(text: str) -> list[Call]:
    return parse_calls(extract_answer(text))


def spatial_reward(completion: str, solution: str, **_: object) -> float:
    predicted = _answer_calls(completion)
    truth = _answer_calls(solution)
    if not predicted or not truth:
        return 0.0
    distinct = unique(predicted)
    rho = len(distinct) / len(predicted)
    exact = len(set(distinct) & set(truth))
    return rho * exact / max(len(distinct), len(truth))


# Credit for a leftover prediction against a leftover solution call, best first.
_PARTIAL_RULES = (
    (0.5, lambda p, t: p[0] == t[0] and p[1] == t[1]),  # same function and object
    (0.5, lambda p, t: p[0] == t[0] and p[2] == t[2]),  # same function and value
    (0.25, lambda p, t: p[0] == t[0]),  # same function
)


def partial_credit(predicted: list[Call], truth: list[Call]) -> float:
    """The evaluation score of deduplicated predictions against the solution calls."""
    if not predicted or not truth:
        return 0.0
    remaining = list(truth)
    leftovers = []
    total = 0.0
    for call in predicted:
        if call in remaining:
            remaining.remove(call)
            total += 1.0
        else:
            leftovers.append(call)
    for call in leftovers:
        total += _take_partial(call, remaining)
    return total / max(len(predicted), len(truth))


def _take_partial(call: Call, remaining: list[Call]) -> float:
    """Credit of `call` against the first fitting call in `remaining`, which it then uses up."""
    for credit, fits in _PARTIAL_RULES:
        for i, target in enumerate(remaining):
            if fits(call, target):
                del remaining[i]
                return credit
    return 0.0


def spatial_partial_score(completion: str, solution: str, **_: object) -> float:
    return partial_credit(unique(_answer_calls(completion)), _answer_calls(solution))
