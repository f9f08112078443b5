"""LoRA weight sync into a running vLLM engine: two ZeRO-3 learner ranks with adapters of rank 8,
one vLLM actor started with LoRA. After each update and push, the engine scores a fixed
completion like the learner does (both fp32) and unlike before; a push moves the adapter's
bytes only, as the engine counts them, by folder and streamed over gloo alike; the reference
log-probs (adapters off) stay those of the base; the merged checkpoint, loaded into the engine as
a whole model, scores like the adapter did and generates.

One engine serves every check (a vLLM start is most of this test's time)."""

from __future__ import annotations

import pytest
from rft_test_helpers import LOGPROB_GAP_TOL, ONE_UPDATE_MOVES, compose, counting_prompt, max_gap, no_kl_loss

from rft.learner.group import LearnerGroup
from rft.models.adapter import adapter_bytes, merge_adapter
from rft.placement.workers import engine_settings, learner_settings
from rft.rollout.group import RolloutGroup
from rft.types import SamplingSettings, TrainSample
from rft.weights.sync import WeightSyncer

pytestmark = pytest.mark.slow
LORA = [*ONE_UPDATE_MOVES, "rollout.weight_sync=gloo", "learner.lora.rank=8"]


def test_adapter_sync_matches_learner_and_moves_adapter_bytes_only(placement, tiny_model, tiny_image, tmp_path):
    cfg = compose(LORA)
    group = placement([{"CPU": 1}, {"CPU": 1}, {"CPU": 1}])
    learner = LearnerGroup(learner_settings(cfg, tiny_model, sft=False, total_steps=4, need_reference=True), 2, group, [0, 1], cpus=1, gpus=0)
    rollout = RolloutGroup(
        engine_settings(cfg, tiny_model, seed=0, weight_sync="gloo"), 1, group, [2], cpus=1, gpus=0, reward_weights={"format": 1.0}, reward_options={}
    )
    by_folder = WeightSyncer("folder", learner, rollout, tmp_path / "sync")
    streamed = WeightSyncer("gloo", learner, rollout, tmp_path / "unused")
    streamed.open()

    item = counting_prompt(tiny_model, tiny_image)
    completions, _ = rollout.generate([item], SamplingSettings(n=4, temperature=1.0, max_tokens=16, seed=0), with_rewards=False)
    fixed = completions[0].token_ids
    sample = TrainSample(item, fixed)
    base = learner.logprobs([sample, sample])[0]
    scores = [rollout.score(item, fixed)]
    assert max_gap(base, scores[0]) < LOGPROB_GAP_TOL

    samples = [TrainSample(item, c.token_ids, advantage=(1.0 if i % 2 else -1.0)) for i, c in enumerate(completions)]
    for version, sync in ((1, by_folder), (2, streamed)):
        metrics = learner.train_rl(samples, no_kl_loss())
        assert metrics["skipped_update"] == 0.0 and metrics["grad_norm"] > 0
        stats = sync.push(version)
        learner_now = learner.logprobs([sample, sample])[0]
        scores.append(rollout.score(item, fixed))
        gap = max_gap(learner_now, scores[-1])
        print(f"v{version} ({sync.mode.value}): engine-learner max gap {gap:.2e}, moved {max_gap(scores[-1], scores[-2]):.3f}, {stats.bytes:.0f} bytes")
        assert gap < LOGPROB_GAP_TOL
        assert max_gap(scores[-1], scores[-2]) > 1e-3
        assert max_gap(learner.logprobs([sample, sample], which="reference")[0], base) < 1e-5  # adapters off: the base
        adapter = _adapter_tensor_bytes(learner)
        # by folder: the adapter file the engine read (tensors + a small header); gloo: the tensors
        assert stats.bytes == (pytest.approx(adapter, rel=0.05) if sync is by_folder else adapter)
        assert stats.bytes < 0.1 * _model_bytes(tiny_model)
    assert sorted(p.name for p in (tmp_path / "sync").iterdir()) == ["v1"]

    # The merged checkpoint: the learner's adapter folder merged into the base, loaded by the
    # engine as a whole model, scores as the adapter did and generates.
    learner.save(str(tmp_path / "ckpt"))
    assert adapter_bytes(tmp_path / "ckpt" / "adapter") > 0 and not (tmp_path / "ckpt" / "hf").exists()
    merged = merge_adapter(tmp_path / "ckpt" / "adapter", tmp_path / "merged")
    rollout.load_weights(str(merged), 3)
    assert max_gap(rollout.score(item, fixed), scores[-1]) < LOGPROB_GAP_TOL
    out, _ = rollout.generate([item], SamplingSettings(n=2, max_tokens=8, seed=1), with_rewards=False)
    assert len(out) == 2 and all(c.token_ids for c in out)
    by_folder.close()
    rollout.shutdown()
    learner.shutdown()


def _adapter_tensor_bytes(learner: LearnerGroup) -> int:
    import ray

    def count(worker) -> int:
        from rft.learner.lora import adapter_params

        return sum(p.ds_numel * p.element_size() if hasattr(p, "ds_numel") else p.numel() * p.element_size() for p in adapter_params(worker.engine).values())

    return ray.get(learner.workers[0].__ray_call__.remote(count))


def _model_bytes(model_dir: str) -> int:
    from pathlib import Path

    return sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))
