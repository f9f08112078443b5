"""`RolloutGroup`: `rollout.num_workers` rollout actors used data-parallel, with crash recovery.

A prompt list is split over the workers by contiguous slices. If an actor dies mid-call, Ray
restarts it (`max_restarts`); the group reloads the latest weights into the new process and
redoes that slice, so a step is never lost to one crashed engine.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rft.rollout.types import Completion, PromptItem, SamplingSettings
from rft.rollout.worker import EngineSettings, RolloutWorker

log = logging.getLogger(__name__)
_ACTOR_ERRORS = (RayActorError, ActorDiedError, ActorUnavailableError)


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
        env = {"VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gb)}
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
        self.latest_weights: tuple[str, int] | None = None
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
            if self.latest_weights is None or all(c.weight_version == self.latest_weights[1] for c in completions):
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
        if self.latest_weights is not None:
            ray.get(worker.load_weights.remote(*self.latest_weights))

    def load_weights(self, folder: str, version: int) -> float:
        self.latest_weights = (folder, version)
        return max(ray.get([w.load_weights.remote(folder, version) for w in self.workers]))

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
