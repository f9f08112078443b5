"""Text helpers shared by the rewards and the task evaluators: answer extraction and kwargs.

Every helper here runs in time linear in its input. The seeds used regular expressions such as
`<answer>(.*?)</answer>`, which are quadratic on adversarial completions (many opening tags and
no closing one); the functions below find the same spans with `str.find` instead.
"""

from __future__ import annotations

import math
from typing import Any

from rft.errors import UserError

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"


def answer_span(text: str) -> str | None:
    """The text between the first `<answer>` and the next `</answer>`, or None if there is none.

    Same span as `re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)`: if the first opening tag
    has no closing tag after it, no later one has either. DOTALL on purpose: COT-SFT targets put
    the answer on its own line (`<answer>\\n3\\n</answer>`).
    """
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    if end < 0:
        return None
    return text[start:end]


def extract_answer(text: str) -> str:
    """The stripped answer of a completion or solution: the tagged span, else the whole text."""
    span = answer_span(text)
    return (text if span is None else span).strip()


def open_answer_span(text: str) -> str | None:
    """Like `answer_span` but tolerates a missing `</answer>` (a completion cut at max tokens)."""
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    return text[start:] if end < 0 else text[start:end]


def as_text(completion: Any) -> str:
    """A completion as text: strings as they are, chat messages (TRL's conversational format)
    joined by their text content, None as ""."""
    if isinstance(completion, str):
        return completion
    if completion is None:
        return ""
    if isinstance(completion, dict):
        return as_text(completion.get("content", completion.get("text")))
    if isinstance(completion, (list, tuple)):
        return "".join(as_text(part) for part in completion)
    return str(completion)


def finite_float(value: Any) -> float | None:
    """`value` as a finite float if it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except (OverflowError, ValueError):
        return None
    return out if math.isfinite(out) else None


class RewardConfigError(UserError, ValueError):
    """A reward was called with arguments that cannot be right (not a bad completion)."""


def check_kwargs(kwargs: dict[str, Any], n: int) -> None:
    """Per-sample keyword arguments are lists of length `n`; anything else is broadcast.

    So `image_size=(640, 480)` applies to every sample while `image_size=[(640, 480), (320, 240)]`
    gives one size per sample.
    """
    for key, value in kwargs.items():
        if isinstance(value, list) and len(value) != n:
            raise RewardConfigError(
                f"reward kwarg {key!r} is a list of length {len(value)} but there are {n} "
                "completions; pass per-sample values as a list of length n, or a tuple/scalar "
                "to broadcast one value to all samples"
            )


def split_kwargs(kwargs: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The keyword arguments of each of `n` samples (see `check_kwargs`)."""
    check_kwargs(kwargs, n)
    return [{k: (v[i] if isinstance(v, list) else v) for k, v in kwargs.items()} for i in range(n)]
