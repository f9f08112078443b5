"""The pieces of weight streaming that need no engine: the learner's weight source (names, order,
shapes as vLLM expects them) and the rank layout the rollout client hands each engine."""

from __future__ import annotations

import pytest
import torch

from rft.learner.transfer import CheckpointWeightSource, trainer_init_info
from rft.models.loading import checkpoint_state_dict, load_model
from rft.rollout.group import RolloutTransferClient


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return load_model(tiny_model)


def test_source_yields_the_checkpoint_names_and_tensors(tiny):
    source = CheckpointWeightSource(tiny, zero_stage=2)
    expected = checkpoint_state_dict(tiny)
    streamed = dict(iter(source))
    assert set(streamed) == set(expected) and "lm_head.weight" not in streamed  # tied: vLLM re-ties it
    assert all(torch.equal(streamed[name], expected[name]) for name in expected)
    meta = source.metadata()
    assert [m.name for m in meta] == list(streamed)  # the order the engines receive in
    assert all(m.shape == tuple(streamed[m.name].shape) and m.dtype == streamed[m.name].dtype for m in meta)


def test_source_follows_the_live_parameters(tiny):
    source = CheckpointWeightSource(tiny, zero_stage=2)
    with torch.no_grad():
        tiny.model.language_model.norm.weight.add_(1.0)
    assert torch.equal(dict(iter(source))["model.norm.weight"], tiny.model.language_model.norm.weight)


def test_each_engine_gets_its_own_ranks():
    """The rank arithmetic alone; the real Ray path is run by tests/learner/test_weight_sync.py."""
    client = RolloutTransferClient([object()] * 3, ranks_per_engine=2)
    info = {"master_address": "h", "master_port": 1, "rank_offset": 1, "world_size": 7}
    assert [client._for_actor(info, index)["rank_offset"] for index in range(3)] == [1, 3, 5]
    assert info["rank_offset"] == 1  # the caller's dict is left as it was
    assert client._for_actor({"packed": False}, 2) == {"packed": False}  # ipc: no process group


def test_trainer_init_info_per_backend():
    gloo = trainer_init_info("gloo", 0, "127.0.0.1", 1234, 3)
    assert (gloo.backend, gloo.world_size, gloo.is_sender) == ("rft_gloo", 3, True)
    nccl = trainer_init_info("nccl", 1, "127.0.0.1", 1234, 3)
    assert (nccl.backend, nccl.is_sender) == ("nccl", False)
    assert trainer_init_info("ipc", 0, "", 0, 0).backend == "ipc"
    with pytest.raises(ValueError, match="folder"):
        trainer_init_info("folder", 0, "", 0, 0)
