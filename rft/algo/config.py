"""`AlgoSettings`: every knob of the RL objective in one plain dataclass, with named presets.

    settings = AlgoSettings.preset("dapo", ppo_epochs=2)   # or AlgoSettings(**cfg.algo)
    loss, metrics = policy_loss(logp, old, adv, mask, ref, **settings.loss_kwargs())

Presets (every field is explicit here, so results never depend on a library's defaults):

| preset  | advantage | aggregation         | beta | kl  | eps low/high | dynamic sampling |
|---------|-----------|---------------------|------|-----|--------------|------------------|
| grpo    | grpo      | seq_mean_token_mean | 0.04 | k3  | 0.2 / 0.2    | no               |
| dr_grpo | dr_grpo   | seq_sum_norm        | 0    | k3  | 0.2 / 0.2    | no               |
| dapo    | grpo      | token_mean          | 0    | k3  | 0.2 / 0.28   | yes              |

`kl_in_reward=True` moves the beta * KL penalty from the loss into the reward (the controller
subtracts `beta * sequence_kl(...)` before computing advantages); `loss_kwargs()` then passes
beta = 0 to the loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rft.algo.advantages import advantage_names
from rft.algo.kl import kl_names
from rft.algo.losses import aggregation_names


@dataclass
class AlgoSettings:
    name: str = "grpo"
    advantage: str = "grpo"
    adv_eps: float = 1e-4  # added to the group std (grpo advantage only)
    adv_std_unbiased: bool = True  # Bessel-corrected group std, as the seeds (torch.std default)
    beta: float = 0.04
    kl_estimator: str = "k3"
    kl_in_reward: bool = False
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    aggregation: str = "seq_mean_token_mean"
    max_completion_len: int | None = None  # seq_sum_norm's constant; None = padded width
    dynamic_sampling: bool = False
    dynamic_sampling_max_rounds: int = 3  # sampling rounds per step before training on what is kept
    ppo_epochs: int = 1
    entropy_coef: float = 0.0
    tis_cap: float = 0.0  # truncated importance sampling against the rollout engine; 0 = off

    def __post_init__(self) -> None:
        _check_choice("advantage", self.advantage, advantage_names())
        _check_choice("kl_estimator", self.kl_estimator, kl_names())
        _check_choice("aggregation", self.aggregation, aggregation_names())
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not (0 <= self.clip_eps_low < 1) or self.clip_eps_high < 0:
            raise ValueError(f"need 0 <= clip_eps_low < 1 and clip_eps_high >= 0, got {self.clip_eps_low}, {self.clip_eps_high}")
        if self.ppo_epochs < 1 or self.dynamic_sampling_max_rounds < 1:
            raise ValueError("ppo_epochs and dynamic_sampling_max_rounds must be >= 1")
        if self.tis_cap < 0:
            raise ValueError(f"tis_cap must be >= 0 (0 = off), got {self.tis_cap}")
        if self.max_completion_len is not None and self.max_completion_len < 1:
            raise ValueError(f"max_completion_len must be >= 1, got {self.max_completion_len}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AlgoSettings:
        if name not in PRESETS:
            raise KeyError(f"unknown algorithm preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def needs_reference(self) -> bool:
        """Whether reference-model log-probs must be computed at all."""
        return self.beta > 0

    def loss_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `policy_loss` taken from these settings."""
        return dict(
            beta=0.0 if self.kl_in_reward else self.beta,
            kl_estimator=self.kl_estimator,
            clip_eps_low=self.clip_eps_low,
            clip_eps_high=self.clip_eps_high,
            aggregation=self.aggregation,
            entropy_coef=self.entropy_coef,
            max_completion_len=self.max_completion_len,
            tis_cap=self.tis_cap,
        )

    def advantage_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `compute_advantages(self.advantage, ...)`."""
        if self.advantage == "grpo":
            return dict(eps=self.adv_eps, unbiased=self.adv_std_unbiased)
        return {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_choice(field: str, value: str, known: list[str]) -> None:
    if value not in known:
        raise ValueError(f"{field}={value!r} is not one of {known}")


PRESETS: dict[str, dict[str, Any]] = {
    "grpo": dict(
        name="grpo", advantage="grpo", beta=0.04, kl_estimator="k3", clip_eps_low=0.2, clip_eps_high=0.2,
        aggregation="seq_mean_token_mean", dynamic_sampling=False,
    ),
    "dr_grpo": dict(
        name="dr_grpo", advantage="dr_grpo", beta=0.0, kl_estimator="k3", clip_eps_low=0.2, clip_eps_high=0.2,
        aggregation="seq_sum_norm", dynamic_sampling=False,
    ),
    "dapo": dict(
        name="dapo", advantage="grpo", beta=0.0, kl_estimator="k3", clip_eps_low=0.2, clip_eps_high=0.28,
        aggregation="token_mean", dynamic_sampling=True,
    ),
}
