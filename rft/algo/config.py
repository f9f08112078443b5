"""The RL objective's settings: its choices as Enums, `LossSettings` (what `policy_loss` reads)
and `AlgoSettings` (the whole algorithm), each built from the `algo` config section by
`AlgoSettings.from_config`.

    settings = AlgoSettings.from_config(cfg.algo, max_completion_len=cfg.rollout.max_tokens)
    loss, metrics = policy_loss(logp, old, adv, mask, ref, settings=settings.loss)

The dataclasses have no defaults: `conf/algo/*.yaml` (grpo, dr_grpo, dapo) and the schema in
`rft.config` are the only place a value comes from, so a run never depends on a default here.
The Enums live here, beside the registries they name (a test holds the two equal), and the
schema imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class AlgoName(StrEnum):
    grpo = "grpo"
    dr_grpo = "dr_grpo"
    dapo = "dapo"


class Advantage(StrEnum):
    grpo = "grpo"
    dr_grpo = "dr_grpo"


class KLEstimator(StrEnum):
    k1 = "k1"
    k2 = "k2"
    k3 = "k3"


class Aggregation(StrEnum):
    seq_mean_token_mean = "seq_mean_token_mean"  # GRPO as the seeds run it
    token_mean = "token_mean"  # DAPO
    seq_sum_norm = "seq_sum_norm"  # Dr.GRPO


@dataclass(frozen=True)
class LossSettings:
    """Every knob of `policy_loss` (see rft.algo.losses for what each one does)."""

    beta: float
    kl_estimator: KLEstimator
    clip_eps_low: float
    clip_eps_high: float
    aggregation: Aggregation
    entropy_coef: float
    max_completion_len: int | None  # seq_sum_norm's constant; None = the padded width
    tis_cap: float  # truncated importance sampling against the rollout engine; 0 = off

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not (0 <= self.clip_eps_low < 1) or self.clip_eps_high < 0:
            raise ValueError(f"need 0 <= clip_eps_low < 1 and clip_eps_high >= 0, got {self.clip_eps_low}, {self.clip_eps_high}")
        if self.tis_cap < 0:
            raise ValueError(f"tis_cap must be >= 0 (0 = off), got {self.tis_cap}")
        if self.max_completion_len is not None and self.max_completion_len < 1:
            raise ValueError(f"max_completion_len must be >= 1, got {self.max_completion_len}")


@dataclass(frozen=True)
class AlgoSettings:
    name: AlgoName
    advantage: Advantage
    loss: LossSettings
    dynamic_sampling: bool
    max_refill_rounds: int  # sampling rounds per step before training on what is kept
    ppo_epochs: int

    def __post_init__(self) -> None:
        if self.ppo_epochs < 1 or self.max_refill_rounds < 1:
            raise ValueError("ppo_epochs and max_refill_rounds must be >= 1")

    @classmethod
    def from_config(cls, algo: Any, *, max_completion_len: int | None) -> AlgoSettings:
        """From the typed `algo` config section (its choices already Enums, see rft.config);
        `max_completion_len` is the generation budget (`rollout.max_tokens`)."""
        return cls(
            name=algo.name,
            advantage=algo.advantage,
            loss=LossSettings(
                beta=algo.beta,
                kl_estimator=algo.kl_estimator,
                clip_eps_low=algo.clip_eps_low,
                clip_eps_high=algo.clip_eps_high,
                aggregation=algo.aggregation,
                entropy_coef=algo.entropy_coef,
                max_completion_len=max_completion_len,
                tis_cap=algo.tis_cap,
            ),
            dynamic_sampling=algo.dynamic_sampling,
            max_refill_rounds=algo.max_refill_rounds,
            ppo_epochs=algo.ppo_epochs,
        )

    @property
    def needs_reference(self) -> bool:
        """Whether reference-model log-probs must be computed at all."""
        return self.loss.beta > 0
