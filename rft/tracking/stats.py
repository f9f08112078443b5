"""Typed statistics: each one says how its values combine over micro-batches and learner ranks.

A learner update produces one partial per micro-batch, and the group one partial per rank; both
are merged by the same rule, looked up by name in a table of `Reduce` kinds:

- `SUM`: the partials add up (losses already normalised by the global token or sequence count,
  token counts);
- `TOKEN_MEAN`: a mean weighted by each partial's `tokens` (per-token statistics such as the KL,
  the entropy, the clip fraction); the default for a name the table does not list;
- `MAX`: the largest partial (flags, learning rate, wall time of ranks that run in parallel);
- `FIRST`: the first partial (a value every rank computes alike, e.g. DeepSpeed's global grad norm).

`timer()` measures a block's wall time, replacing pairs of `time.perf_counter()` calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum

WEIGHT_KEY = "tokens"


class Reduce(StrEnum):
    SUM = "sum"
    TOKEN_MEAN = "token_mean"
    MAX = "max"
    FIRST = "first"


# The learner's statistics (its `train_rl`/`train_sft` results); names not listed are TOKEN_MEAN.
LEARNER_STATS: dict[str, Reduce] = {
    "loss": Reduce.SUM,
    "pg_loss": Reduce.SUM,
    WEIGHT_KEY: Reduce.SUM,
    "grad_norm": Reduce.FIRST,
    "lr": Reduce.MAX,
    "skipped_update": Reduce.MAX,
    "nonfinite_microbatches": Reduce.MAX,
    "update_s": Reduce.MAX,
    "ratio_max": Reduce.MAX,
    "peak_rss_gb": Reduce.MAX,
    "threads": Reduce.MAX,
}


def reduce_of(name: str, kinds: Mapping[str, Reduce] = LEARNER_STATS) -> Reduce:
    return kinds.get(name, Reduce.TOKEN_MEAN)


def merge_stats(parts: Sequence[Mapping[str, float]], kinds: Mapping[str, Reduce] = LEARNER_STATS) -> dict[str, float]:
    """One value per statistic from partials (micro-batches of one rank, or ranks of one update).
    A statistic missing from some partials is merged over those that have it."""
    names = list(dict.fromkeys(name for part in parts for name in part))
    return {name: _reduce(reduce_of(name, kinds), [p for p in parts if name in p], name) for name in names}


def _reduce(kind: Reduce, parts: Sequence[Mapping[str, float]], name: str) -> float:
    values = [float(p[name]) for p in parts]
    if kind is Reduce.SUM:
        return sum(values)
    if kind is Reduce.MAX:
        return max(values)
    if kind is Reduce.FIRST:
        return values[0]
    weights = [float(p.get(WEIGHT_KEY, 0.0)) for p in parts]
    return sum(v * w for v, w in zip(values, weights)) / (sum(weights) or 1.0)


class Timer:
    """Wall seconds since it was made; `stop()` fixes them in `seconds`. A block's time:
    `with timer() as t: ...` then `t.seconds`."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.seconds = 0.0

    def stop(self) -> float:
        self.seconds = time.perf_counter() - self._start
        return self.seconds


@contextmanager
def timer() -> Iterator[Timer]:
    """Times the `with` block (`seconds` is set also when the block raises)."""
    out = Timer()
    try:
        yield out
    finally:
        out.stop()
