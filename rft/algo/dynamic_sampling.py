"""DAPO dynamic sampling: find the groups whose rewards carry no learning signal.

A group whose G completions all got the same reward (all right or all wrong) has zero advantage
under any group-relative estimator, so it only dilutes the batch. DAPO drops such groups and keeps
sampling new prompts until the batch is full of informative groups. This module decides which
groups to drop; the controller owns the refill loop (it knows how to sample more prompts):

    result = filter_groups(rewards, group_ids)
    keep_rows = result.keep_mask          # (N,) bool, rows of informative groups
    need = target_groups - result.num_kept   # sample at least this many more prompts
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rft.algo.groups import GroupIds, group_index


@dataclass(frozen=True)
class GroupFilterResult:
    """Which rows and groups to keep. Group positions follow first appearance in the batch."""

    keep_mask: torch.Tensor  # (N,) bool: True for rows whose group has reward variance
    kept_groups: list  # group ids (as given) with non-zero variance
    dropped_groups: list  # group ids (as given) with zero variance

    @property
    def num_kept(self) -> int:
        return len(self.kept_groups)

    @property
    def drop_fraction(self) -> float:
        total = len(self.kept_groups) + len(self.dropped_groups)
        return len(self.dropped_groups) / total if total else 0.0

    def metrics(self) -> dict[str, float]:
        return {
            "dynamic_sampling/kept_groups": float(self.num_kept),
            "dynamic_sampling/dropped_groups": float(len(self.dropped_groups)),
            "dynamic_sampling/drop_fraction": self.drop_fraction,
        }


def zero_variance_groups(rewards: torch.Tensor, group_ids: GroupIds, *, atol: float = 0.0) -> list:
    """Group ids (as given, in order of first appearance) whose rewards all lie within `atol`."""
    return filter_groups(rewards, group_ids, atol=atol).dropped_groups


def filter_groups(rewards: torch.Tensor, group_ids: GroupIds, *, atol: float = 0.0) -> GroupFilterResult:
    """Split a batch into informative groups (reward spread > atol) and zero-variance ones.

    A group of a single completion counts as zero-variance (it has nothing to compare against).
    """
    rewards = torch.as_tensor(rewards)
    index, num_groups = group_index(group_ids, device=rewards.device)
    if index.numel() != rewards.numel():
        raise ValueError(f"{rewards.numel()} rewards but {index.numel()} group ids")
    v = rewards.detach().to(torch.float64)
    lo = torch.full((num_groups,), float("inf"), dtype=torch.float64, device=v.device)
    hi = torch.full((num_groups,), float("-inf"), dtype=torch.float64, device=v.device)
    lo.scatter_reduce_(0, index, v, reduce="amin")
    hi.scatter_reduce_(0, index, v, reduce="amax")
    count = torch.bincount(index, minlength=num_groups)
    informative = ((hi - lo) > atol) & (count > 1)
    first_ids = _first_ids(group_ids, index, num_groups)
    kept = [first_ids[k] for k in range(num_groups) if informative[k]]
    dropped = [first_ids[k] for k in range(num_groups) if not informative[k]]
    return GroupFilterResult(keep_mask=informative[index], kept_groups=kept, dropped_groups=dropped)


def _first_ids(group_ids: GroupIds, index: torch.Tensor, num_groups: int) -> list:
    """The original id of each dense group index."""
    ids: dict[int, object] = {}
    values = group_ids.tolist() if isinstance(group_ids, torch.Tensor) else list(group_ids)
    for row, k in enumerate(index.tolist()):
        ids.setdefault(k, values[row])
    return [ids[k] for k in range(num_groups)]
