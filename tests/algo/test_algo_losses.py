"""Policy loss: aggregations, clipping, the seeds' gradient, KL/entropy terms, NaN handling."""

import math
from dataclasses import replace

import pytest
import torch
from rft_test_helpers import no_kl_loss

from rft.algo import aggregate, is_finite_loss, kl_penalty, nonfinite, policy_loss

NO_KL = no_kl_loss()
GRPO = replace(NO_KL, beta=0.04)  # the seeds' GRPO: k3 KL at 0.04

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


@pytest.mark.parametrize(
    "mode, kwargs, expected",
    [
        ("token_mean", {}, (1 + 2 + 3 + 4) / 4),
        ("seq_mean_token_mean", {}, (2.0 + 4.0) / 2),
        ("seq_sum_norm", {}, (6 / 3 + 4 / 3) / 2),
        ("seq_sum_norm", {"max_completion_len": 4}, (6 / 4 + 4 / 4) / 2),
    ],
)
def test_aggregations_hand_values(mode, kwargs, expected):
    torch.testing.assert_close(aggregate(VALUES, MASK.float(), mode, **kwargs), torch.tensor(expected))


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean", "seq_sum_norm"])
def test_micro_batches_with_global_counts_sum_to_full_batch(mode):
    torch.manual_seed(0)
    values = torch.randn(6, 5)
    mask = (torch.rand(6, 5) > 0.3).float()
    full = aggregate(values, mask, mode)
    glob = dict(total_tokens=mask.sum(), total_seqs=6, max_completion_len=5)
    parts = sum(aggregate(values[i : i + 2], mask[i : i + 2], mode, **glob) for i in range(0, 6, 2))
    torch.testing.assert_close(parts, full)


def test_empty_completion_counts_as_zero_not_nan():
    out = aggregate(torch.ones(2, 2), torch.tensor([[1.0, 1.0], [0.0, 0.0]]), "seq_mean_token_mean")
    torch.testing.assert_close(out, torch.tensor(0.5))


def _clip_case():
    # seq 0 has A = +1, seq 1 has A = -1; ratios chosen by hand
    ratios = torch.tensor([[1.5, 1.0, 0.5], [1.5, 0.5, 1.1]])
    old = torch.zeros(2, 3)
    logp = ratios.log().requires_grad_()
    return logp, old, torch.tensor([1.0, -1.0]), torch.ones(2, 3)


def test_clipping_hand_case():
    logp, old, adv, mask = _clip_case()
    loss, m = policy_loss(logp, old, adv, mask, settings=NO_KL)
    # surrogate = min(r A, clip(r) A): seq 0 -> [1.2, 1.0, 0.5], seq 1 -> [-1.5, -0.8, -1.1]
    expected = -((1.2 + 1.0 + 0.5) / 3 + (-1.5 - 0.8 - 1.1) / 3) / 2
    torch.testing.assert_close(loss, torch.tensor(expected))
    torch.testing.assert_close(m["clip_frac"], torch.tensor(2 / 6))
    torch.testing.assert_close(m["clip_frac_high"], torch.tensor(1 / 6))
    torch.testing.assert_close(m["clip_frac_low"], torch.tensor(1 / 6))
    torch.testing.assert_close(m["ratio_mean"], torch.tensor((1.5 + 1 + 0.5 + 1.5 + 0.5 + 1.1) / 6))
    torch.testing.assert_close(m["ratio_max"], torch.tensor(1.5))
    loss.backward()
    clipped = torch.tensor([[1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    assert torch.equal(logp.grad[clipped], torch.zeros(2))  # clipped tokens carry no gradient
    assert (logp.grad[~clipped] != 0).all()


def test_clip_higher_lets_positive_tokens_grow_further():
    logp, old, adv, mask = _clip_case()
    _, m = policy_loss(logp, old, adv, mask, settings=replace(NO_KL, clip_eps_high=0.6))
    torch.testing.assert_close(m["clip_frac_high"], torch.tensor(0.0))
    torch.testing.assert_close(m["clip_frac_low"], torch.tensor(1 / 6))


def _seeds_loss(logp, adv, ref, mask, beta):
    """The seeds' per-token loss -[exp(logp - sg(logp)) A - beta k3], token mean then sample mean."""
    per_token = torch.exp(logp - logp.detach()) * adv.unsqueeze(1)
    k3 = torch.exp(ref - logp) - (ref - logp) - 1
    per_token = -(per_token - beta * k3)
    return ((per_token * mask).sum(1) / mask.sum(1)).mean()


def test_one_epoch_grpo_gradient_equals_seeds_formula():
    torch.manual_seed(0)
    logp = (-torch.rand(4, 7) * 3).requires_grad_()
    ref = -torch.rand(4, 7) * 3
    adv = torch.randn(4)
    mask = torch.ones(4, 7)
    mask[1, 5:] = 0
    mask[3, 2:] = 0
    seeds = _seeds_loss(logp, adv, ref, mask, 0.04)
    (g_seeds,) = torch.autograd.grad(seeds, logp)
    for old in (None, logp.detach().clone()):
        ours, _ = policy_loss(logp, old, adv, mask, ref, settings=GRPO)
        (g_ours,) = torch.autograd.grad(ours, logp)
        torch.testing.assert_close(ours, seeds)
        torch.testing.assert_close(g_ours, g_seeds)


def test_kl_metric_and_beta_zero_needs_no_reference():
    torch.manual_seed(0)
    logp, ref, mask = -torch.rand(2, 3), -torch.rand(2, 3), torch.tensor([[1.0, 1, 0], [1, 1, 1]])
    _, m = policy_loss(logp, None, torch.ones(2), mask, ref, settings=GRPO)
    torch.testing.assert_close(m["kl"], (kl_penalty(logp, ref, "k3") * mask).sum() / 5)
    loss, m = policy_loss(logp, None, torch.ones(2), mask, settings=NO_KL)  # no ref at all
    assert "kl" not in m and is_finite_loss(loss)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, None, torch.ones(2), mask, settings=GRPO)


def test_kl_term_adds_beta_times_kl():
    torch.manual_seed(0)
    logp, ref, mask, adv = -torch.rand(3, 4), -torch.rand(3, 4), torch.ones(3, 4), torch.randn(3)
    with_kl, m = policy_loss(logp, None, adv, mask, ref, settings=GRPO)
    without, _ = policy_loss(logp, None, adv, mask, ref, settings=NO_KL)
    torch.testing.assert_close(with_kl - without, 0.04 * m["kl"])


def test_entropy_bonus():
    torch.manual_seed(0)
    logp, ent, mask, adv = -torch.rand(2, 3), torch.rand(2, 3).requires_grad_(), torch.ones(2, 3), torch.randn(2)
    base, m = policy_loss(logp, None, adv, mask, entropy=ent, settings=NO_KL)
    torch.testing.assert_close(m["entropy"], ent.detach().mean())
    bonus, _ = policy_loss(logp, None, adv, mask, entropy=ent, settings=replace(NO_KL, entropy_coef=0.01))
    torch.testing.assert_close(bonus, base - 0.01 * ent.detach().mean())
    bonus.backward()
    torch.testing.assert_close(ent.grad, torch.full((2, 3), -0.01 / 6))
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(logp, None, adv, mask, settings=replace(NO_KL, entropy_coef=0.1))


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_sum_norm"])
def test_garbage_in_padding_does_not_leak(aggregation):
    logp = torch.tensor([[-0.5, -1.0, float("nan")], [-0.2, float("-inf"), float("inf")]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    ref = torch.full((2, 3), float("nan"))
    ref[mask] = -0.7
    loss, m = policy_loss(logp, logp.detach() - 0.1, torch.tensor([1.0, -1.0]), mask, ref, settings=replace(GRPO, aggregation=aggregation))
    loss.backward()
    assert is_finite_loss(loss) and torch.isfinite(logp.grad).all()
    assert all(is_finite_loss(v) for v in m.values())
    assert torch.equal(logp.grad[~mask], torch.zeros(3))


def test_bf16_inputs_give_fp32_loss():
    logp = torch.full((2, 3), -0.5, dtype=torch.bfloat16, requires_grad=True)
    loss, _ = policy_loss(logp, None, torch.ones(2), torch.ones(2, 3), settings=NO_KL)
    assert loss.dtype == torch.float32
    loss.backward()
    assert logp.grad.dtype == torch.bfloat16


def test_token_level_advantages_accepted():
    logp = -torch.rand(2, 3)
    loss, _ = policy_loss(logp, None, torch.ones(2, 3) * 2, torch.ones(2, 3), settings=NO_KL)
    torch.testing.assert_close(loss, torch.tensor(-2.0))


def test_nan_detection():
    assert is_finite_loss(torch.tensor(1.5))
    assert not is_finite_loss(torch.tensor(float("nan")))
    assert not is_finite_loss(torch.tensor([0.0, math.inf]))
    assert nonfinite(loss=torch.tensor(float("nan")), kl=torch.tensor(0.0), ref=None) == ["loss"]


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_sum_norm"])
def test_empty_batch_gives_zero_loss(aggregation):
    loss, _ = policy_loss(torch.zeros(0, 4), None, torch.zeros(0), torch.zeros(0, 4), settings=replace(NO_KL, aggregation=aggregation))
    assert loss.item() == 0.0
    mask = torch.zeros(2, 3)  # a padding-only micro-batch
    loss, _ = policy_loss(-torch.rand(2, 3), None, torch.ones(2), mask, total_tokens=0, total_seqs=0, settings=replace(NO_KL, aggregation=aggregation))
    assert loss.item() == 0.0


def test_rollout_gap_is_reported_and_tis_weights_the_surrogate_by_hand():
    # one completion of two real tokens and one pad; the engine scored token 0 half a nat lower
    logp = torch.tensor([[-1.0, -2.0, 7.0]], requires_grad=True)
    rollout = torch.tensor([[-1.5, -2.0, float("nan")]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv = torch.tensor([1.0])

    loss, metrics = policy_loss(logp, None, adv, mask, rollout_logp=rollout, settings=NO_KL)
    assert metrics["rollout_logprob_gap"].item() == pytest.approx(0.25)
    assert loss.item() == pytest.approx(-1.0) and "tis_weight_mean" not in metrics  # off: reported only

    loss, metrics = policy_loss(logp, None, adv, mask, rollout_logp=rollout, settings=replace(NO_KL, tis_cap=2.0))
    w0 = math.exp(0.5)  # below the cap
    assert loss.item() == pytest.approx(-(w0 + 1.0) / 2)
    assert metrics["tis_weight_mean"].item() == pytest.approx((w0 + 1.0) / 2)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-w0 / 2, -0.5, 0.0])  # weights are constants

    loss, _ = policy_loss(logp.detach(), None, adv, mask, rollout_logp=rollout, settings=replace(NO_KL, tis_cap=1.2))
    assert loss.item() == pytest.approx(-(1.2 + 1.0) / 2)  # truncated at the cap


def test_tis_needs_the_engines_logprobs():
    with pytest.raises(ValueError, match="rollout_logp"):
        policy_loss(torch.zeros(1, 2), None, torch.ones(1), torch.ones(1, 2), settings=replace(NO_KL, tis_cap=2.0))
