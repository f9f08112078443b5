"""Chunked token log-probs and entropy match the naive log_softmax versions, values and gradients."""

import pytest
import torch

from rft.algo import entropy_from_logits, token_logprobs


def _naive_logprobs(logits, ids, temperature=1.0):
    return torch.log_softmax(logits.double() / temperature, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def _naive_entropy(logits, temperature=1.0):
    logp = torch.log_softmax(logits.double() / temperature, -1)
    return -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk_elems", [7, 1 << 20])  # several chunks of one row / a single chunk
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_values_and_grad(chunk_elems, temperature):
    torch.manual_seed(0)
    logits = (torch.randn(3, 5, 11, dtype=torch.float64) * 3).requires_grad_()
    ids = torch.randint(0, 11, (3, 5))
    weights = torch.randn(3, 5, dtype=torch.float64)
    ours = token_logprobs(logits, ids, temperature=temperature, chunk_elems=chunk_elems)
    ref = _naive_logprobs(logits, ids, temperature)
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), logits)
    torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_entropy_values_and_grad(temperature):
    torch.manual_seed(1)
    logits = (torch.randn(4, 9, dtype=torch.float64) * 2).requires_grad_()
    weights = torch.randn(4, dtype=torch.float64)
    ours = entropy_from_logits(logits, temperature=temperature, chunk_elems=9)
    ref = _naive_entropy(logits, temperature)
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), logits)
    torch.testing.assert_close(g_ours, g_ref)


def test_gradcheck():
    torch.manual_seed(2)
    logits = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([0, 5, 2])
    assert torch.autograd.gradcheck(lambda x: token_logprobs(x, ids, temperature=0.9, chunk_elems=6), (logits,))
    assert torch.autograd.gradcheck(lambda x: entropy_from_logits(x, chunk_elems=12), (logits,))


def test_bf16_logits_give_fp32_outputs_and_bf16_grads():
    torch.manual_seed(3)
    logits = torch.randn(2, 4, 32).to(torch.bfloat16).requires_grad_()
    ids = torch.randint(0, 32, (2, 4))
    out = token_logprobs(logits, ids)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _naive_logprobs(logits.float(), ids).float(), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    assert entropy_from_logits(logits).dtype == torch.float32


def test_negative_ids_give_zero_and_no_grad():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    ids = torch.tensor([[1, -100, 4]])
    out = token_logprobs(logits, ids)
    assert out[0, 1] == 0
    out.sum().backward()
    assert torch.equal(logits.grad[0, 1], torch.zeros(5))


def test_uniform_entropy_is_log_vocab():
    torch.testing.assert_close(entropy_from_logits(torch.zeros(2, 8)), torch.full((2,), torch.log(torch.tensor(8.0)).item()))


def test_shape_mismatch():
    with pytest.raises(ValueError):
        token_logprobs(torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.long))
