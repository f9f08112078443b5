"""The child process behind `rft.rewards.mathverify`: math-verify with its signal timeouts off.

Run as `python -m rft.rewards._mathverify_worker`. Reads JSON lines `[gold, prediction]` on stdin
and answers `1` or `0` per line on stdout; the parent enforces the time bound by killing it.
"""

from __future__ import annotations

import json
import logging
import os
import sys

READY = "ready"


def check(gold: str, prediction: str) -> bool:
    """`verify(parse(gold), parse(prediction))` with math-verify's signal timeouts disabled."""
    from math_verify import parse, verify

    try:
        gold_parsed = parse(gold, parsing_timeout=None)
        pred_parsed = parse(prediction, parsing_timeout=None)
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
    except Exception:  # math-verify/sympy can raise anything on odd input
        return False


def serve() -> None:
    """Replies go to a private copy of stdout so that stray prints cannot corrupt them."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.ERROR)
    import math_verify  # noqa: F401  (pay the sympy import before saying ready)

    reply.write(READY + "\n")
    for line in sys.stdin:
        gold, prediction = json.loads(line)
        reply.write("1\n" if check(gold, prediction) else "0\n")


if __name__ == "__main__":
    serve()
