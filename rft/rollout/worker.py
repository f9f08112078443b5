"""`RolloutWorker`: a Ray actor that owns one generation engine and scores what it generates.

Rewards run here, next to generation and off the controller's critical path. The controller
calls `generate`, `load_weights` (or, streamed by a learner, the weight-transfer calls: the
engine end of `rft.weights`), `score`, `sleep`/`wake` and `health`; the actor reports the
weight version each completion was generated with.

Given `cpu_cores`, the actor pins itself (all its threads) to those cores before it builds the
engine, and vLLM's CPU engine process, started from it, binds one OpenMP thread to each of them
(`VLLM_CPU_OMP_THREADS_BIND`; vLLM's own automatic binding would leave one core out for its
front end, which is this actor and mostly waits); see `rft.placement.workers` for who gets
which cores.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rft.host import pin_process
from rft.types import Completion, PromptItem, SamplingSettings

if TYPE_CHECKING:  # the choices' Enums, for the annotations only: no config import in the actor
    from rft.config import DType, Engine


@dataclass
class EngineSettings:
    """What a rollout actor's engine needs, built only by `rft.placement.workers.engine_settings`
    from the config (no defaults here: the YAML files and the schema hold them)."""

    engine: Engine
    model_path: str
    min_pixels: int
    max_pixels: int
    max_model_len: int
    dtype: DType
    seed: int
    enforce_eager: bool
    kv_cache_gb: int
    gpu_memory_utilization: float
    enable_sleep_mode: bool
    weight_transfer_backend: str | None  # vLLM backend for rollout.weight_sync=gloo|nccl|ipc
    max_lora_rank: int  # > 0: weight versions arrive as LoRA adapters of up to this rank


def engine_dtype(dtype: DType) -> str:
    """`auto` resolved as on the learners (`rft.models.loading.resolve_dtype`: bfloat16 where the
    hardware has it natively, else float32); the two must agree for sampling log-probs to match
    the learner's."""
    from rft.models.loading import resolve_dtype

    return str(resolve_dtype(dtype)).removeprefix("torch.")


def build_engine(settings: EngineSettings):
    kwargs = dict(
        min_pixels=settings.min_pixels,
        max_pixels=settings.max_pixels,
        dtype=engine_dtype(settings.dtype),
        seed=settings.seed,
    )
    if settings.engine == "hf":
        from rft.rollout.hf_engine import HFEngine

        return HFEngine(settings.model_path, **kwargs)
    from rft.rollout.vllm_engine import VLLMEngine

    return VLLMEngine(
        settings.model_path,
        max_model_len=settings.max_model_len,
        enforce_eager=settings.enforce_eager,
        kv_cache_gb=settings.kv_cache_gb,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        enable_sleep_mode=settings.enable_sleep_mode,
        weight_transfer_backend=settings.weight_transfer_backend,
        max_lora_rank=settings.max_lora_rank,
        **kwargs,
    )


class RolloutWorker:
    """Plain class; `rft.rollout.group` wraps it with `ray.remote`."""

    def __init__(
        self,
        settings: EngineSettings,
        reward_weights: dict[str, float],
        reward_options: dict[str, Any],
        reward_workers: int = 0,
        cpu_cores: list[int] | None = None,
    ):
        if cpu_cores:
            pin_process(cpu_cores)
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpu_cores)))
        self.settings = settings
        self.engine = build_engine(settings)
        self.engine_threads = self.engine.compute_threads()
        from rft.rewards import WeightedReward

        # One scorer for the actor's lifetime: its process pool (when reward_workers > 0) and
        # math-verify child are started once, not every step.
        self.scorer = WeightedReward(dict(reward_weights), num_workers=reward_workers)
        self.reward_options = dict(reward_options)
        self.weight_version = 0
        self.received_bytes = 0  # of weights in the latest update, as this engine received them

    def health(self) -> dict[str, Any]:
        import ray

        return {
            "pid": os.getpid(),
            "node": ray.util.get_node_ip_address(),
            "engine": self.settings.engine,
            "engine_threads": self.engine_threads,
            "weight_version": self.weight_version,
        }

    def generate(self, items: list[PromptItem], sampling: SamplingSettings, with_rewards: bool = True) -> tuple[list[Completion], dict[str, float]]:
        start = time.perf_counter()
        completions = self.engine.generate(items, sampling)
        generate_s = time.perf_counter() - start
        for completion in completions:
            completion.weight_version = self.weight_version
        start = time.perf_counter()
        if with_rewards:
            self._score(items, completions)
        timings = {"generate_s": generate_s, "reward_s": time.perf_counter() - start, "finished_at": time.time()}
        return completions, timings

    def _score(self, items: list[PromptItem], completions: list[Completion]) -> None:
        by_group = {item.group: item for item in items}
        owners = [by_group[c.group] for c in completions]
        per_sample_kwargs: dict[str, list[Any]] = {}
        for key in {k for item in items for k in item.reward_kwargs}:
            per_sample_kwargs[key] = [item.reward_kwargs.get(key) for item in owners]
        scores = self.scorer.score(
            [c.text for c in completions],
            [item.solution for item in owners],
            **self.reward_options,
            **per_sample_kwargs,
        )
        for index, completion in enumerate(completions):
            completion.rewards = {name: float(values[index]) for name, values in scores.items()}

    def score(self, item: PromptItem, completion_token_ids: list[int]) -> list[float]:
        return self.engine.score(item, completion_token_ids)

    def load_weights(self, folder: str, version: int) -> float:
        start = time.perf_counter()
        self.received_bytes = self.engine.load_weights(folder)
        self.weight_version = version
        return time.perf_counter() - start

    # ---- weights streamed by the learner (rollout.weight_sync=gloo|nccl|ipc) ----
    def init_weight_transfer(self, init_info: dict[str, Any]) -> None:
        self.engine.init_weight_transfer(init_info)

    def start_weight_update(self) -> None:
        self.engine.start_weight_update()

    def update_weights(self, update_info: dict[str, Any]) -> None:
        self.engine.update_weights(update_info)

    def finish_weight_update(self) -> None:
        self.received_bytes = self.engine.finish_weight_update()

    def last_received_bytes(self) -> int:
        return self.received_bytes

    def shutdown_weight_transfer(self) -> None:
        self.engine.shutdown_weight_transfer()

    def set_weight_version(self, version: int) -> None:
        self.weight_version = version

    def sleep(self) -> None:
        self.engine.sleep()

    def wake(self) -> None:
        self.engine.wake()
