"""Same seed, same run: the settings that make a run reproducible, in one place (`trainer.deterministic`).

What varied between two CPU runs with the same seed, and what fixes it (tests/trainer/test_determinism.py):
- vLLM's engine core ran in a process of its own and took requests as they arrived, so which
  requests shared a batch depended on timing; without per-request seeds (see
  `rft.rollout.vllm_engine`) the random numbers a request sampled with, and the batch shapes its
  kernels ran at, came with the batch. Deterministic: the engine runs inside the rollout actor
  (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), where `generate` queues every request before the first
  step, and the actor reseeds the sampler's generator from the step's seed before each call. The
  seed then depends on the step only, so a resumed run samples as the uninterrupted one did.
- MKL picks code paths by memory alignment unless told not to (`MKL_CBWR`), so the same matrix
  product can round differently from run to run; AdamW's first steps amplify any such last-bit
  difference in a near-zero gradient to a weight change of about the learning rate.
- torch's deterministic-algorithm switch (`torch.use_deterministic_algorithms`, warn-only: an
  op without a deterministic kernel warns instead of failing) in every learner and rollout actor;
  on GPUs also `CUBLAS_WORKSPACE_CONFIG`, which cuBLAS needs for it.
Thread counts are already fixed: Ray gives each actor `OMP_NUM_THREADS` = its CPUs (learner ranks
of the synchronous loop on one node take their share of its cores, `rft.placement.workers.
learner_threads`: the same on the same machine), and vLLM binds its threads to the cores it is
allowed. On GPUs the vLLM engine stays multi-process (the
per-request seeds make its sampling independent of batching), but its kernels are not
batch-invariant and NCCL may reduce in another order: see the README's "Determinism".

Cost on CPUs (2 shared cores): the in-process engine starts in ~5 s instead of ~35-40 s (no
engine-core and worker processes to spawn; tests/models/test_model_vllm.py); MKL's strict mode
timed within the noise (+-8 %) of the default on fp32 matrix products of the tiny and bench
models' shapes (forward and backward, one thread). Tiny 4-step GRPO runs, fp32, one learner:
steps 2-4 took 0.54-0.61 s each on and 0.54-0.76 s off, and a whole run ~50 s on against
~100 s off (the engine's start). Evidence of the cause, same runs with it off: the completions of
step 1 already differed (same seed; rewards 0.62 vs 0.60), so every later step did too.
"""

from __future__ import annotations

from typing import Any

import ray
from omegaconf import DictConfig


def is_deterministic(cfg: DictConfig) -> bool:
    """`trainer.deterministic`; null: on for CPU-only runs (it costs little there), off with GPUs."""
    chosen = cfg.trainer.get("deterministic")
    if chosen is not None:
        return bool(chosen)
    return not (cfg.learner.gpus_per_worker or cfg.rollout.gpus_per_worker)


def actor_env(deterministic: bool, on_gpu: bool) -> dict[str, str]:
    """Environment for every learner and rollout actor (set before the process computes anything)."""
    if not deterministic:
        return {}
    return {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"} if on_gpu else {"MKL_CBWR": "AUTO,STRICT"}


def rollout_env(deterministic: bool, on_gpu: bool) -> dict[str, str]:
    """`actor_env` plus, on CPUs, vLLM's engine inside the rollout actor (one batch order)."""
    env = actor_env(deterministic, on_gpu)
    if deterministic and not on_gpu:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return env


def use_deterministic_algorithms(_actor: Any = None) -> None:
    """Run inside an actor (`actor.__ray_call__`): torch's deterministic kernels, warn-only."""
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)


def make_actors_deterministic(actors: list[Any]) -> None:
    """Switch torch's deterministic algorithms on in each of `actors` (Ray actor handles)."""
    ray.get([actor.__ray_call__.remote(use_deterministic_algorithms) for actor in actors])
