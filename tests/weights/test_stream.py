"""The pieces of weight streaming that need no engine: the learner's weight source (names, order,
shapes as vLLM expects them) and the rank layout the rollout client hands each engine."""

from __future__ import annotations

import pytest
import torch
from vllm.distributed.weight_transfer.base import ParamMeta

from rft.models.loading import checkpoint_state_dict, load_model
from rft.weights.gloo import unpack_bucket, weight_buckets
from rft.weights.stream import CheckpointWeightSource, GlooTrainerWeightTransferEngine, trainer_init_info
from rft.weights.sync import EngineTransferClient


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
    """The rank arithmetic alone; the real Ray path is run by tests/weights/test_weight_sync.py."""
    client = EngineTransferClient([object()] * 3, ranks_per_engine=2)
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


def test_buckets_hold_runs_of_one_dtype_up_to_the_size():
    f32, bf16 = torch.float32, torch.bfloat16
    dtypes = [f32, f32, f32, bf16, bf16, f32, f32]
    shapes = [[4], [2, 2], [10], [8], [3], [1], [100]]  # bytes: 16, 16, 40, 16, 6, 4, 400
    assert weight_buckets(dtypes, shapes, bucket_bytes=40) == [[0, 1], [2], [3, 4], [5], [6]]
    assert weight_buckets(dtypes, shapes, bucket_bytes=1 << 20) == [[0, 1, 2], [3, 4], [5, 6]]
    assert weight_buckets([], [], bucket_bytes=40) == []


def _pack_and_unpack(items: list[tuple[str, torch.Tensor]], bucket_bytes: int) -> dict[str, torch.Tensor]:
    """What the engines rebuild from the sender's buffers (the broadcast itself left out)."""
    metas = [ParamMeta(name, t.dtype, tuple(t.shape)) for name, t in items]
    stream, rebuilt = iter(items), {}
    for bucket in weight_buckets([m.dtype for m in metas], [list(m.shape) for m in metas], bucket_bytes):
        flat = GlooTrainerWeightTransferEngine._pack([metas[i] for i in bucket], stream)
        tensors = unpack_bucket(flat.clone(), [list(metas[i].shape) for i in bucket])
        rebuilt.update({metas[i].name: t for i, t in zip(bucket, tensors)})
    return rebuilt


def test_packed_buckets_rebuild_every_tensor_exactly(tiny):
    source = dict(iter(CheckpointWeightSource(tiny, zero_stage=2)))
    mixed = [*source.items(), ("extra.half", torch.randn(3, 5).to(torch.bfloat16)), ("extra.scalar", torch.tensor(2.5))]
    for bucket_bytes in (1 << 10, 1 << 30):  # many buckets, one per dtype run
        rebuilt = _pack_and_unpack(mixed, bucket_bytes)
        assert list(rebuilt) == [name for name, _ in mixed]
        assert all(rebuilt[name].dtype == t.dtype and torch.equal(rebuilt[name], t) for name, t in mixed)


def test_a_source_that_disagrees_with_its_metadata_is_refused():
    metas = [ParamMeta("a", torch.float32, (2,)), ParamMeta("b", torch.float32, (3,))]
    with pytest.raises(ValueError, match="changed between metadata and iteration at 'b'"):
        GlooTrainerWeightTransferEngine._pack(metas, iter([("a", torch.zeros(2)), ("c", torch.zeros(3))]))
