"""DAPO filter: zero-variance groups are found whatever the order, ids and sizes."""

import torch

from rft.algo import filter_groups, zero_variance_groups


def test_zero_variance_groups_found_interleaved():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5])
    groups = ["p", "q", "p", "r", "q", "p", "s", "s"]  # p all 1, q all 0, r singleton, s mixed
    result = filter_groups(rewards, groups)
    assert result.dropped_groups == ["p", "q", "r"]
    assert result.kept_groups == ["s"]
    assert result.keep_mask.tolist() == [False] * 6 + [True, True]
    assert zero_variance_groups(rewards, groups) == ["p", "q", "r"]
    m = result.metrics()
    assert m["dynamic_sampling/kept_groups"] == 1.0 and m["dynamic_sampling/drop_fraction"] == 0.75


def test_tensor_ids_and_tolerance():
    rewards = torch.tensor([0.5, 0.5 + 1e-9, 0.2, 0.9], dtype=torch.float64)
    groups = torch.tensor([10, 10, 11, 11])
    assert filter_groups(rewards, groups).kept_groups == [10, 11]
    result = filter_groups(rewards, groups, atol=1e-6)
    assert result.dropped_groups == [10] and result.num_kept == 1


def test_all_informative_and_empty():
    result = filter_groups(torch.tensor([0.0, 1.0]), [0, 0])
    assert result.drop_fraction == 0.0 and result.keep_mask.all()
    empty = filter_groups(torch.zeros(0), [])
    assert empty.kept_groups == [] and empty.drop_fraction == 0.0
