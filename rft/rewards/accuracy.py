"""The accuracy reward for counting and structure perception, and the matching evaluation check.

Seed rule: compare the stripped `<answer>` contents of completion and solution (the whole
string where there is no tag); 1 if equal. Only when the completion has no answer tag, fall back
to math-verify on the whole completion. Binary, so "3.0" vs "3" scores 0 in the seed;
`numeric_equivalence=True` (off by default) accepts equal numbers written differently.

Deliberate differences: an empty ground truth scores 0 (nothing to verify against), and
math-verify is called as its API documents, `verify(gold, prediction)` (the seed passed them the
other way round; the two differ only for assignments and set/relation answers).
Range: {0, 1}.
"""

from __future__ import annotations

import math

from rft.rewards.common import answer_span, extract_answer
from rft.rewards.mathverify import verify_equal


def as_number(text: str) -> float | None:
    """`text` as a finite number ("3", "3.0", "-2.5", "1e3"), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numbers_equal(a: str, b: str) -> bool:
    x, y = as_number(a), as_number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def answers_match(prediction: str, truth: str, numeric_equivalence: bool = False) -> bool:
    """Exact match of stripped answers, optionally also numerically equal."""
    if not truth:
        return False
    return prediction == truth or (numeric_equivalence and numbers_equal(prediction, truth))


def answer_correct(
    prediction: str,
    truth: str,
    numeric_equivalence: bool = False,
    math_verify: bool = True,
    math_verify_timeout: float | None = None,
) -> bool:
    """The evaluation check: exact match, else math-verify equivalence."""
    if answers_match(prediction, truth, numeric_equivalence):
        return True
    return math_verify and bool(truth) and verify_equal(prediction, truth, math_verify_timeout)


def accuracy_score(
    completion: str,
    solution: str,
    numeric_equivalence: bool = False,
    math_verify: bool = True,
    math_verify_timeout: float | None = None,
    **_: object,
) -> float:
    truth = extract_answer(solution)
    tagged = answer_span(completion)
    if tagged is not None:
        return 1.0 if answers_match(tagged.strip(), truth, numeric_equivalence) else 0.0
    correct = answer_correct(completion.strip(), truth, numeric_equivalence, math_verify, math_verify_timeout)
    return 1.0 if correct else 0.0
