"""The format reward: does a completion read `<think>…</think>` then `<answer>…</answer>`?

The seeds score 1 when `re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>", c, re.DOTALL)`
matches. That backtracking search is quadratic on completions that repeat the tags, so
`is_well_formatted` decides the same language directly: the completion starts with `<think>`,
ends with `</answer>`, and somewhere between them holds `</think>`, whitespace, `<answer>`.
Occurrences of `</think>\\s*<answer>` cannot overlap, so the first one after `<think>` is the one
that ends earliest; checking it alone is enough. Range: {0, 1}.
"""

from __future__ import annotations

import re

_THINK_OPEN = "<think>"
_ANSWER_CLOSE = "</answer>"
_JOINT = re.compile(r"</think>\s*+<answer>")


def is_well_formatted(text: str) -> bool:
    if not (text.startswith(_THINK_OPEN) and text.endswith(_ANSWER_CLOSE)):
        return False
    joint = _JOINT.search(text, len(_THINK_OPEN))
    return joint is not None and joint.end() <= len(text) - len(_ANSWER_CLOSE)


def format_score(completion: str, solution: str = "", **_: object) -> float:
    return 1.0 if is_well_formatted(completion) else 0.0
