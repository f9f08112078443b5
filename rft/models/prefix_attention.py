"""Attention for shared-prefix rows that computes only what the prefix mask lets through.

The learner packs a prompt's G completions into one row, `[prompt][c1][c2]...[cG][padding]`
(`rft.learner.batch`): each completion sees the prompt and its own earlier tokens, nothing of the
other completions. A dense (L, L) mask gives that exactly, but the kernel then computes every
query against every key and throws most away: a row of L = p + G·T tokens costs L² scores where
p² / 2 + G·T·(p + T) are needed (the ~44 M bench model, p ≈ 60, G = 8, T = 64: 5x fewer), and
a masked kernel cannot skip the masked blocks. This computes the same attention in two parts
per row (on CPUs with two matmuls and a softmax, elsewhere with
`torch.nn.functional.scaled_dot_product_attention`, see `_attend`):

- the prompt against itself, causally;
- the completions as a batch of G short sequences, each query block against
  `[prompt keys][its own keys]` with a small (T, p + T) mask: all of the prompt, its own
  segment causally (padded segments are cut off by the same mask).

The outputs go back to their places in the row; padding positions get zeros (no real token
attends to them, so nothing downstream reads them). Every real query sees exactly the keys of the
dense mask, so the result equals the dense kernel's up to summation order (fp32: ~1e-6).

Use: `use_prefix_attention(model)` switches a loaded model to the `ATTENTION` implementation
(registered with transformers' `AttentionInterface`, and its mask function with
`AttentionMaskInterface`), and the forward gets the rows' `PrefixLayout` as the keyword
`prefix_layout` (transformers passes unknown forward keywords down to the attention function).
Calls without a layout, or whose query length is not the layout's (the vision tower), run
transformers' own sdpa function unchanged, so plain rows and images behave as with `sdpa`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

ATTENTION = "rft_shared_prefix"
LAYOUT_KEY = "prefix_layout"
MATMUL_MAX_SCORES = 1 << 25  # attention scores of one block computed by matmuls on CPUs (128 MB in fp32)


@dataclass
class PrefixLayout:
    """Where the prompt and each completion sit in every row of a packed micro-batch.

    `prompts[r]` is row r's prompt length; `segments[r]` the (start, length) of its completions,
    in order, contiguous right after the prompt; `length` the rows' common (padded) length."""

    length: int
    prompts: list[int]
    segments: list[list[tuple[int, int]]]
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for row, (prompt, spans) in enumerate(zip(self.prompts, self.segments, strict=True)):
            ends = [prompt] + [start + n for start, n in spans]
            if [start for start, _ in spans] != ends[:-1] or ends[-1] > self.length:
                raise ValueError(f"row {row}: completions must follow the prompt ({prompt} tokens) back to back within {self.length}, got {spans}")

    def row_plan(self, row: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(index (S, T), valid (S, T), mask (S, 1, T, p + T)) for row `row`: the row positions of
        each completion's tokens (padding repeats the last), which of them are real, and what each
        completion query may see of [prompt keys][its own keys]. Built once per device."""
        key = (row, str(device))
        if key not in self._cache:
            self._cache[key] = tuple(t.to(device) for t in self._build(row))
        return self._cache[key]

    def _build(self, row: int):
        p, segs = self.prompts[row], self.segments[row]
        width = max(1, max(n for _, n in segs))
        steps = torch.arange(width)
        starts = torch.tensor([s for s, _ in segs]).unsqueeze(1)
        lengths = torch.tensor([n for _, n in segs]).unsqueeze(1)
        valid = steps.unsqueeze(0) < lengths
        index = starts + torch.minimum(steps.unsqueeze(0), lengths - 1)
        own = torch.ones(width, width, dtype=torch.bool).tril().unsqueeze(0) & valid.unsqueeze(1)  # (S, T, T): causal, real keys
        prompt = torch.ones(len(segs), width, p, dtype=torch.bool)
        mask = torch.cat([prompt, own], dim=2).unsqueeze(1)
        return index, valid, mask


def prefix_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    """transformers attention function: query (B, H, L, D), key/value (B, KV, L, D) -> (B, L, H, D)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout: PrefixLayout | None = kwargs.pop(LAYOUT_KEY, None)
    if layout is None or query.shape[2] != layout.length or not getattr(module, "is_causal", True):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = query.shape[1] // key.shape[1]
    rows = [_row_attention(query[r], key[r], value[r], layout, r, groups, dropout, scaling) for r in range(query.shape[0])]
    return torch.stack(rows).transpose(1, 2).contiguous(), None


def _row_attention(q, k, v, layout: PrefixLayout, row: int, groups: int, dropout: float, scaling: float | None) -> torch.Tensor:
    """One row: q (H, L, D), k/v (KV, L, D) -> (H, L, D)."""
    p = layout.prompts[row]
    heads, length, dim = q.shape
    prompt_k, prompt_v = k[None, :, :p], v[None, :, :p]  # (1, KV, p, D)
    parts = [_attend(q[None, :, :p], prompt_k, prompt_v, None, groups, dropout, scaling)[0]]
    if layout.segments[row]:
        index, valid, mask = layout.row_plan(row, q.device)
        count = index.shape[0]
        qs = q[:, index].transpose(0, 1)  # (S, H, T, D)
        ks = torch.cat([prompt_k.expand(count, -1, -1, -1), k[:, index].transpose(0, 1)], dim=2)
        vs = torch.cat([prompt_v.expand(count, -1, -1, -1), v[:, index].transpose(0, 1)], dim=2)
        out = _attend(qs, ks, vs, mask, groups, dropout, scaling)
        parts.append(out.transpose(0, 1)[:, valid])  # (H, completion tokens, D), in row order
    used = sum(part.shape[1] for part in parts)
    if used < length:
        parts.append(q.new_zeros(heads, length - used, dim))
    return torch.cat(parts, dim=1)


def _attend(q, k, v, mask, groups: int, dropout: float, scaling: float | None) -> torch.Tensor:
    """Attention of q (B, H, T, D) over k/v (B, KV, K, D) where `mask` (B, 1, T, K) allows;
    `mask=None`: causal (T = K).

    On CPUs, for blocks as small as these, two matmuls and a softmax in float32 (what transformers'
    eager attention computes) beat the fused kernel: the ~44 M bench model's completion block,
    forward and backward in bf16, 5.6 ms against 10.1 ms for sdpa, whose CPU kernel works through
    the mask tile by tile. Large blocks (and dropout) go to sdpa, which never materialises the scores."""
    from transformers.integrations.sdpa_attention import repeat_kv  # grouped-query heads, as sdpa does

    batch, heads, steps, dim = q.shape
    if q.device.type != "cpu" or dropout > 0 or batch * heads * steps * k.shape[2] > MATMUL_MAX_SCORES:
        causal = mask is None  # sdpa's own causal kernels need no mask tensor
        return F.scaled_dot_product_attention(q, repeat_kv(k, groups), repeat_kv(v, groups), attn_mask=mask, dropout_p=dropout, is_causal=causal, scale=scaling)
    if mask is None:
        mask = torch.ones(steps, steps, dtype=torch.bool, device=q.device).tril()[None, None]
    kv_heads = k.shape[1]
    scale = dim**-0.5 if scaling is None else scaling
    # the heads that share a key head go in one matmul as extra query rows: no repeated keys
    scores = torch.matmul(q.reshape(batch, kv_heads, groups * steps, dim), k.transpose(-1, -2)) * scale
    scores = scores.view(batch, kv_heads, groups, steps, -1).masked_fill(~mask.unsqueeze(2), float("-inf"))
    weights = scores.softmax(dim=-1, dtype=torch.promote_types(q.dtype, torch.float32)).to(q.dtype).view(batch, kv_heads, groups * steps, -1)
    return torch.matmul(weights, v).view(batch, heads, steps, dim)


def register() -> None:
    """Make `ATTENTION` known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, prefix_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_prefix_attention(model) -> None:
    """Switch a loaded sdpa model (all its sub-models) to `ATTENTION`."""
    register()
    model.set_attn_implementation(ATTENTION)
