"""`RolloutGroup`: `rollout.num_workers` rollout actors used data-parallel, with crash recovery.

A prompt list is split over the workers by contiguous slices. If an actor dies mid-call, Ray
restarts it (`max_restarts`); the group gives the new process the latest weights and redoes that
slice, so a step is never lost to one crashed engine. During training the weights come from the
weight-sync component (`rft.weights.sync.WeightSyncer`, registered with `use_weight_sync`), which
also restores a restarted actor; without one (evaluation) the group reloads the last folder it
loaded (`load_weights`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rft.rollout.worker import EngineSettings, RolloutWorker
from rft.types import Completion, PromptItem, SamplingSettings

log = logging.getLogger(__name__)
_ACTOR_ERRORS = (RayActorError, ActorDiedError, ActorUnavailableError)


# Deprecations that vLLM 0.32 itself triggers in transformers 5.19 and torch 2.13: every engine
# process printed them on every run, and nothing in rft or its configuration can act on them.
LIBRARY_DEPRECATIONS = (
    "ignore:Passing `min_pixels` and `max_pixels`:FutureWarning",
    "ignore:`torch.distributed.reduce_op` is deprecated:FutureWarning",
)


def engine_python_warnings() -> str:
    """PYTHONWARNINGS for rollout actors (and the vLLM processes they start): the caller's
    filters, then `LIBRARY_DEPRECATIONS`."""
    return ",".join(filter(None, [os.environ.get("PYTHONWARNINGS", ""), *LIBRARY_DEPRECATIONS]))


class RolloutGroup:
    def __init__(
        self,
        settings: EngineSettings,
        num_workers: int,
        placement_group,
        bundle_indices: list[int],
        cpus: float,
        gpus: float,
        reward_weights: dict[str, float],
        reward_options: dict[str, Any],
        reward_workers: int = 0,
        max_restarts: int = 2,
    ):
        actor_cls = ray.remote(RolloutWorker)
        # vLLM logs each engine start and weight reload at INFO; VLLM_LOGGING_LEVEL=INFO brings it back.
        env = {
            "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gb),
            "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
            "PYTHONWARNINGS": engine_python_warnings(),
        }
        self.workers = [
            actor_cls.options(
                num_cpus=cpus,
                num_gpus=gpus,
                max_restarts=max_restarts,
                scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group, placement_group_bundle_index=bundle_indices[i]),
                runtime_env={"env_vars": env},
            ).remote(settings, reward_weights, reward_options, reward_workers)
            for i in range(num_workers)
        ]
        self.max_restarts = max_restarts
        self.version: int | None = None  # of the latest weights; None while the initial ones
        self.weight_sync = None  # `rft.weights.sync.WeightSyncer`: restores restarted actors
        self._folder: str | None = None  # the last folder `load_weights` loaded
        ray.get([w.health.remote() for w in self.workers])

    def generate(self, items: list[PromptItem], sampling: SamplingSettings, with_rewards: bool = True) -> tuple[list[Completion], dict[str, float]]:
        slices = _split(items, len(self.workers))
        results = [self._generate_slice(i, part, sampling, with_rewards) if part else ([], {}) for i, part in enumerate(slices)]
        completions = [c for part, _ in results for c in part]
        timings: dict[str, float] = {}
        for _, part_timings in results:
            for key, value in part_timings.items():
                timings[key] = max(timings.get(key, 0.0), value)
        return completions, timings

    def _generate_slice(self, index: int, items: list[PromptItem], sampling: SamplingSettings, with_rewards: bool):
        """One worker's share; redone if the worker turns out to have restarted (it then
        generates with its initial weights, so the weight version of its completions says so)."""
        for _ in range(self.max_restarts + 1):
            completions, timings = self._call_with_recovery(index, "generate", items, sampling, with_rewards)
            if self.version is None or all(c.weight_version == self.version for c in completions):
                return completions, timings
            log.warning("rollout worker %d restarted between calls; reloading weights and redoing its slice", index)
            self._restore(self.workers[index])
        raise RuntimeError(f"rollout worker {index} keeps generating with stale weights")

    def _call_with_recovery(self, index: int, method: str, *args):
        worker = self.workers[index]
        for attempt in range(self.max_restarts + 1):
            try:
                return ray.get(getattr(worker, method).remote(*args))
            except _ACTOR_ERRORS as err:
                if attempt == self.max_restarts:
                    raise RuntimeError(f"rollout worker {index} died {attempt + 1} times; last error: {err}") from err
                log.warning("rollout worker %d died (%s); waiting for its restart and redoing its slice", index, err)
                self._restore(worker)

    def _restore(self, worker, timeout_s: float = 600.0) -> None:
        """Wait for the restarted actor to answer, then give it the latest weights."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ray.get(worker.health.remote())
                break
            except _ACTOR_ERRORS:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        if self.weight_sync is not None:
            self.weight_sync.restore(worker)
        elif self._folder is not None:
            ray.get(worker.load_weights.remote(self._folder, self.version))

    def use_weight_sync(self, weight_sync) -> None:
        """Restore restarted actors through `weight_sync` (its `restore(worker)`) from now on."""
        self.weight_sync = weight_sync

    def load_weights(self, folder: str, version: int) -> float:
        """Every engine reloads the checkpoint folder `folder` in place; seconds of the slowest."""
        self.version, self._folder = version, folder
        return max(ray.get([w.load_weights.remote(folder, version) for w in self.workers]))

    def set_weight_version(self, version: int) -> None:
        """Record that streamed weights of `version` reached every engine."""
        self.version, self._folder = version, None
        ray.get([w.set_weight_version.remote(version) for w in self.workers])

    def nodes(self) -> set[str]:
        """IP addresses of the nodes the rollout actors run on."""
        return {info["node"] for info in ray.get([w.health.remote() for w in self.workers])}

    def score(self, item: PromptItem, completion_token_ids: list[int]) -> list[float]:
        return ray.get(self.workers[0].score.remote(item, completion_token_ids))

    def sleep(self) -> None:
        ray.get([w.sleep.remote() for w in self.workers])

    def wake(self) -> None:
        ray.get([w.wake.remote() for w in self.workers])

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)


def _split(items: list, parts: int) -> list[list]:
    return [items[i * len(items) // parts : (i + 1) * len(items) // parts] for i in range(parts)]
