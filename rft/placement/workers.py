"""Starting the actors a stage needs: one placement group, learner ranks and rollout workers.

`cluster.colocate=false` gives rollout workers bundles of their own; `true` puts them on the
learners' bundles (on GPU, vLLM then sleeps during updates and wakes for generation).

With `trainer.off_policy_steps=1` the rollout workers generate while the learners update; on
CPUs, not colocated, on a local Ray with enough cores, each learner rank and rollout worker is
pinned to cores of its own (`disjoint_cores`) so the two do not contend for them. With the
synchronous loop (0), or evaluation, on the same kind of node, generation and learning take
turns and the side that waits sleeps (OpenMP's bounded spin, `rft.rollout.group.rollout_actor_env`), so each side takes all the node's cores in its
turn: the learner ranks share them (`learner_threads`; measured on the ~44 M bench model, 2
cores, one rank: update 15.0 -> 10.8 s, step 28.1 -> 21.8 s) and so do the engines
(`engine_cores`; vLLM alone on the same model: 500 -> 770 tok/s).

`learner.separate_reference` adds the reference actor (`rft.learner.reference`): a bundle like a
learner rank's, last in the group, and the first rollout worker's cores where there are core
sets (it scores when that worker's generation is done, so the two take turns on them).

`trainer.deterministic` gives every actor the settings of `rft.placement.determinism`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Any

import ray
from omegaconf import DictConfig
from ray.util.placement_group import remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rft.config import rollout_max_model_len
from rft.host import pin_process, use_threads
from rft.learner.group import LearnerGroup
from rft.learner.lora import LoRASettings
from rft.learner.reference import ReferenceScorer
from rft.learner.worker import LearnerSettings
from rft.placement.cluster import connect, local_cpus_needed, reserve
from rft.placement.determinism import actor_env, is_deterministic, make_actors_deterministic, rollout_env
from rft.rollout.group import RolloutGroup
from rft.rollout.worker import EngineSettings
from rft.weights.modes import WeightSync, vllm_backend

log = logging.getLogger(__name__)


def engine_settings(cfg: DictConfig, model_path: str, seed: int, weight_sync: WeightSync = WeightSync.folder) -> EngineSettings:
    """The one constructor of `EngineSettings`. `weight_sync` (resolved, see
    `rft.weights.modes.resolve_mode`) other than folder readies the engines for weights streamed
    by the learners."""
    return EngineSettings(
        engine=cfg.rollout.engine,
        model_path=model_path,
        min_pixels=cfg.model.min_pixels,
        max_pixels=cfg.model.max_pixels,
        max_model_len=rollout_max_model_len(cfg.rollout.max_model_len, model_path),
        dtype=cfg.model.dtype,
        seed=seed,
        enforce_eager=cfg.rollout.enforce_eager,
        kv_cache_gb=cfg.rollout.kv_cache_gb,
        gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
        enable_sleep_mode=cfg.cluster.colocate and cfg.rollout.gpus_per_worker > 0,
        weight_transfer_backend=vllm_backend(weight_sync),
        max_lora_rank=cfg.learner.lora.rank,
    )


def learner_settings(cfg: DictConfig, model_path: str, *, sft: bool, total_steps: int, need_reference: bool) -> LearnerSettings:
    """The one constructor of `LearnerSettings`: optimizer settings from `sft` or `algo`."""
    optim = cfg.sft if sft else cfg.algo
    return LearnerSettings(
        model_path=model_path,
        min_pixels=cfg.model.min_pixels,
        max_pixels=cfg.model.max_pixels,
        zero_stage=cfg.learner.zero_stage,
        dtype=cfg.model.dtype,
        attn_implementation=cfg.model.attn_implementation,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        freeze_vision=cfg.model.freeze_vision,
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        lr_scheduler=cfg.sft.scheduler if sft else cfg.algo.lr_scheduler,
        warmup_steps=optim.warmup_steps,
        total_steps=total_steps,
        max_grad_norm=optim.max_grad_norm,
        micro_batch_tokens=cfg.learner.micro_batch_tokens,
        shared_prefix=cfg.learner.shared_prefix,
        need_reference=need_reference,
        backend=cfg.learner.backend,
        seed=cfg.trainer.seed,
        lora=lora_settings(cfg),
    )


def reference_settings(cfg: DictConfig, model_path: str) -> LearnerSettings:
    """The separate reference actor's settings: a learner's, for one process without an
    optimizer, ZeRO or adapters (`rft.learner.reference`)."""
    settings = learner_settings(cfg, model_path, sft=False, total_steps=0, need_reference=True)
    return replace(settings, zero_stage=0, gradient_checkpointing=False, lora=None)


def lora_settings(cfg: DictConfig) -> LoRASettings:
    lora = cfg.learner.lora
    return LoRASettings(rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout, target_modules=tuple(lora.target_modules))


def _bundles(cfg: DictConfig, learners: bool, rollout: bool, reference: bool = False) -> tuple[list[dict[str, float]], list[int], list[int]]:
    """The placement group's bundles and which learner ranks and rollout workers take which; a
    separate reference (`reference`) takes the last bundle, one like a learner rank's."""
    learner_bundle = {"CPU": cfg.learner.cpus_per_worker, **({"GPU": cfg.learner.gpus_per_worker} if cfg.learner.gpus_per_worker else {})}
    rollout_bundle = {"CPU": cfg.rollout.cpus_per_worker, **({"GPU": cfg.rollout.gpus_per_worker} if cfg.rollout.gpus_per_worker else {})}
    bundles: list[dict[str, float]] = []
    learner_idx: list[int] = []
    rollout_idx: list[int] = []
    if learners:
        learner_idx = list(range(cfg.learner.num_workers))
        bundles += [dict(learner_bundle) for _ in learner_idx]
    if rollout:
        if learners and cfg.cluster.colocate:
            rollout_idx = [i % len(learner_idx) for i in range(cfg.rollout.num_workers)]
            for i in rollout_idx:  # grow the shared bundle so both fit
                for key, value in rollout_bundle.items():
                    bundles[i][key] = bundles[i].get(key, 0.0) + value
        else:
            rollout_idx = list(range(len(bundles), len(bundles) + cfg.rollout.num_workers))
            bundles += [dict(rollout_bundle) for _ in rollout_idx]
    if reference:
        bundles.append(dict(learner_bundle))
    return bundles, learner_idx, rollout_idx


def placement_bundles(cfg: DictConfig, *, learners: bool, rollout: bool, reference: bool = False) -> list[dict[str, float]]:
    """The bundles `start_workers` reserves for these actors: what a run asks of the cluster
    (the sweep launcher sums them to admit points that fit)."""
    return _bundles(cfg, learners, rollout, reference)[0]


def _on_local_cpus(cfg: DictConfig) -> bool:
    """Learners and rollout workers on CPUs of a local Ray whose cores this process can list."""
    on_cpus = not cfg.learner.gpus_per_worker and not cfg.rollout.gpus_per_worker
    return on_cpus and cfg.cluster.address is None and hasattr(os, "sched_getaffinity")


def _overlapping(cfg: DictConfig, learners: bool, rollout: bool) -> bool:
    """Generation runs while the learners update (`trainer.off_policy_steps` > 0, not colocated)."""
    return learners and rollout and cfg.trainer.off_policy_steps > 0 and not cfg.cluster.colocate


def disjoint_cores(cfg: DictConfig, learners: bool, rollout: bool) -> tuple[list[list[int]] | None, list[list[int]] | None]:
    """Cores for each learner rank and each rollout worker, none shared, when generation
    overlaps updates (`trainer.off_policy_steps` > 0) on CPUs of one local node that has enough
    of them (each actor `ceil(cpus_per_worker)`); (None, None) otherwise."""
    if not (_overlapping(cfg, learners, rollout) and _on_local_cpus(cfg)):
        return None, None
    widths = [math.ceil(cfg.learner.cpus_per_worker)] * cfg.learner.num_workers + [math.ceil(cfg.rollout.cpus_per_worker)] * cfg.rollout.num_workers
    cores = sorted(os.sched_getaffinity(0))
    if sum(widths) > len(cores):
        log.info("off-policy rollout: %d cores asked for, %d here; actors are not pinned", sum(widths), len(cores))
        return None, None
    starts = [sum(widths[:i]) for i in range(len(widths))]
    sets = [cores[start : start + width] for start, width in zip(starts, widths)]
    return sets[: cfg.learner.num_workers], sets[cfg.learner.num_workers :]


def learner_threads(cfg: DictConfig) -> int | None:
    """Torch threads per learner rank when the synchronous loop (`trainer.off_policy_steps=0`)
    runs on CPUs of one local node: the rollout engines sleep while the learners compute (their
    idle OpenMP threads sleep after a bounded spin), so the ranks split all the node's cores between them
    instead of one core each. None (keep Ray's CPUs per actor) where that is not more."""
    if cfg.trainer.off_policy_steps > 0 or not _on_local_cpus(cfg):
        return None
    share = len(os.sched_getaffinity(0)) // cfg.learner.num_workers
    return share if share > math.ceil(cfg.learner.cpus_per_worker) else None


def engine_cores(cfg: DictConfig, learners: bool) -> list[list[int]] | None:
    """Each rollout worker's share of the node's cores when its engine never generates beside the
    learners (the synchronous loop, or evaluation) on CPUs of one local node; None otherwise.
    vLLM's own binding would leave one core to its front end, which mostly waits."""
    if _overlapping(cfg, learners, True) or not _on_local_cpus(cfg):
        return None
    cores = sorted(os.sched_getaffinity(0))
    width = len(cores) // cfg.rollout.num_workers
    if width < 1:
        return None
    return [cores[i * width : (i + 1) * width] for i in range(cfg.rollout.num_workers)]


def core_sets(cfg: DictConfig, learners: bool, rollout: bool) -> tuple[list[list[int]] | None, list[list[int]] | None]:
    """(cores per learner rank, cores per rollout worker) of a run: disjoint sets while they
    overlap (`disjoint_cores`), else the engines' share of the node (`engine_cores`); None where
    Ray and the engine choose."""
    learner_cores, rollout_cores = disjoint_cores(cfg, learners, rollout)
    if rollout and rollout_cores is None:
        rollout_cores = engine_cores(cfg, learners)
    return learner_cores, rollout_cores


def _pin_actor(_actor: Any, cores: list[int]) -> None:
    pin_process(cores)


def _size_threads(_actor: Any, count: int) -> None:
    use_threads(count)


def prepare_learners(learners: LearnerGroup, deterministic: bool, cores: list[list[int]] | None, threads: int | None = None) -> None:
    """What started learner ranks get before their first call: determinism settings, core
    pinning (overlapped loop) or their share of the node's threads (synchronous loop)."""
    if deterministic:
        make_actors_deterministic(learners.workers)
    if cores:
        ray.get([actor.__ray_call__.remote(_pin_actor, rank_cores) for actor, rank_cores in zip(learners.workers, cores)])
    elif threads:
        ray.get([actor.__ray_call__.remote(_size_threads, threads) for actor in learners.workers])


def start_reference(settings: LearnerSettings, cfg: DictConfig, group, bundle_index: int, cores: list[int] | None, deterministic: bool) -> ReferenceScorer:
    """The separate reference actor (`rft.learner.reference`) in its bundle, on `cores` (the
    first rollout worker's: it scores when generation is done) where there are core sets."""
    gpus = cfg.learner.gpus_per_worker
    scorer = ReferenceScorer(
        settings,
        dict(
            num_cpus=cfg.learner.cpus_per_worker,
            num_gpus=gpus,
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=bundle_index),
            runtime_env={"env_vars": actor_env(deterministic, on_gpu=bool(gpus))},
        ),
    )
    if deterministic:
        make_actors_deterministic([scorer.actor])
    if cores:
        scorer.run(_pin_actor, cores)
    return scorer


@dataclass
class Workers:
    learners: LearnerGroup | None
    rollout: RolloutGroup | None
    placement_group: Any
    owns_ray: bool
    learner_cores: list[list[int]] | None = None
    deterministic: bool = False
    learner_threads: int | None = None
    reference: ReferenceScorer | None = None  # learner.separate_reference

    def restart_learners(self) -> None:
        """A fresh learner group in the same bundles (after a rank died), set up like the first."""
        self.learners.restart()
        prepare_learners(self.learners, self.deterministic, self.learner_cores, self.learner_threads)

    def shutdown(self) -> None:
        for group in (self.rollout, self.reference, self.learners):
            if group is not None:
                group.shutdown()
        remove_placement_group(self.placement_group)
        if self.owns_ray:
            ray.shutdown()


def start_workers(
    cfg: DictConfig,
    *,
    learner: LearnerSettings | None,
    engine: EngineSettings | None,
    reference: LearnerSettings | None = None,
) -> Workers:
    """The actors of a stage; `reference` (settings from `reference_settings`) starts the
    separate reference actor."""
    bundles, learner_idx, rollout_idx = _bundles(cfg, learner is not None, engine is not None, reference is not None)
    learner_cores, rollout_cores = core_sets(cfg, learner is not None, engine is not None)
    deterministic = is_deterministic(cfg)
    owns_ray = connect(cfg.cluster.address, num_cpus=cfg.cluster.num_cpus or local_cpus_needed(bundles))
    group = reserve(bundles, cfg.cluster.placement_timeout_s)
    try:
        learners = (
            LearnerGroup(
                learner,
                cfg.learner.num_workers,
                group,
                learner_idx,
                cfg.learner.cpus_per_worker,
                cfg.learner.gpus_per_worker,
                env_vars=actor_env(deterministic, on_gpu=bool(cfg.learner.gpus_per_worker)),
            )
            if learner is not None
            else None
        )
        rollout = (
            RolloutGroup(
                engine,
                cfg.rollout.num_workers,
                group,
                rollout_idx,
                cfg.rollout.cpus_per_worker,
                cfg.rollout.gpus_per_worker,
                reward_weights=dict(cfg.reward.weights),
                reward_options=dict(cfg.reward.options),
                reward_workers=cfg.reward.num_workers,
                max_restarts=cfg.rollout.max_restarts,
                cpu_cores=rollout_cores,
                env_vars=rollout_env(deterministic, on_gpu=bool(cfg.rollout.gpus_per_worker)),
            )
            if engine is not None
            else None
        )
        scorer = None
        if reference is not None:
            scorer = start_reference(reference, cfg, group, len(bundles) - 1, rollout_cores[0] if rollout_cores else None, deterministic)
        threads = learner_threads(cfg) if learners is not None else None
        if learners is not None:
            prepare_learners(learners, deterministic, learner_cores, threads)
            if learner_cores:
                log.info("learner ranks pinned to cores %s, rollout workers to %s", learner_cores, rollout_cores)
    except BaseException:
        remove_placement_group(group)
        if owns_ray:
            ray.shutdown()
        raise
    return Workers(learners, rollout, group, owns_ray, learner_cores, deterministic, threads, scorer)
