"""Token log-probabilities and entropies from logits, without materialising log_softmax.

    logp = token_logprobs(logits, completion_ids, temperature=0.9)   # (N, T, V), (N, T) -> (N, T)
    ent = entropy_from_logits(logits)                                # (N, T, V) -> (N, T)

With a 150k vocabulary, `log_softmax(logits)` in fp32 is the largest tensor of an RL step, and
autograd keeps it (or an fp32 copy of bf16 logits) alive until backward. Both functions here are
custom autograd functions: the forward walks the rows in chunks (fp32 accumulation, one chunk of
temporaries at a time) and saves only the logits themselves plus one value per row; the backward
recomputes the softmax chunk by chunk. Peak extra memory is a few chunks, whatever the batch;
the price is one more exp pass in backward (about 1.2x the time of the naive gather on CPU,
small next to the model's forward and backward).

`temperature` divides the logits first: the sampler drew tokens from softmax(logits / T), so the
importance ratio must use the same distribution. Token ids < 0 (e.g. -100 labels at padding) give 0.
"""

from __future__ import annotations

import torch

# Elements per chunk: 2**26 fp32 values = 256 MiB of temporaries (~440 rows of a 150k vocabulary).
DEFAULT_CHUNK_ELEMS = 1 << 26


def token_logprobs(
    logits: torch.Tensor,
    token_ids: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_elems: int = DEFAULT_CHUNK_ELEMS,
) -> torch.Tensor:
    """log softmax(logits / temperature)[token_ids], shape of token_ids, in fp32 (fp64 for fp64 logits)."""
    if logits.shape[:-1] != token_ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match token ids {tuple(token_ids.shape)}")
    flat = logits.reshape(-1, logits.shape[-1])
    out = _TokenLogprobs.apply(flat, token_ids.reshape(-1), float(temperature), _rows(flat, chunk_elems))
    return out.reshape(token_ids.shape)


def entropy_from_logits(logits: torch.Tensor, *, temperature: float = 1.0, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) per position, shape logits.shape[:-1], in fp32."""
    flat = logits.reshape(-1, logits.shape[-1])
    out = _Entropy.apply(flat, float(temperature), _rows(flat, chunk_elems))
    return out.reshape(logits.shape[:-1])


def _rows(flat: torch.Tensor, chunk_elems: int) -> int:
    return max(1, chunk_elems // max(1, flat.shape[-1]))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _scaled(chunk: torch.Tensor, dtype: torch.dtype, temperature: float) -> torch.Tensor:
    """chunk / temperature in the compute dtype, with one copy at most (never modifies `chunk`)."""
    if temperature == 1.0:
        return chunk.to(dtype)
    return chunk.to(dtype, copy=True).div_(temperature)


def _chunks(n: int, rows: int):
    for start in range(0, n, rows):
        yield slice(start, min(start + rows, n))


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, ids, temperature, rows):
        dtype = _compute_dtype(logits)
        valid = ids >= 0
        safe_ids = torch.where(valid, ids, torch.zeros_like(ids))
        lse = torch.empty(logits.shape[0], dtype=dtype, device=logits.device)
        picked = torch.empty_like(lse)
        for sl in _chunks(logits.shape[0], rows):
            u = _scaled(logits[sl], dtype, temperature)
            lse[sl] = torch.logsumexp(u, dim=-1)
            picked[sl] = u.gather(-1, safe_ids[sl].unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(logits, safe_ids, valid, lse)
        ctx.temperature, ctx.rows = temperature, rows
        return torch.where(valid, picked - lse, torch.zeros_like(lse))

    @staticmethod
    def backward(ctx, grad_out):
        logits, ids, valid, lse = ctx.saved_tensors
        g = torch.where(valid, grad_out, torch.zeros_like(grad_out)).to(lse.dtype) / ctx.temperature
        grad = torch.empty_like(logits)
        for sl in _chunks(logits.shape[0], ctx.rows):
            u = _scaled(logits[sl], lse.dtype, ctx.temperature)
            # d logp_y / d u_j = 1[j = y] - softmax(u)_j
            gc = torch.sub(u, lse[sl].unsqueeze(-1)).exp_().mul_(-g[sl].unsqueeze(-1))  # one temporary
            gc.scatter_add_(-1, ids[sl].unsqueeze(-1), g[sl].unsqueeze(-1))
            grad[sl] = gc
        return grad, None, None, None


class _Entropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, temperature, rows):
        dtype = _compute_dtype(logits)
        lse = torch.empty(logits.shape[0], dtype=dtype, device=logits.device)
        mean_u = torch.empty_like(lse)
        for sl in _chunks(logits.shape[0], rows):
            u = _scaled(logits[sl], dtype, temperature)
            lse[sl] = torch.logsumexp(u, dim=-1)
            mean_u[sl] = (torch.exp(u - lse[sl].unsqueeze(-1)) * u).sum(-1)
        ctx.save_for_backward(logits, lse, mean_u)
        ctx.temperature, ctx.rows = temperature, rows
        return lse - mean_u

    @staticmethod
    def backward(ctx, grad_out):
        logits, lse, mean_u = ctx.saved_tensors
        g = grad_out.to(lse.dtype) / ctx.temperature
        grad = torch.empty_like(logits)
        for sl in _chunks(logits.shape[0], ctx.rows):
            u = _scaled(logits[sl], lse.dtype, ctx.temperature)
            p = torch.sub(u, lse[sl].unsqueeze(-1)).exp_()
            # dH/du_j = -p_j (u_j - E_p[u])
            grad[sl] = p.mul_(torch.sub(u, mean_u[sl].unsqueeze(-1))).mul_(-g[sl].unsqueeze(-1))
        return grad, None, None
