"""Per-token estimators of KL(pi || pi_ref) from sampled tokens' log-probabilities.

With d = ref_logp - logp at a token sampled from pi (Schulman's "Approximating KL divergence"):
- `k1` = logp - ref_logp = -d               unbiased, high variance, can be negative
- `k2` = 0.5 * (logp - ref_logp)^2          biased, low variance, >= 0
- `k3` = exp(d) - d - 1                     unbiased, low variance, >= 0 (GRPO's choice)

All take and return tensors of the same shape (typically (N, T)); masking is the caller's job.
k3 clamps d to +-K3_CLAMP before exp: a token the reference finds far likelier than the policy
would otherwise overflow to inf in bf16/fp32 and poison the whole loss with NaN gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

K3_CLAMP = 20.0

KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_KL: dict[str, KLFn] = {}


def register_kl(name: str) -> Callable[[KLFn], KLFn]:
    def wrap(fn: KLFn) -> KLFn:
        if name in _KL:
            raise ValueError(f"KL estimator {name!r} is already registered")
        _KL[name] = fn
        return fn

    return wrap


def kl_names() -> list[str]:
    return sorted(_KL)


def get_kl(name: str) -> KLFn:
    try:
        return _KL[name]
    except KeyError:
        raise KeyError(f"unknown KL estimator {name!r}; known: {kl_names()}") from None


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token KL estimate of the named kind, same shape as `logp`."""
    return get_kl(estimator)(logp, ref_logp)


@register_kl("k1")
def k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


@register_kl("k2")
def k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp).square()


@register_kl("k3")
def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    d = (ref_logp - logp).clamp(-K3_CLAMP, K3_CLAMP)
    return torch.exp(d) - d - 1


def sequence_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-sequence KL (N,): masked sum over tokens. For "KL in the reward" (r - beta * KL),
    where it is computed once at rollout time, without gradient."""
    with torch.no_grad():
        return (kl_penalty(logp, ref_logp, estimator) * mask.to(logp.dtype)).sum(-1)
