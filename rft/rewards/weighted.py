"""A task's reward set: named rewards, weighted and summed, optionally scored in a process pool.

`WeightedReward({"format": 1.0, "accuracy": 1.0}).score(completions, solutions, **kw)` returns
every component and their weighted sum under `"total"`. With `num_workers > 0` the batch is cut
into chunks (default: 4 per worker) that a pool of `num_workers` spawned processes scores in
parallel; the pool starts once (about a second) and is kept until `close()`. Spawned workers
import the caller's `__main__`, so scripts need the usual `if __name__ == "__main__":` guard.

Measured inline on 2 busy cores: 4,000 detection completions (format + iou + confidence, five
boxes each) in 0.8 s; 2,000 accuracy fallbacks to math-verify in 1.9 s. A pool of 2 did not beat
that there (pickling costs as much as scoring); it pays where idle cores exist, e.g. a reward
actor with several CPUs, or when many completions hit math-verify's slow paths.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rft.rewards.common import RewardConfigError, check_kwargs
from rft.rewards.registry import REWARD_NAMES, get_reward

TOTAL = "total"


def _score_components(names: Sequence[str], completions: Sequence[Any], solutions: Sequence[str], kwargs: dict) -> dict[str, list[float]]:
    return {name: get_reward(name)(completions, solutions, **kwargs) for name in names}


class WeightedReward:
    """Scores completions with several named rewards and their weighted sum."""

    def __init__(self, weights: Mapping[str, float], num_workers: int = 0, chunk_size: int | None = None):
        unknown = sorted(set(weights) - set(REWARD_NAMES))
        if unknown:
            raise ValueError(f"unknown rewards {unknown}; valid names: {', '.join(REWARD_NAMES)}")
        if not weights:
            raise ValueError("a weighted reward needs at least one component")
        self.weights = {name: float(w) for name, w in weights.items()}
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self._pool: ProcessPoolExecutor | None = None

    def score(self, completions: Sequence[Any], solutions: Sequence[str], **kwargs: Any) -> dict[str, list[float]]:
        n = len(completions)
        if len(solutions) != n:
            raise RewardConfigError(f"{n} completions but {len(solutions)} solutions")
        check_kwargs(kwargs, n)
        names = list(self.weights)
        if self.num_workers > 0 and n > 1:
            components = self._score_in_pool(names, completions, solutions, kwargs)
        else:
            components = _score_components(names, completions, solutions, kwargs)
        components[TOTAL] = [math.fsum(self.weights[name] * components[name][i] for name in names) for i in range(n)]
        return components

    def __call__(self, completions: Sequence[Any], solutions: Sequence[str], **kwargs: Any) -> list[float]:
        return self.score(completions, solutions, **kwargs)[TOTAL]

    def _score_in_pool(self, names: list[str], completions: Sequence[Any], solutions: Sequence[str], kwargs: dict) -> dict[str, list[float]]:
        n = len(completions)
        size = self.chunk_size or max(1, math.ceil(n / (4 * self.num_workers)))
        futures = [
            self._executor().submit(
                _score_components,
                names,
                list(completions[lo : lo + size]),
                list(solutions[lo : lo + size]),
                {k: (v[lo : lo + size] if isinstance(v, list) else v) for k, v in kwargs.items()},
            )
            for lo in range(0, n, size)
        ]
        out: dict[str, list[float]] = {name: [] for name in names}
        for future in futures:
            for name, values in future.result().items():
                out[name].extend(values)
        return out

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: callers are often multi-threaded (Ray actors, trainers).
            self._pool = ProcessPoolExecutor(self.num_workers, mp_context=mp.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> WeightedReward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def score_batch(
    completions: Sequence[Any],
    solutions: Sequence[str],
    weights: Mapping[str, float],
    num_workers: int = 0,
    **kwargs: Any,
) -> dict[str, list[float]]:
    """One-off `WeightedReward(weights, num_workers).score(...)`, pool closed afterwards."""
    with WeightedReward(weights, num_workers) as reward:
        return reward.score(completions, solutions, **kwargs)
