"""The clipped policy-gradient loss of GRPO, Dr.GRPO and DAPO, with its aggregation modes.

    loss, metrics = policy_loss(logp, old_logp, adv, mask, ref_logp, settings=algo_settings.loss)
    if not is_finite_loss(loss): skip the step

Per token t of completion i (ratio = exp(logp - old_logp)):
    surrogate = min(ratio * A_i, clip(ratio, 1 - eps_low, 1 + eps_high) * A_i)
    objective = surrogate - beta * KL_t + entropy_coef * H_t
and the loss is minus the objective aggregated over tokens and completions:
- `seq_mean_token_mean` (GRPO): mean over each completion's tokens, then mean over completions;
- `token_mean` (DAPO): mean over all tokens of the batch, so long completions weigh more;
- `seq_sum_norm` (Dr.GRPO): sum over each completion's tokens / max_completion_len, then mean.

With one update per batch and old_logp = logp.detach() the ratio is 1 and no clipping happens: the
gradient is the seeds' exp(logp - sg(logp)) * A form (tested). `old_logp=None` means exactly that.

Sampler/learner mismatch: the rollout engine (vLLM, bf16 kernels on GPU) and the learner score the
same tokens slightly differently, so samples are a little off-policy even at ratio 1. Given the
engine's own log-probs of the sampled tokens (`rollout_logp`, both sides untempered), the loss
reports `rollout_logprob_gap`, the mean |old_logp - rollout_logp| (a running check of weight
sync), and with `tis_cap > 0` applies truncated importance sampling: each token's surrogate is
weighted by min(exp(old_logp - rollout_logp), tis_cap), detached (Yao et al. 2025, "Your
efficient RL framework secretly brings you off-policy RL training").

Gradient accumulation: pass `total_tokens` (token_mean) or `total_seqs` (the other two) counted
over the whole optimizer batch; each micro-batch then divides by that global count, and the sum of
the micro-batch losses equals the loss of the whole batch (so no extra division by the number of
micro-batches). Without them, the local counts are used.

Metrics are detached 0-dim tensors (no host sync inside the loss): `loss` and `pg_loss` (the
surrogate part alone) are this call's share, so they add up over micro-batches like the loss;
`kl`, `clip_frac[_high|_low]`, `ratio_mean` and `entropy` are masked token means over this call's
tokens (weight them by `tokens` to combine micro-batches); `ratio_max` is this call's maximum.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rft.algo.config import LossSettings
from rft.algo.kl import kl_penalty

AggregateFn = Callable[..., torch.Tensor]
_AGGREGATIONS: dict[str, AggregateFn] = {}


def register_aggregation(name: str) -> Callable[[AggregateFn], AggregateFn]:
    def wrap(fn: AggregateFn) -> AggregateFn:
        if name in _AGGREGATIONS:
            raise ValueError(f"aggregation {name!r} is already registered")
        _AGGREGATIONS[name] = fn
        return fn

    return wrap


def aggregation_names() -> list[str]:
    return sorted(_AGGREGATIONS)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str, **kwargs) -> torch.Tensor:
    """Reduce per-token values (N, T) under mask (N, T) to a scalar by the named mode."""
    try:
        fn = _AGGREGATIONS[mode]
    except KeyError:
        raise KeyError(f"unknown aggregation {mode!r}; known: {aggregation_names()}") from None
    return fn(values, mask, **kwargs)


@register_aggregation("token_mean")
def token_mean(values: torch.Tensor, mask: torch.Tensor, *, total_tokens: float | None = None, **_) -> torch.Tensor:
    denom = mask.sum() if total_tokens is None else total_tokens
    return (values * mask).sum() / _at_least_one(denom)


@register_aggregation("seq_mean_token_mean")
def seq_mean_token_mean(values: torch.Tensor, mask: torch.Tensor, *, total_seqs: float | None = None, **_) -> torch.Tensor:
    # A completion with no tokens contributes 0 (instead of NaN) but still counts as a sample.
    per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / _at_least_one(per_seq.numel() if total_seqs is None else total_seqs)


@register_aggregation("seq_sum_norm")
def seq_sum_norm(
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    max_completion_len: int | None = None,
    total_seqs: float | None = None,
    **_,
) -> torch.Tensor:
    # Dr.GRPO divides by a constant (the generation budget), not by each completion's length, so
    # that length does not bias the gradient; the padded width stands in when none is given.
    norm = values.shape[-1] if max_completion_len is None else max_completion_len
    per_seq = (values * mask).sum(-1) / norm
    return per_seq.sum() / _at_least_one(per_seq.numel() if total_seqs is None else total_seqs)


def _at_least_one(count):
    """A count used as a denominator: an empty (micro-)batch gives a loss of 0, not NaN."""
    return count.clamp(min=1) if isinstance(count, torch.Tensor) else max(count, 1)


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    *,
    settings: LossSettings,
    entropy: torch.Tensor | None = None,
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    rollout_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate loss with `settings` (beta, KL estimator, clip range, aggregation,
    entropy bonus, TIS cap). logp/old_logp/ref_logp/rollout_logp/mask/entropy: (N, T);
    advantages: (N,) or (N, T).

    Returns (scalar loss, metrics). `ref_logp` is required only when beta > 0; `entropy` (per-token,
    with grad) only when entropy_coef != 0, and is otherwise reported if given; `rollout_logp`
    only when tis_cap > 0, and is otherwise reported if given.
    """
    beta, kl_estimator, entropy_coef, tis_cap = settings.beta, settings.kl_estimator, settings.entropy_coef, settings.tis_cap
    clip_eps_low, clip_eps_high, aggregation = settings.clip_eps_low, settings.clip_eps_high, settings.aggregation
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (the reference model's token log-probs)")
    if tis_cap > 0 and rollout_logp is None:
        raise ValueError("tis_cap > 0 needs rollout_logp (the rollout engine's log-probs of the sampled tokens)")
    if entropy_coef != 0 and entropy is None:
        raise ValueError("entropy_coef != 0 needs the per-token entropy")
    valid = mask.bool()
    logp = _masked(_float32(logp), valid)
    mask = valid.to(logp.dtype)
    old = logp.detach() if old_logp is None else _masked(_float32(old_logp).detach(), valid)
    adv = _float32(advantages).detach()
    adv = adv.unsqueeze(-1) if adv.dim() == 1 else adv
    entropy = None if entropy is None else _masked(_float32(entropy), valid)

    ratio = torch.exp(logp - old)
    clipped_ratio = ratio.clamp(1.0 - clip_eps_low, 1.0 + clip_eps_high)
    surrogate = torch.minimum(ratio * adv, clipped_ratio * adv)
    gap = tis = None
    if rollout_logp is not None:
        behaviour = _masked(_float32(rollout_logp).detach(), valid)
        gap = (old - behaviour).abs()
        if tis_cap > 0:
            tis = torch.exp(old - behaviour).clamp(max=tis_cap)
            surrogate = surrogate * tis
    objective = surrogate
    kl = None
    if ref_logp is not None:
        ref = _masked(_float32(ref_logp).detach(), valid)
        if beta > 0:
            kl = kl_penalty(logp, ref, kl_estimator)
            objective = objective - beta * kl
        else:
            with torch.no_grad():
                kl = kl_penalty(logp.detach(), ref, kl_estimator)
    if entropy_coef != 0:
        objective = objective + entropy_coef * entropy

    agg = dict(max_completion_len=settings.max_completion_len, total_tokens=total_tokens, total_seqs=total_seqs)
    loss = -aggregate(objective, mask, aggregation, **agg)
    metrics = _metrics(loss, kl, ratio, adv, mask, clip_eps_low, clip_eps_high, entropy)
    with torch.no_grad():
        n_tok = mask.sum().clamp(min=1)
        if gap is not None:
            metrics["rollout_logprob_gap"] = (gap * mask).sum() / n_tok
        if tis is not None:
            metrics["tis_weight_mean"] = (tis * mask).sum() / n_tok
    metrics["pg_loss"] = -aggregate(surrogate.detach(), mask, aggregation, **agg)
    return loss, metrics


def _float32(x: torch.Tensor) -> torch.Tensor:
    """Ratios of bf16 log-probs are too coarse (exp of a 1e-2 step); compute the loss in fp32."""
    x = torch.as_tensor(x)
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _masked(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Zero the padding positions first: padded log-probs may be -inf/NaN, and 0 * NaN is NaN in
    both the sum and the backward pass."""
    return torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _metrics(loss, kl, ratio, adv, mask, eps_low, eps_high, entropy) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        n_tok = mask.sum().clamp(min=1)

        def mean(x: torch.Tensor) -> torch.Tensor:
            return (x * mask).sum() / n_tok

        r = ratio.detach()
        high = ((r > 1.0 + eps_high) & (adv > 0)).to(mask.dtype)
        low = ((r < 1.0 - eps_low) & (adv < 0)).to(mask.dtype)
        ratio_max = torch.where(mask > 0, r, torch.zeros_like(r)).max() if r.numel() else r.new_zeros(())
        out = {
            "loss": loss.detach(),
            "clip_frac": mean(high + low),
            "clip_frac_high": mean(high),
            "clip_frac_low": mean(low),
            "ratio_mean": mean(r),
            "ratio_max": ratio_max,
            "tokens": mask.sum(),
        }
        if kl is not None:
            out["kl"] = mean(kl.detach())
        if entropy is not None:
            out["entropy"] = mean(entropy.detach())
        return out


def is_finite_loss(loss: torch.Tensor) -> bool:
    """True if the loss (any shape) holds no NaN or inf. One host sync; call once per step."""
    return bool(torch.isfinite(torch.as_tensor(loss).detach()).all().item())


def nonfinite(**tensors: torch.Tensor | None) -> list[str]:
    """Names of the given tensors that hold NaN or inf, for the warning when a step is skipped."""
    return [name for name, t in tensors.items() if t is not None and not is_finite_loss(t)]
