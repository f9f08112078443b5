"""A rollout actor that dies is restarted, gets the latest weights back, and redoes its work."""

from __future__ import annotations

import os
import signal

import pytest
import ray
import torch

from rft.models.loading import checkpoint_state_dict, load_model, load_processor, write_checkpoint_folder
from rft.rollout.group import RolloutGroup
from rft.types import PromptItem, SamplingSettings
from rft.rollout.worker import EngineSettings

pytestmark = pytest.mark.slow
BUDGET = dict(min_pixels=3136, max_pixels=50176)


def test_killed_worker_is_restarted_with_latest_weights(placement, tiny_model, tiny_image, tmp_path):
    model = load_model(tiny_model)
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)  # tied: new embeddings and head
    folder = write_checkpoint_folder(checkpoint_state_dict(model), tmp_path / "v1", tiny_model)

    group = placement([{"CPU": 1}])
    rollout = RolloutGroup(EngineSettings(engine="hf", model_path=tiny_model, **BUDGET), 1, group, [0], cpus=1, gpus=0,
                           reward_weights={"format": 1.0}, reward_options={}, max_restarts=2)
    processor = load_processor(tiny_model, **BUDGET)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}], add_generation_prompt=True, tokenize=False)
    item = PromptItem(uid="a", group=0, prompt_text=text, images=[tiny_image], solution="2")
    sampling = SamplingSettings(n=2, max_tokens=8, seed=0)

    rollout.load_weights(str(folder), version=1)
    before, _ = rollout.generate([item], sampling)
    pid = ray.get(rollout.workers[0].health.remote())["pid"]
    os.kill(pid, signal.SIGKILL)

    after, _ = rollout.generate([item], sampling)
    health = ray.get(rollout.workers[0].health.remote())
    assert health["pid"] != pid, "the actor was restarted"
    assert health["weight_version"] == 1 and all(c.weight_version == 1 for c in after)
    assert [c.token_ids for c in after] == [c.token_ids for c in before], "same weights, same seed, same samples"
    assert all("format" in c.rewards for c in after)
    rollout.shutdown()
