"""`RolloutGroup`: `rollout.num_workers` rollout actors used data-parallel, with crash recovery.

A prompt list is split over the workers by contiguous slices. If an actor dies mid-call, Ray
restarts it (`max_restarts`); the group gives the new process the latest weights and redoes that
slice, so a step is never lost to one crashed engine. During training the weights come from the
weight-sync component (`rft.weights.sync.WeightSyncer`, registered with `use_weight_sync`), which
also restores a restarted actor; without one (evaluation) the group reloads the last folder it
loaded (`load_weights`).

`generate_async` starts a generation and returns a `PendingGeneration` at once, so the controller
can update the learners meanwhile (`trainer.off_policy_steps=1`); its `result()` waits, with the
same crash recovery as `generate`. New weights must reach the engines only after `result()`:
the weight version each completion reports is the one it was generated with.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field
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


def rollout_actor_env(settings: EngineSettings, env_vars: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a rollout actor (and the vLLM processes it starts) runs with; `env_vars`
    (e.g. `rft.placement.determinism.rollout_env`) last. vLLM logs each engine start and weight
    reload at INFO; VLLM_LOGGING_LEVEL=INFO brings it back.

    OpenMP's wait policy stays libgomp's default: a thread spins a bounded while after each
    parallel region (`GOMP_SPINCOUNT`, 300k turns), then sleeps. An engine idle between
    generations then uses no core (0.04 s of CPU in 2 s, as with OMP_WAIT_POLICY=PASSIVE; ACTIVE
    spins a core for ever), while generating it does not pay a futex wake-up per region: vLLM
    alone on 2 cores, ~44 M bench model 770 -> 920 tok/s, tiny model 3,900 -> 5,450 tok/s
    without PASSIVE (2026-12-07)."""
    return {
        "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gb),
        "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
        "PYTHONWARNINGS": engine_python_warnings(),
        **(env_vars or {}),
    }


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
        cpu_cores: list[list[int]] | None = None,
        env_vars: dict[str, str] | None = None,
    ):
        actor_cls = ray.remote(RolloutWorker)
        env = rollout_actor_env(settings, env_vars)
        self.workers = [
            actor_cls.options(
                num_cpus=cpus,
                num_gpus=gpus,
                max_restarts=max_restarts,
                scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group, placement_group_bundle_index=bundle_indices[i]),
                runtime_env={"env_vars": env},
            ).remote(settings, reward_weights, reward_options, reward_workers, cpu_cores[i] if cpu_cores else None)
            for i in range(num_workers)
        ]
        self.max_restarts = max_restarts
        self.version: int | None = None  # of the latest weights; None while the initial ones
        self.weight_sync = None  # `rft.weights.sync.WeightSyncer`: restores restarted actors
        self._folder: str | None = None  # the last folder `load_weights` loaded
        ray.get([w.health.remote() for w in self.workers])

    def generate(self, items: list[PromptItem], sampling: SamplingSettings, with_rewards: bool = True) -> tuple[list[Completion], dict[str, float]]:
        return self.generate_async(items, sampling, with_rewards).result()

    def generate_async(self, items: list[PromptItem], sampling: SamplingSettings, with_rewards: bool = True) -> PendingGeneration:
        """Start generating (each worker its slice) and return at once; `result()` waits."""
        slices = _split(items, len(self.workers))
        started_at = time.time()
        refs = [self.workers[i].generate.remote(part, sampling, with_rewards) if part else None for i, part in enumerate(slices)]
        # a copy: the caller may change its settings (the seed) before a crashed slice is redone
        return PendingGeneration(self, slices, refs, copy.copy(sampling), with_rewards, started_at)

    def _generate_slice(self, index: int, items: list[PromptItem], sampling: SamplingSettings, with_rewards: bool, started=None):
        """One worker's share (`started`: the ObjectRef of a call already made); redone if the
        worker turns out to have restarted (it then generates with its initial weights, so the
        weight version of its completions says so)."""
        for _ in range(self.max_restarts + 1):
            completions, timings = self._call_with_recovery(index, "generate", items, sampling, with_rewards, started=started)
            started = None
            if self.version is None or all(c.weight_version == self.version for c in completions):
                return completions, timings
            log.warning("rollout worker %d restarted between calls; reloading weights and redoing its slice", index)
            self._restore(self.workers[index])
        raise RuntimeError(f"rollout worker {index} keeps generating with stale weights")

    def _call_with_recovery(self, index: int, method: str, *args, started=None):
        worker = self.workers[index]
        for attempt in range(self.max_restarts + 1):
            try:
                if started is not None:
                    ref, started = started, None
                    return ray.get(ref)
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

    def received_bytes(self) -> int:
        """Bytes of weights the latest update brought to each engine (the least of them)."""
        return min(ray.get([w.last_received_bytes.remote() for w in self.workers]))

    def nodes(self) -> set[str]:
        """IP addresses of the nodes the rollout actors run on."""
        return {info["node"] for info in ray.get([w.health.remote() for w in self.workers])}

    def engine_threads(self) -> int:
        """The threads each engine's model runs with (the most of any worker)."""
        return max(info["engine_threads"] for info in ray.get([w.health.remote() for w in self.workers]))

    def score(self, item: PromptItem, completion_token_ids: list[int]) -> list[float]:
        return ray.get(self.workers[0].score.remote(item, completion_token_ids))

    def sleep(self) -> None:
        ray.get([w.sleep.remote() for w in self.workers])

    def wake(self) -> None:
        ray.get([w.wake.remote() for w in self.workers])

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)


@dataclass
class PendingGeneration:
    """A generation in flight (`RolloutGroup.generate_async`). `started_at` and, after
    `result()`, `finished_at` are wall-clock times (`time.time()`, the latter the slowest worker's
    end of scoring), so the caller can tell what ran alongside it."""

    group: RolloutGroup
    slices: list[list[PromptItem]]
    refs: list[Any]
    sampling: SamplingSettings
    with_rewards: bool
    started_at: float
    finished_at: float | None = None
    _result: tuple[list[Completion], dict[str, float]] | None = field(default=None, repr=False)

    def done(self) -> bool:
        """True once every worker has answered (never blocks)."""
        pending = [ref for ref in self.refs if ref is not None]
        if self._result is not None or not pending:
            return True
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        return len(ready) == len(pending)

    def result(self) -> tuple[list[Completion], dict[str, float]]:
        """The completions in prompt order and the slowest worker's times; waits, redoing the
        slice of a worker that died. Calling it again returns the same result."""
        if self._result is None:
            parts = [
                self.group._generate_slice(i, part, self.sampling, self.with_rewards, started=ref) if part else ([], {})
                for i, (part, ref) in enumerate(zip(self.slices, self.refs))
            ]
            timings: dict[str, float] = {}
            for _, part_timings in parts:
                for key, value in part_timings.items():
                    timings[key] = max(timings.get(key, 0.0), value)
            self.finished_at = timings.pop("finished_at", time.time())
            self._result = [c for part, _ in parts for c in part], timings
        return self._result


def _split(items: list, parts: int) -> list[list]:
    return [items[i * len(items) // parts : (i + 1) * len(items) // parts] for i in range(parts)]
