"""Group-relative advantage estimators, looked up by name.

    adv = compute_advantages("grpo", rewards, group_ids)     # rewards (N,), group ids (N,) -> (N,)

Estimators:
- `grpo`:    A = (r - mean_G) / (std_G + eps), std with Bessel's correction (unbiased, torch.std's
             default, which is what the seeds ran). A group whose rewards are all equal gets A = 0.
- `dr_grpo`: A = r - mean_G (Dr.GRPO drops the std division, which over-weights easy and hard
             prompts whose rewards barely vary).

Groups are given explicitly (see `rft.algo.groups`), so the batch may hold any number of groups of
any sizes in any order. New estimators register with `@register_advantage("name")`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rft.algo.groups import GroupIds, group_index, group_stats

AdvantageFn = Callable[..., torch.Tensor]
_ADVANTAGES: dict[str, AdvantageFn] = {}


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: make an estimator `fn(rewards, index, num_groups, **kw) -> (N,)` available by name."""

    def wrap(fn: AdvantageFn) -> AdvantageFn:
        if name in _ADVANTAGES:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        _ADVANTAGES[name] = fn
        return fn

    return wrap


def advantage_names() -> list[str]:
    return sorted(_ADVANTAGES)


def get_advantage(name: str) -> AdvantageFn:
    try:
        return _ADVANTAGES[name]
    except KeyError:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {advantage_names()}") from None


def compute_advantages(name: str, rewards: torch.Tensor, group_ids: GroupIds, **kwargs) -> torch.Tensor:
    """Advantages (N,) in the rewards' dtype and device, for rewards (N,) grouped by group_ids (N,)."""
    rewards = torch.as_tensor(rewards)
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    index, num_groups = group_index(group_ids, device=rewards.device)
    if index.numel() != rewards.numel():
        raise ValueError(f"{rewards.numel()} rewards but {index.numel()} group ids")
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    return get_advantage(name)(rewards, index, num_groups, **kwargs).to(out_dtype)


@register_advantage("grpo")
def grpo_advantage(rewards: torch.Tensor, index: torch.Tensor, num_groups: int, *, eps: float = 1e-4, unbiased: bool = True) -> torch.Tensor:
    _, mean, std = group_stats(rewards, index, num_groups, unbiased=unbiased)
    return (rewards.to(torch.float64) - mean[index]) / (std[index] + eps)


@register_advantage("dr_grpo")
def dr_grpo_advantage(rewards: torch.Tensor, index: torch.Tensor, num_groups: int) -> torch.Tensor:
    _, mean, _ = group_stats(rewards, index, num_groups)
    return rewards.to(torch.float64) - mean[index]
