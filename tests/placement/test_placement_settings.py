"""LearnerSettings and EngineSettings: built from the config by one constructor each, every value
from the YAML files and the schema (the dataclasses have no defaults to disagree with them)."""

import dataclasses
import os

import pytest
from rft_test_helpers import compose

from rft.config import Attention, DistBackend, DType, Engine, Scheduler
from rft.learner.worker import LearnerSettings
from rft.placement.workers import core_sets, engine_cores, engine_settings, learner_settings, learner_threads
from rft.rollout.worker import EngineSettings


@pytest.mark.parametrize("cls", [LearnerSettings, EngineSettings])
def test_settings_have_no_defaults_of_their_own(cls):
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in dataclasses.fields(cls))


@pytest.mark.parametrize("sft", [True, False])
def test_learner_settings_equal_the_config(sft):
    cfg = compose(["model=qwen2vl_2b", "sft.scheduler=linear", "algo.lr_scheduler=cosine", "learner.backend=gloo"])
    s = learner_settings(cfg, "/m", sft=sft, total_steps=7, need_reference=not sft)
    optim = cfg.sft if sft else cfg.algo
    assert (s.lr, s.weight_decay, s.warmup_steps, s.max_grad_norm) == (optim.lr, optim.weight_decay, optim.warmup_steps, optim.max_grad_norm)
    assert s.lr_scheduler == (Scheduler.linear if sft else Scheduler.cosine) and type(s.lr_scheduler) is Scheduler
    assert s.gradient_checkpointing == cfg.model.gradient_checkpointing
    assert (s.freeze_vision, s.min_pixels, s.max_pixels) == (cfg.model.freeze_vision, cfg.model.min_pixels, cfg.model.max_pixels)
    assert (s.zero_stage, s.micro_batch_tokens, s.seed) == (cfg.learner.zero_stage, cfg.learner.micro_batch_tokens, cfg.trainer.seed)
    assert (type(s.dtype), type(s.attn_implementation), s.backend) == (DType, Attention, DistBackend.gloo)
    assert (s.model_path, s.total_steps, s.need_reference) == ("/m", 7, not sft)


def test_engine_settings_equal_the_config():
    cfg = compose(["model=tiny_qwen2vl", "rollout.engine=hf", "rollout.max_model_len=2048", "rollout.kv_cache_gb=2"])
    s = engine_settings(cfg, "/m", seed=3)
    assert s.engine is Engine.hf and type(s.dtype) is DType and s.dtype == cfg.model.dtype
    assert (s.max_model_len, s.kv_cache_gb, s.enforce_eager) == (2048, 2, cfg.rollout.enforce_eager)
    assert (s.gpu_memory_utilization, s.min_pixels, s.max_pixels) == (cfg.rollout.gpu_memory_utilization, cfg.model.min_pixels, cfg.model.max_pixels)
    assert (s.model_path, s.seed, s.enable_sleep_mode, s.weight_transfer_backend) == ("/m", 3, False, None)


def test_synchronous_learners_on_one_node_share_its_cores():
    cores = len(os.sched_getaffinity(0))
    one_rank = learner_threads(compose(["stage=rl", "learner.num_workers=1", "trainer.off_policy_steps=0"]))
    assert one_rank == (cores if cores > 1 else None)
    assert learner_threads(compose(["stage=rl", f"learner.num_workers={cores}"])) is None  # one core each already
    assert learner_threads(compose(["stage=rl", "trainer.off_policy_steps=1"])) is None  # the engine works beside them
    assert learner_threads(compose(["stage=rl", "learner.gpus_per_worker=1"])) is None
    assert learner_threads(compose(["stage=rl", "cluster.address=auto"])) is None  # another node's cores are unknown here


def test_engines_that_never_generate_beside_the_learners_take_all_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3, 4})
    assert engine_cores(compose(["stage=rl"]), learners=True) == [[0, 1, 2, 3, 4]]  # synchronous loop
    assert engine_cores(compose(["stage=rl"]), learners=False) == [[0, 1, 2, 3, 4]]  # evaluation
    assert engine_cores(compose(["stage=rl", "rollout.num_workers=2"]), learners=True) == [[0, 1], [2, 3]]
    assert engine_cores(compose(["stage=rl", "trainer.off_policy_steps=1"]), learners=True) is None  # disjoint_cores decides
    assert engine_cores(compose(["stage=rl", "trainer.off_policy_steps=1"]), learners=False) == [[0, 1, 2, 3, 4]]
    assert engine_cores(compose(["stage=rl", "rollout.gpus_per_worker=1"]), learners=True) is None
    assert engine_cores(compose(["stage=rl", "cluster.address=auto"]), learners=True) is None


def test_a_runs_core_sets_are_disjoint_while_overlapping_and_the_engines_share_otherwise(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert core_sets(compose(["stage=rl"]), learners=True, rollout=True) == (None, [[0, 1, 2, 3]])
    overlapped = compose(["stage=rl", "trainer.off_policy_steps=1"])
    assert core_sets(overlapped, learners=True, rollout=True) == ([[0]], [[1]])
    assert core_sets(overlapped, learners=True, rollout=False) == (None, None)


def test_a_separate_reference_takes_a_learner_like_bundle_last_and_the_rollout_workers_cores(monkeypatch):
    from rft.config import separate_reference
    from rft.placement.workers import _bundles, reference_settings

    cfg = compose(["stage=rl", "learner.separate_reference=true", "learner.num_workers=2"])
    assert separate_reference(cfg, need_reference=True) and not separate_reference(cfg, need_reference=False)
    assert not separate_reference(compose(["stage=rl", "learner.separate_reference=true", "learner.lora.rank=8"]), need_reference=True)
    bundles, learners, rollouts = _bundles(cfg, learners=True, rollout=True, reference=True)
    assert bundles == [{"CPU": 1.0}] * 4 and (learners, rollouts) == ([0, 1], [2])
    settings = reference_settings(cfg, "/m")
    assert (settings.zero_stage, settings.lora, settings.need_reference, settings.gradient_checkpointing) == (0, None, True, False)
    assert (settings.dtype, settings.micro_batch_tokens, settings.shared_prefix) == (cfg.model.dtype, cfg.learner.micro_batch_tokens, cfg.learner.shared_prefix)
