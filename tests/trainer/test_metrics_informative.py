"""The share of prompt groups with a non-zero GRPO advantage (`adv/informative_groups`)."""

from __future__ import annotations

import math

from rft.trainer.metrics import informative_group_fraction, rollout_metrics
from rft.types import Completion


def _completion(group: int, total: float) -> Completion:
    return Completion(group=group, sample=0, token_ids=[1, 2], text="", logprobs=[], finish_reason="stop", rewards={"total": total, "accuracy": total})


def test_only_groups_with_different_rewards_count():
    completions = [_completion(0, 1.0), _completion(0, 1.0), _completion(1, 0.0), _completion(1, 2.0), _completion(2, 0.0), _completion(2, 0.0)]
    assert informative_group_fraction(completions) == 1 / 3


def test_all_saturated_and_all_informative_and_empty():
    assert informative_group_fraction([_completion(g, 2.0) for g in (0, 0, 1, 1)]) == 0.0
    assert informative_group_fraction([_completion(0, 0.5), _completion(0, 1.5)]) == 1.0
    assert math.isnan(informative_group_fraction([]))


def test_rollout_metrics_row_carries_it():
    row = rollout_metrics([_completion(0, 1.0), _completion(0, 0.0), _completion(1, 1.0), _completion(1, 1.0)], max_tokens=8, weights={"accuracy": 1.0})
    assert row["adv/informative_groups"] == 0.5
