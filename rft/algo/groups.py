"""Per-group statistics over flat batches, keyed by explicit group ids.

A rollout batch is a flat list of N completions; the completions of one prompt share a group id.
Everything group-relative (advantages, the DAPO filter) goes through these helpers, so it never
depends on the order of the batch or on how many prompts a device batch holds (the seeds assumed
consecutive blocks of G per device and grouped wrongly when a device batch held several prompts).

Group ids may be an integer tensor or any sequence of hashable values (ints, strings, tuples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

GroupIds = torch.Tensor | Sequence[Any]


def group_index(group_ids: GroupIds, device: torch.device | None = None) -> tuple[torch.Tensor, int]:
    """Map group ids to dense indices 0..K-1 (in order of first appearance). Returns (index (N,), K)."""
    if isinstance(group_ids, torch.Tensor):
        if group_ids.dim() != 1:
            raise ValueError(f"group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
        unique, inverse = torch.unique(group_ids, return_inverse=True)
        return _first_appearance_order(inverse).to(device or group_ids.device), unique.numel()
    dense: dict[Any, int] = {}
    index = [dense.setdefault(g, len(dense)) for g in group_ids]
    return torch.tensor(index, dtype=torch.long, device=device), len(dense)


def _first_appearance_order(inverse: torch.Tensor) -> torch.Tensor:
    """Renumber sorted-unique indices so that group k is the k-th group met in the batch."""
    if inverse.numel() == 0:
        return inverse
    k = int(inverse.max().item()) + 1
    positions = torch.arange(inverse.numel(), device=inverse.device)
    first = torch.full((k,), inverse.numel(), dtype=torch.long, device=inverse.device)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(k, device=inverse.device)
    return rank[inverse]


def group_stats(values: torch.Tensor, index: torch.Tensor, num_groups: int, *, unbiased: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group (count, mean, std), each of shape (K,). Computed in float64 for stability.

    With `unbiased=True` (Bessel's correction, torch.std's default, what the seeds used) a group of
    one sample has no defined std; it is reported as 0 so such a group gets zero advantage.
    """
    if values.dim() != 1 or values.shape != index.shape:
        raise ValueError(f"values {tuple(values.shape)} and group index {tuple(index.shape)} must be equal 1-D")
    v = values.detach().to(torch.float64)
    count = torch.zeros(num_groups, dtype=torch.float64, device=v.device).index_add_(0, index, torch.ones_like(v))
    total = torch.zeros_like(count).index_add_(0, index, v)
    mean = total / count.clamp(min=1)
    # Summation rounding would leave constant groups with a ~1e-17 deviation, which the 1e-4 of
    # the GRPO denominator then blows up to ~1e-13; pin those means to the exact common value.
    lo = torch.full_like(count, float("inf")).scatter_reduce_(0, index, v, reduce="amin")
    hi = torch.full_like(count, float("-inf")).scatter_reduce_(0, index, v, reduce="amax")
    mean = torch.where(lo == hi, hi, mean)
    sq_dev = torch.zeros_like(count).index_add_(0, index, (v - mean[index]) ** 2)
    dof = (count - 1) if unbiased else count
    std = torch.where(dof > 0, sq_dev / dof.clamp(min=1), torch.zeros_like(count)).sqrt()
    return count, mean, std
