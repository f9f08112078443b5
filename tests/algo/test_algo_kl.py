"""KL estimators at known points, and their expectations against the exact KL."""

import math

import pytest
import torch

from rft.algo import kl_penalty, sequence_kl

LOG2 = math.log(2.0)


@pytest.mark.parametrize(
    "name, expected",
    [("k1", LOG2), ("k2", 0.5 * LOG2**2), ("k3", 0.5 + LOG2 - 1.0)],
)
def test_known_point(name, expected):
    # policy gives the token p = 1/2, reference q = 1/4: ref - logp = -log 2
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    torch.testing.assert_close(kl_penalty(logp, ref, name), torch.tensor([expected]))


@pytest.mark.parametrize("name", ["k1", "k2", "k3"])
def test_zero_when_equal(name):
    x = torch.randn(3, 4)
    assert torch.equal(kl_penalty(x, x.clone(), name), torch.zeros(3, 4))


def test_k1_and_k3_are_unbiased_for_exact_kl():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    exact = (p * (p / q).log()).sum()
    for name in ("k1", "k3"):
        expectation = (p * kl_penalty(p.log(), q.log(), name)).sum()
        torch.testing.assert_close(expectation, exact)


def test_k3_nonnegative_and_finite_far_apart():
    logp = torch.tensor([0.0, -100.0, -1e-3])
    ref = torch.tensor([-100.0, 0.0, -50.0])
    out = kl_penalty(logp, ref, "k3")
    assert torch.isfinite(out).all() and (out >= 0).all()


def test_sequence_kl_masks_and_sums():
    logp = torch.tensor([[0.0, 1.0, 5.0]])
    ref = torch.zeros(1, 3)
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(sequence_kl(logp, ref, mask, "k1"), torch.tensor([1.0]))


def test_unknown_estimator():
    with pytest.raises(KeyError, match="unknown KL"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k9")
