"""The same functions on a GPU (skipped without one): same values as on CPU, bounded memory."""

import pytest
import torch

from rft.algo import LossSettings, compute_advantages, entropy_from_logits, filter_groups, policy_loss, token_logprobs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_gpu_matches_cpu():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 50)
    ids = torch.randint(0, 50, (4, 6))
    cuda = logits.cuda().requires_grad_()
    torch.testing.assert_close(token_logprobs(cuda, ids.cuda()).cpu(), token_logprobs(logits, ids))
    torch.testing.assert_close(entropy_from_logits(cuda).cpu(), entropy_from_logits(logits))
    rewards, groups = torch.rand(8), torch.tensor([0, 1] * 4)
    torch.testing.assert_close(compute_advantages("grpo", rewards.cuda(), groups.cuda()).cpu(), compute_advantages("grpo", rewards, groups))
    assert filter_groups(rewards.cuda(), groups.cuda()).kept_groups == [0, 1]
    loss, _ = policy_loss(
        token_logprobs(cuda, ids.cuda()),
        None,
        torch.randn(4).cuda(),
        torch.ones(4, 6).cuda(),
        settings=LossSettings(
            beta=0.0, kl_estimator="k3", clip_eps_low=0.2, clip_eps_high=0.2, aggregation="token_mean", entropy_coef=0.0, max_completion_len=None, tis_cap=0.0
        ),
    )
    loss.backward()
    assert torch.isfinite(cuda.grad).all()


def test_chunked_logprobs_use_less_memory_than_log_softmax():
    rows, vocab = 2048, 32768  # bf16 logits: 128 MiB; an fp32 log_softmax copy would be 256 MiB
    logits = torch.randn(rows, vocab, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    ids = torch.randint(0, vocab, (rows,), device="cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = token_logprobs(logits, ids, chunk_elems=1 << 22)
    peak_forward = torch.cuda.max_memory_allocated() - base
    assert peak_forward < 100 * 2**20, peak_forward  # a few 16 MiB fp32 chunk temporaries
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
