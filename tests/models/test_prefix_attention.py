"""The shared-prefix attention (`rft.models.prefix_attention`) equals sdpa over the dense
shared-prefix mask: values and gradients of query, key and value, with grouped-query heads,
rows of different prompts, completions of unequal lengths (one empty) and row padding; calls
without a layout, or from a non-causal (vision) module, are plain sdpa. The whole model with
images is compared in tests/learner/test_shared_prefix.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from rft.learner.batch import shared_prefix_mask
from rft.models import prefix_attention as prefix_attention_module
from rft.models.prefix_attention import LAYOUT_KEY, PrefixLayout, prefix_attention

HEADS, KV_HEADS, DIM = 4, 2, 8
TEXT = SimpleNamespace(is_causal=True, num_key_value_groups=HEADS // KV_HEADS)
VISION = SimpleNamespace(is_causal=False, num_key_value_groups=HEADS // KV_HEADS)


def _layout() -> tuple[PrefixLayout, torch.Tensor]:
    """Two rows of length 16: prompt 3 + completions 5, 2, 0, 4 (+2 padding); prompt 6 + 7 (+3)."""
    rows = [(3, [5, 2, 0, 4]), (6, [7])]
    length = 16
    segments, ids = [], torch.full((len(rows), length), -1)
    for r, (p, lengths) in enumerate(rows):
        ids[r, :p], offset, spans = 0, p, []
        for s, n in enumerate(lengths, start=1):
            ids[r, offset : offset + n] = s
            spans.append((offset, n))
            offset += n
        segments.append(spans)
    return PrefixLayout(length, [p for p, _ in rows], segments), ids


def _dense_mask(ids: torch.Tensor) -> torch.Tensor:
    """The dense mask the learner builds for the same rows (and the fallback kernels take)."""
    return shared_prefix_mask(ids)


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shape = lambda heads: (2, heads, 16, DIM)
    return [torch.randn(shape(h), generator=gen, dtype=torch.float64).requires_grad_() for h in (HEADS, KV_HEADS, KV_HEADS)]


def _dense(q, k, v, mask):
    groups = HEADS // KV_HEADS
    out = F.scaled_dot_product_attention(q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1), attn_mask=mask, scale=0.3)
    return out.transpose(1, 2)


@pytest.mark.parametrize("kernel", ["matmul", "sdpa"])
def test_equals_dense_masked_sdpa_in_values_and_gradients(kernel, monkeypatch):
    """Both block kernels: matmuls + softmax (CPUs, small blocks) and sdpa (GPUs, large blocks)."""
    if kernel == "sdpa":
        monkeypatch.setattr(prefix_attention_module, "MATMUL_MAX_SCORES", 0)
    layout, ids = _layout()
    real = (ids >= 0)[:, :, None, None]  # padding positions: no real token reads them
    q, k, v = _inputs()
    out, weights = prefix_attention(TEXT, q, k, v, _dense_mask(ids), scaling=0.3, **{LAYOUT_KEY: layout})
    assert weights is None and out.shape == (2, 16, HEADS, DIM)
    reference = _dense(q, k, v, _dense_mask(ids))
    torch.testing.assert_close(out * real, reference * real, rtol=0, atol=1e-12)
    assert (out[~real.expand_as(out)] == 0).all()
    grad = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1)) * real
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(reference, (q, k, v), grad)
    for name, a, b in zip("qkv", got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=name)


def test_a_completion_ignores_the_other_completions():
    layout, ids = _layout()
    q, k, v = _inputs()
    out, _ = prefix_attention(TEXT, q, k, v, None, scaling=0.3, **{LAYOUT_KEY: layout})
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[0, :, 3:8] += 5.0  # row 0's first completion
    v2[0, :, 3:8] -= 5.0
    moved, _ = prefix_attention(TEXT, q, k2, v2, None, scaling=0.3, **{LAYOUT_KEY: layout})
    assert not torch.allclose(moved[0, 3:8], out[0, 3:8])
    torch.testing.assert_close(moved[0, :3], out[0, :3])  # the prompt and the other completions: unchanged
    torch.testing.assert_close(moved[0, 8:14], out[0, 8:14])
    torch.testing.assert_close(moved[1], out[1])


@pytest.mark.parametrize("module, with_layout", [(TEXT, False), (VISION, True)])
def test_without_a_layout_or_in_a_non_causal_module_it_is_plain_sdpa(module, with_layout):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout, ids = _layout()
    q, k, v = _inputs()
    mask = _dense_mask(ids)
    extra = {LAYOUT_KEY: layout} if with_layout else {}
    out, _ = prefix_attention(module, q, k, v, mask, scaling=0.3, **extra)
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.3)
    torch.testing.assert_close(out, want, rtol=0, atol=0)


def test_a_layout_whose_completions_do_not_follow_the_prompt_back_to_back_is_refused():
    PrefixLayout(8, [3], [[(3, 2), (5, 3)]])  # fills the row exactly
    with pytest.raises(ValueError, match="row 0: completions must follow the prompt"):
        PrefixLayout(8, [3], [[(4, 2)]])  # a gap after the prompt
    with pytest.raises(ValueError, match="row 1"):
        PrefixLayout(8, [3, 2], [[(3, 2)], [(2, 3), (6, 1)]])  # a gap between completions
    with pytest.raises(ValueError, match="within 8"):
        PrefixLayout(8, [3], [[(3, 6)]])  # past the row
