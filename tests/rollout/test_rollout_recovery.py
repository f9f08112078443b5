"""A rollout actor that dies is restarted, gets the latest weights back, and redoes its work:
from the weight-sync component the group was given (training), or from the folder the group
last loaded (evaluation, no component)."""

from __future__ import annotations

import os
import signal

import pytest
import ray
import torch
from rft_test_helpers import TINY_RL, compose

from rft.models.loading import checkpoint_state_dict, load_model, load_processor, write_checkpoint_folder
from rft.placement.workers import engine_settings
from rft.rollout.group import RolloutGroup
from rft.types import PromptItem, SamplingSettings
from rft.weights.sync import WeightSyncer

pytestmark = pytest.mark.slow
BUDGET = dict(min_pixels=3136, max_pixels=50176)


class FixedLearners:
    """The learner side of a folder push without DeepSpeed: writes one fixed checkpoint."""

    def __init__(self, state, model_path: str):
        self.state, self.model_path = state, model_path
        self.rank0_node = ray.util.get_node_ip_address()

    def export_weights(self, folder: str) -> dict[str, float]:
        write_checkpoint_folder(self.state, folder, self.model_path)
        return {"bytes": float(sum(t.numel() * t.element_size() for t in self.state.values()))}


def _prompt(tiny_model, tiny_image, uid: str = "a") -> PromptItem:
    processor = load_processor(tiny_model, **BUDGET)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}], add_generation_prompt=True, tokenize=False
    )
    return PromptItem(uid=uid, group=0, prompt_text=text, images=[tiny_image], solution="2")


def _tripled_state(tiny_model):
    model = load_model(tiny_model)
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)  # tied: new embeddings and head
    return checkpoint_state_dict(model)


def _max_gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) > 0
    return max(abs(x - y) for x, y in zip(a, b))


def _pid(worker) -> int:
    return ray.get(worker.health.remote())["pid"]


@pytest.mark.parametrize("source", ["weight_sync", "group_folder"])
def test_killed_worker_is_restarted_with_latest_weights(source, placement, tiny_model, tiny_image, tmp_path):
    state = _tripled_state(tiny_model)
    group = placement([{"CPU": 1}])
    settings = engine_settings(compose(TINY_RL + ["rollout.engine=hf"]), tiny_model, seed=0)
    assert (settings.min_pixels, settings.max_pixels) == (BUDGET["min_pixels"], BUDGET["max_pixels"])
    rollout = RolloutGroup(settings, 1, group, [0], cpus=1, gpus=0, reward_weights={"format": 1.0}, reward_options={}, max_restarts=2)
    item = _prompt(tiny_model, tiny_image)
    sampling = SamplingSettings(n=2, max_tokens=8, seed=0)
    initial, _ = rollout.generate([item], sampling)
    fixed = initial[0].token_ids
    initial_scores = rollout.score(item, fixed)

    if source == "weight_sync":
        weight_sync = WeightSyncer("folder", FixedLearners(state, tiny_model), rollout, tmp_path / "sync")
        weight_sync.open()
        assert weight_sync.push(1).bytes > 0
    else:
        rollout.load_weights(str(write_checkpoint_folder(state, tmp_path / "v1", tiny_model)), version=1)
    before, _ = rollout.generate([item], sampling)
    loaded_scores = rollout.score(item, fixed)
    assert _max_gap(loaded_scores, initial_scores) > 1e-3, "the pushed weights score differently from the initial ones"
    pid = _pid(rollout.workers[0])
    os.kill(pid, signal.SIGKILL)

    after, _ = rollout.generate([item], sampling)
    health = ray.get(rollout.workers[0].health.remote())
    assert health["pid"] != pid, "the actor was restarted"
    assert health["weight_version"] == 1 and all(c.weight_version == 1 for c in after)
    # The restarted engine holds the pushed weights, not its initial ones: checked by what it computes.
    assert _max_gap(rollout.score(item, fixed), loaded_scores) < 1e-5
    assert [c.token_ids for c in after] == [c.token_ids for c in before], "same weights, same seed, same samples"
    assert all("format" in c.rewards for c in after)
    rollout.shutdown()


def test_two_workers_one_killed_mid_generate(placement, tiny_model, tiny_image, tmp_path):
    """Two workers share a batch; one is killed while it generates: the call still returns every
    completion, all from the latest weights, and the restarted worker scores like the other."""
    state = _tripled_state(tiny_model)
    group = placement([{"CPU": 1}, {"CPU": 1}])
    settings = engine_settings(compose(TINY_RL + ["rollout.engine=hf"]), tiny_model, seed=0)
    rollout = RolloutGroup(settings, 2, group, [0, 1], cpus=1, gpus=0, reward_weights={"format": 1.0}, reward_options={}, max_restarts=2)
    rollout.load_weights(str(write_checkpoint_folder(state, tmp_path / "v1", tiny_model)), version=1)
    items = [_prompt(tiny_model, tiny_image, uid=f"p{i}") for i in range(4)]
    for index, item in enumerate(items):
        item.group = index
    sampling = SamplingSettings(n=2, max_tokens=48, seed=0)
    victim = _pid(rollout.workers[1])
    pending = rollout.generate_async(items, sampling)  # submitted: the kill lands while the call is in flight
    os.kill(victim, signal.SIGKILL)
    completions, _ = pending.result()
    assert _pid(rollout.workers[1]) != victim, "the killed worker was restarted"
    assert sorted(c.group for c in completions) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(c.weight_version == 1 and c.token_ids for c in completions)
    fixed = completions[0].token_ids
    scores = [ray.get(w.score.remote(items[0], fixed)) for w in rollout.workers]
    assert _max_gap(scores[0], scores[1]) < 1e-5, "both workers hold the same (pushed) weights"
    rollout.shutdown()
