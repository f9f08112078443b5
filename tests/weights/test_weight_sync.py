"""Learner ranks (DeepSpeed ZeRO-3 on gloo) and a vLLM rollout actor joined by the weight-sync
component: an update, then a push; the engine must then score a fixed completion like the
learner does, and unlike before.

Both ways of syncing: `folder` (safetensors reloaded by the engine) and `gloo` (streamed through
vLLM's weight-transfer API, the same handshake and layerwise reload that `nccl` uses on GPU).
The vision tower is trained too (`model.freeze_vision=false`; the end-to-end runs keep it frozen),
so its weights must cross as well: the engine's vision weights must change at every sync. Both
sides run in fp32, so "scores like the learner" is tight (`LOGPROB_GAP_TOL`)."""

from __future__ import annotations

import pytest
import ray
from rft_test_helpers import LOGPROB_GAP_TOL, ONE_UPDATE_MOVES, compose, counting_prompt, max_gap, no_kl_loss

from rft.learner.group import LearnerGroup
from rft.placement.determinism import rollout_env
from rft.placement.workers import engine_settings, learner_settings
from rft.rollout.group import RolloutGroup
from rft.types import SamplingSettings, TrainSample
from rft.weights.errors import NonFiniteWeights
from rft.weights.sync import WeightSyncer

pytestmark = pytest.mark.slow
MIN_PIXELS, MAX_PIXELS = 3136, 50176


SETTINGS = [*ONE_UPDATE_MOVES, "model.freeze_vision=false"]


def _poison_a_weight(worker) -> None:
    def poison(self):
        _, param = next(iter(self.engine.module.named_parameters()))
        getattr(param, "ds_tensor", param).data.view(-1)[0] = float("nan")

    ray.get(worker.__ray_call__.remote(poison))


def _engine_vision_norm(rollout: RolloutGroup) -> float:
    """Sum of squares of the vision tower's weights in the vLLM engine of the group's first
    actor. The functions are self-contained (pickled by value: the test module cannot be
    imported in the actor), and the engine runs in the actor's process (a function can be sent
    to its worker)."""

    def read(actor) -> float:
        def on_worker(worker) -> float:
            params = worker.model_runner.model.named_parameters()
            return float(sum(p.detach().double().square().sum() for name, p in params if name.startswith("visual.")))

        return actor.engine.llm.collective_rpc(on_worker)[0]

    return ray.get(rollout.workers[0].__ray_call__.remote(read))


@pytest.mark.parametrize("sync", ["folder", "gloo"])
def test_update_then_sync_matches_learner(sync, placement, tiny_model, tiny_image, tmp_path):
    cfg = compose(SETTINGS + [f"rollout.weight_sync={sync}"])
    assert (cfg.model.min_pixels, cfg.model.max_pixels) == (MIN_PIXELS, MAX_PIXELS)
    group = placement([{"CPU": 1}, {"CPU": 1}, {"CPU": 1}])
    learner = LearnerGroup(learner_settings(cfg, tiny_model, sft=False, total_steps=4, need_reference=False), 2, group, [0, 1], cpus=1, gpus=0)
    rollout = RolloutGroup(
        engine_settings(cfg, tiny_model, seed=0, weight_sync=sync),
        1,
        group,
        [2],
        cpus=1,
        gpus=0,
        reward_weights={"format": 1.0},
        reward_options={},
        env_vars=rollout_env(True, on_gpu=False),  # vLLM inside the actor, as CPU runs have it: its weights can be read
    )
    weight_sync = WeightSyncer(sync, learner, rollout, tmp_path / "sync")
    weight_sync.open()
    assert rollout.weight_sync is weight_sync  # restarted actors are restored through it

    def push(version: int) -> float:
        stats = weight_sync.push(version)
        assert stats.seconds > 0 and weight_sync.version == version == rollout.version
        if sync == "folder":
            assert sorted(p.name for p in (tmp_path / "sync").iterdir()) == [f"v{version}"]
        return stats.bytes

    item = counting_prompt(tiny_model, tiny_image)
    completions, _ = rollout.generate([item], SamplingSettings(n=4, temperature=1.0, max_tokens=16, seed=0), with_rewards=False)
    assert len(completions) == 4 and all(c.token_ids for c in completions)
    # vLLM saw the prompt with exactly the image tokens the learner's processor makes.
    fixed = completions[0].token_ids
    sample = TrainSample(item, fixed)
    learner_before = learner.logprobs([sample, sample])[0]
    engine_before = rollout.score(item, fixed)
    assert max_gap(learner_before, engine_before) < LOGPROB_GAP_TOL
    vision_norms = [_engine_vision_norm(rollout)]

    samples = [TrainSample(item, c.token_ids, advantage=(1.0 if i % 2 else -1.0)) for i, c in enumerate(completions)]
    engine_scores = [engine_before]
    for version in (1, 2):  # a second round checks the transfer group and layerwise reload are reusable
        metrics = learner.train_rl(samples, no_kl_loss())
        assert metrics["skipped_update"] == 0.0 and metrics["grad_norm"] > 0
        assert push(version) > 0
        learner_after = learner.logprobs([sample, sample])[0]
        engine_scores.append(rollout.score(item, fixed))
        assert max_gap(learner_after, engine_scores[-1]) < LOGPROB_GAP_TOL
        assert max_gap(engine_scores[-1], engine_scores[-2]) > 1e-3
        # the trained vision tower reached the engine: its vision weights moved too
        vision_norms.append(_engine_vision_norm(rollout))
        assert vision_norms[-1] != pytest.approx(vision_norms[-2], rel=1e-6)
    completions, _ = rollout.generate([item], SamplingSettings(n=2, max_tokens=8, seed=1), with_rewards=False)
    assert all(c.weight_version == 2 for c in completions)
    # A NaN in one rank's ZeRO-3 partition: every rank refuses to export or send, none hangs,
    # and the controller gets the learner's exception type back.
    _poison_a_weight(learner.workers[1])
    with pytest.raises(NonFiniteWeights, match="NaN or inf"):
        push(3)
    assert weight_sync.version == 2
    weight_sync.close()
    assert not (tmp_path / "sync").exists()
    rollout.shutdown()
    learner.shutdown()
