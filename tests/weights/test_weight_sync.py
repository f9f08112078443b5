"""Learner ranks (DeepSpeed ZeRO-3 on gloo) and a vLLM rollout actor: an update, then a weight
sync; the engine must then score a fixed completion like the learner does, and unlike before.

Both ways of syncing: `folder` (safetensors reloaded by the engine) and `gloo` (streamed through
vLLM's weight-transfer API, the same handshake and layerwise reload that `nccl` uses on GPU)."""

from __future__ import annotations

import pytest
import ray

from rft.types import TrainSample
from rft.learner.group import LearnerGroup
from rft.learner.worker import LearnerSettings
from rft.rollout.group import RolloutGroup
from rft.types import PromptItem, SamplingSettings
from rft.rollout.worker import EngineSettings

pytestmark = pytest.mark.slow
MIN_PIXELS, MAX_PIXELS = 3136, 50176


def _prompt(tiny_model, image):
    from rft.models.loading import load_processor

    processor = load_processor(tiny_model, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many objects are there?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return PromptItem(uid="r0", group=0, prompt_text=text, images=[image], solution="2")


RL_LOSS = dict(beta=0.0, kl_estimator="k3", clip_eps_low=0.2, clip_eps_high=0.2, aggregation="seq_mean_token_mean")


def _poison_a_weight(worker) -> None:
    def poison(self):
        _, param = next(iter(self.engine.module.named_parameters()))
        getattr(param, "ds_tensor", param).data.view(-1)[0] = float("nan")

    ray.get(worker.__ray_call__.remote(poison))


def _max_gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) > 0
    return max(abs(x - y) for x, y in zip(a, b))


@pytest.mark.parametrize("sync", ["folder", "gloo"])
def test_update_then_sync_matches_learner(sync, placement, tiny_model, tiny_image, tmp_path):
    group = placement([{"CPU": 1}, {"CPU": 1}, {"CPU": 1}])
    learner = LearnerGroup(
        LearnerSettings(model_path=tiny_model, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, zero_stage=3, lr=1e-2, micro_batch_tokens=4096),
        2, group, [0, 1], cpus=1, gpus=0,
    )
    rollout = RolloutGroup(
        EngineSettings(
            engine="vllm", model_path=tiny_model, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, max_model_len=1024,
            weight_transfer_backend="rft_gloo" if sync == "gloo" else None,
        ),
        1, group, [2], cpus=1, gpus=0, reward_weights={"format": 1.0}, reward_options={},
    )
    if sync == "gloo":
        learner.init_weight_transfer("gloo", 1, rollout.transfer_client())

    def push(version: int) -> float:
        if sync == "gloo":
            sent = learner.send_weights()
            rollout.set_weight_version(version)
        else:
            sent = learner.export_weights(str(tmp_path / f"v{version}"))
            rollout.load_weights(str(tmp_path / f"v{version}"), version=version)
        return sent["bytes"]

    item = _prompt(tiny_model, tiny_image)
    completions, _ = rollout.generate([item], SamplingSettings(n=4, temperature=1.0, max_tokens=16, seed=0), with_rewards=False)
    assert len(completions) == 4 and all(c.token_ids for c in completions)
    # vLLM saw the prompt with exactly the image tokens the learner's processor makes.
    fixed = completions[0].token_ids
    sample = TrainSample(item, fixed)
    learner_before = learner.logprobs([sample, sample])[0]
    engine_before = rollout.score(item, fixed)
    assert _max_gap(learner_before, engine_before) < 2e-2

    samples = [TrainSample(item, c.token_ids, advantage=(1.0 if i % 2 else -1.0)) for i, c in enumerate(completions)]
    engine_scores = [engine_before]
    for version in (1, 2):  # a second round checks the transfer group and layerwise reload are reusable
        metrics = learner.train_rl(samples, RL_LOSS)
        assert metrics["skipped_update"] == 0.0 and metrics["grad_norm"] > 0
        assert push(version) > 0
        learner_after = learner.logprobs([sample, sample])[0]
        engine_scores.append(rollout.score(item, fixed))
        assert _max_gap(learner_after, engine_scores[-1]) < 2e-2
        assert _max_gap(engine_scores[-1], engine_scores[-2]) > 1e-3
    completions, _ = rollout.generate([item], SamplingSettings(n=2, max_tokens=8, seed=1), with_rewards=False)
    assert all(c.weight_version == 2 for c in completions)
    # A NaN in one rank's ZeRO-3 partition: every rank refuses to export or send, none hangs.
    _poison_a_weight(learner.workers[1])
    with pytest.raises(ray.exceptions.RayTaskError, match=r"(?s)NonFiniteWeights.*NaN or inf"):
        push(3)
    rollout.shutdown()
    learner.shutdown()
