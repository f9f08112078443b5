"""Named rewards: `get_reward(name)` gives `fn(completions, solutions, **kwargs) -> list[float]`.

Each reward is written once as a per-sample score; `get_reward` wraps it into the batch form and
makes it total: for any completion text it returns a finite float within `REWARD_RANGES[name]`
(a score that raises is logged and counts as the bottom of the range, as do NaN and inf).
With `RFT_STRICT_REWARDS=1` (the test suite sets it, and Ray actors inherit it) a score that
raises raises `RewardCrashed` instead, so a reward that crashes on every input cannot pass the
hand cases that expect its floor.
Keyword arguments are per-sample lists aligned with `completions`, or one value for all samples
(see `rft.rewards.common.check_kwargs`); a reward ignores the ones it does not know, so callers
can pass a dataset's extra columns straight through. Solutions may carry `<answer>` tags or not.
Completions may be strings or chat messages (TRL's conversational format).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rft.rewards.accuracy import accuracy_score
from rft.rewards.classification import classification_reward
from rft.rewards.common import RewardConfigError, as_text, split_kwargs
from rft.rewards.detection import confidence_reward, iou_reward
from rft.rewards.format import format_score
from rft.rewards.grounding import giou_reward
from rft.rewards.length import length_score
from rft.rewards.spatial import spatial_partial_score, spatial_reward

logger = logging.getLogger(__name__)
STRICT_ENV = "RFT_STRICT_REWARDS"


class RewardCrashed(RuntimeError):
    """A reward's score raised while `RFT_STRICT_REWARDS` is set."""


def strict_rewards() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


class RewardFn(Protocol):
    def __call__(self, completions: Sequence[Any], solutions: Sequence[str], **kwargs: Any) -> list[float]: ...


@dataclass(frozen=True)
class RewardSpec:
    score: Callable[..., float]
    low: float
    high: float
    summary: str


REWARDS: dict[str, RewardSpec] = {
    "format": RewardSpec(format_score, 0.0, 1.0, "<think>…</think> then <answer>…</answer>"),
    "accuracy": RewardSpec(accuracy_score, 0.0, 1.0, "exact answer match, math-verify without an answer tag"),
    "spatial": RewardSpec(spatial_reward, 0.0, 1.0, "exact calls with repetition penalty"),
    "spatial_partial": RewardSpec(spatial_partial_score, 0.0, 1.0, "partial-credit calls (evaluation score)"),
    "iou": RewardSpec(iou_reward, 0.0, 1.0, "matched IoU / max(|GT|, |Pred|)"),
    "confidence": RewardSpec(confidence_reward, 0.0, 1.0, "mean c if matched else 1 - c"),
    "classification": RewardSpec(classification_reward, 0.0, 1.0, "normalised class names contain one another"),
    "giou": RewardSpec(giou_reward, 0.0, 2.0, "GIoU + 1 of one box"),
    "length": RewardSpec(length_score, 0.0, 1.0, "1 - len/max_chars: shorter is better"),
}
REWARD_NAMES: tuple[str, ...] = tuple(REWARDS)
REWARD_RANGES: dict[str, tuple[float, float]] = {n: (s.low, s.high) for n, s in REWARDS.items()}

_warned: set[str] = set()


def get_reward(name: str) -> RewardFn:
    """The batch reward function registered as `name`."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; valid names: {', '.join(REWARD_NAMES)}")
    spec = REWARDS[name]

    def reward(completions: Sequence[Any], solutions: Sequence[str], **kwargs: Any) -> list[float]:
        if len(completions) != len(solutions):
            raise RewardConfigError(f"{len(completions)} completions but {len(solutions)} solutions")
        per_sample = split_kwargs(kwargs, len(completions))
        return [_score_one(name, spec, c, s, kw) for c, s, kw in zip(completions, solutions, per_sample)]

    reward.__name__ = reward.__qualname__ = f"{name}_reward"
    reward.__doc__ = f"{name}: {spec.summary}; range [{spec.low}, {spec.high}]."
    return reward


def _score_one(name: str, spec: RewardSpec, completion: Any, solution: Any, kw: dict) -> float:
    try:
        value = float(spec.score(as_text(completion), as_text(solution), **kw))
    except RewardConfigError:
        raise
    except Exception as err:  # a reward must not take a training step down with it
        if strict_rewards():
            raise RewardCrashed(f"reward {name!r} raised {err!r} on completion {as_text(completion)[:80]!r}") from err
        if name not in _warned:
            _warned.add(name)
            logger.warning("reward %r raised %r; scoring it %s (logged once)", name, err, spec.low)
        return spec.low
    if not math.isfinite(value):
        return spec.low
    return min(spec.high, max(spec.low, value))
