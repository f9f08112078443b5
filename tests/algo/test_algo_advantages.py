"""Group advantages: hand-computed values, arbitrary group order and sizes, degenerate groups."""

import math

import pytest
import torch

from rft.algo import advantage_names, compute_advantages, register_advantage


def test_grpo_two_groups_interleaved_hand_values():
    # group "b" = {2, 0, 1}: mean 1, unbiased std 1; group "a" = {1, 0}: mean 0.5, std sqrt(0.5)
    rewards = torch.tensor([2.0, 1.0, 0.0, 0.0, 1.0])
    groups = ["b", "a", "b", "a", "b"]
    adv = compute_advantages("grpo", rewards, groups)
    sa = math.sqrt(0.5) + 1e-4
    expected = torch.tensor([1 / 1.0001, 0.5 / sa, -1 / 1.0001, -0.5 / sa, 0.0])
    torch.testing.assert_close(adv, expected)


def test_grpo_population_std_option():
    adv = compute_advantages("grpo", torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), unbiased=False)
    torch.testing.assert_close(adv, torch.tensor([0.5 / 0.5001, -0.5 / 0.5001]))


def test_grpo_matches_torch_std_per_group_on_random_batch():
    torch.manual_seed(0)
    rewards = torch.rand(24)
    groups = torch.randint(0, 5, (24,))
    adv = compute_advantages("grpo", rewards, groups)
    for g in groups.unique():
        sel = groups == g
        r = rewards[sel]
        ref = (r - r.mean()) / (r.std() + 1e-4) if sel.sum() > 1 else torch.zeros_like(r)
        torch.testing.assert_close(adv[sel], ref, rtol=1e-5, atol=1e-6)


def test_identical_rewards_and_singleton_groups_give_exact_zeros():
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 1.0, 0.0])
    groups = torch.tensor([4, 4, 4, 5, 6, 6])  # constant group, singleton group, normal group
    for name in ("grpo", "dr_grpo"):
        adv = compute_advantages(name, rewards, groups)
        assert torch.equal(adv[:4], torch.zeros(4)), name
        assert adv[4] > 0 > adv[5]


def test_dr_grpo_is_centred_reward_without_std():
    adv = compute_advantages("dr_grpo", torch.tensor([3.0, 1.0, 0.0, 1.0]), torch.tensor([1, 1, 2, 2]))
    torch.testing.assert_close(adv, torch.tensor([1.0, -1.0, -0.5, 0.5]))


def test_order_invariance():
    torch.manual_seed(1)
    rewards = torch.rand(16)
    groups = torch.arange(16) % 4
    perm = torch.randperm(16)
    adv = compute_advantages("grpo", rewards, groups)
    torch.testing.assert_close(compute_advantages("grpo", rewards[perm], groups[perm]), adv[perm])


def test_device_batch_with_several_prompts_is_grouped_by_id_not_by_position():
    # The seeds' defect: a device batch of 2 prompts x G=2 was normalised as one block of 4.
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 1, 1])
    adv = compute_advantages("grpo", rewards, groups)
    assert torch.equal(adv[2:], torch.zeros(2))  # prompt 1: all correct -> no signal
    torch.testing.assert_close(adv[:2], compute_advantages("grpo", rewards[:2], groups[:2]))


def test_integer_rewards_give_float_and_dtype_is_kept():
    assert compute_advantages("grpo", torch.tensor([1, 0]), [0, 0]).dtype == torch.float32
    assert compute_advantages("grpo", torch.tensor([1.0, 0.0], dtype=torch.float64), [0, 0]).dtype == torch.float64


def test_errors_and_registry():
    with pytest.raises(ValueError):
        compute_advantages("grpo", torch.zeros(3), [0, 0])
    with pytest.raises(KeyError, match="unknown advantage"):
        compute_advantages("nope", torch.zeros(2), [0, 0])
    assert {"grpo", "dr_grpo"} <= set(advantage_names())

    @register_advantage("test_raw_reward")
    def raw(rewards, index, num_groups):
        return rewards

    torch.testing.assert_close(compute_advantages("test_raw_reward", torch.tensor([2.0]), [0]), torch.tensor([2.0]))
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(raw)
