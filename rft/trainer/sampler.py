"""Deterministic, resumable order over training records: a fresh permutation per epoch.

The state is two integers (epoch, position), saved in checkpoints; the same seed and state give
the same prompts, so a resumed run sees exactly the records it would have seen.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class EpochSampler(Generic[T]):
    def __init__(self, items: list[T], seed: int, shuffle: bool = True):
        if not items:
            raise ValueError("nothing to sample from")
        self.items = items
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.items))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.items))

    def take(self, count: int) -> list[T]:
        out = []
        while len(out) < count:
            if self.position == len(self.items):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            out.append(self.items[int(self._order[self.position])])
            self.position += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)
