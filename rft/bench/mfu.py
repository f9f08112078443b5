"""Model FLOP utilisation of the learner, and the arithmetic of the RL benchmark's derived columns.

Peak: the best of a few timed square matmuls in the learner's compute dtype (bf16 where the CPU
has it natively, as the learner's autocast uses it, else float32) with torch's threads as they
are; a matmul of this size is what the hardware does best, so this is the achievable peak of
the machine, not the data-sheet one. Measured on a busy machine it comes out low, which makes
the MFU come out high: the JSON keeps the load average beside it.

Achieved (the usual 6 N estimate, stated so that it can be checked):

    learner FLOP/s = 6 x N_trainable x learner tokens per second
                   = 6 x N_trainable x (completion tokens trained x PPO epochs) / update seconds

N_trainable counts the weights that get gradients (the vision tower is frozen, `model.freeze_vision`;
tied embeddings once: the LM head's matmul is real work). 6 = 2 (forward) + 4 (backward) FLOPs per
weight per token. Only completion tokens count, as in `learner/tokens_per_s`: prompt and image
tokens also go through the forward and backward, and attention's own FLOPs are left out, so the
estimate is a lower bound of the work done. MFU = achieved / peak.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

FLOPS_PER_PARAM_TOKEN = 6  # forward 2 + backward 4
VISION_PREFIXES = ("visual.", "model.visual.")


def matmul_peak_flops(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the fastest of `repeats` n x n x n matmuls in `dtype_name` (after one warm-up)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def learner_compute_dtype() -> str:
    """The dtype the learner's matmuls run in on this machine (`model.dtype=auto`)."""
    from rft.models.loading import native_bf16

    return "bfloat16" if native_bf16() else "float32"


def trainable_parameters(model_dir: str | Path, freeze_vision: bool = True) -> int:
    """Weights in the checkpoint's safetensors that get gradients (all but the vision tower
    when it is frozen), read from the files' headers without loading the tensors."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                if freeze_vision and name.startswith(VISION_PREFIXES):
                    continue
                total += math.prod(f.get_slice(name).get_shape())
    return total


def learner_flops(trainable: int | None, learner_tokens_per_s: float) -> float:
    """6 x N_trainable x learner tokens per second; NaN when either is unknown."""
    if not trainable or not _finite(learner_tokens_per_s):
        return float("nan")
    return FLOPS_PER_PARAM_TOKEN * trainable * learner_tokens_per_s


def mfu(achieved_flops: float, peak_flops: float) -> float:
    """achieved / peak (a fraction); NaN when either is unknown or the peak is not positive."""
    if not _finite(achieved_flops) or not _finite(peak_flops) or peak_flops <= 0:
        return float("nan")
    return achieved_flops / peak_flops


def orchestration_s(step_s: float, parts: list[float]) -> float:
    """The part of a step that is none of the measured phases: step time minus their sum
    (never below zero; NaN when the step time is unknown). Unknown phases count as zero."""
    if not _finite(step_s):
        return float("nan")
    return max(0.0, step_s - sum(p for p in parts if _finite(p)))


def share(part: float, whole: float) -> float:
    if not _finite(part) or not _finite(whole) or whole <= 0:
        return float("nan")
    return part / whole


def speedup(peer_step_s: float, rft_step_s: float) -> float:
    """How many times faster rft's step is than the peer's (peer / rft); NaN if unknown."""
    if not _finite(peer_step_s) or not _finite(rft_step_s) or rft_step_s <= 0:
        return float("nan")
    return peer_step_s / rft_step_s


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
