"""The length reward: shorter completions score higher (Reason-RFT's optional length term).

    score = 1 - min(len(completion), max_chars) / max_chars,   range [0, 1]

`max_chars` (default 256) is a reward option (`reward.options.max_chars`). Besides being a real
knob against rambling, it is a signal a randomly initialised model can climb, which the test
suite uses to check that the RL loop learns.
"""

from __future__ import annotations

DEFAULT_MAX_CHARS = 256


def length_score(completion: str, solution: str = "", max_chars: int = DEFAULT_MAX_CHARS, **_: object) -> float:
    cap = max(1, int(max_chars))
    return 1.0 - min(len(completion), cap) / cap
