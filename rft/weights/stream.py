"""Streaming the learner's weights into the rollout engines (`rollout.weight_sync=gloo|nccl|ipc`).

The trainer half of vLLM's weight-transfer API (the engine half is `rft.weights.gloo` for gloo,
vLLM itself for nccl and ipc); it runs on the learner ranks:

- `CheckpointWeightSource`: vLLM's `WeightSource` over the DeepSpeed module, under the names
  vLLM loads (`model.*`, `visual.*`, no tied `lm_head`). Under ZeRO-3 each parameter is gathered
  on its own, on every rank in the same order (the gather is collective), so no rank ever holds
  the whole model at once.
- `AdapterWeightSource` (LoRA): the same over the adapter's weights only, under PEFT's saved
  names, with the adapter's config in the update info; the gloo receiver writes them as an
  adapter folder that the engine then serves (`rft.weights.gloo`). vLLM's own nccl/ipc receivers
  load model weights only, so LoRA streams over gloo (`rft.config.validate` says so).
- `GlooTrainerWeightTransferEngine`: the sender for `rft_gloo`, the same handshake as vLLM's
  `NCCLTrainerWeightTransferEngine` with torch's gloo broadcast, tensors packed into buckets.
- `open_transfer`: rendezvous with the engines through a `VLLMWeightSyncClient`, for any
  backend: vLLM's `nccl` and `ipc` senders or ours. Rank 0 sends; other ranks take part in the ZeRO-3 gathers.

The client the learner drives is `rft.weights.sync.EngineTransferClient` (the rollout actors).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from vllm.distributed.weight_transfer.base import ParamMeta, TrainerInitInfo, TrainerWeightTransferEngine, WeightSource
from vllm.distributed.weight_transfer.factory import WeightTransferTrainerFactory

from rft.weights.gloo import BUCKET_BYTES, open_gloo_group, weight_buckets
from rft.weights.modes import GLOO_BACKEND


def checkpoint_names(module) -> dict[str, str]:
    """In-memory parameter name -> checkpoint name, for every parameter vLLM needs.

    `named_parameters` lists a tied head once (as the embedding), and transformers' own
    conversion maps each name the way `save_pretrained` does.
    """
    from transformers.core_model_loading import revert_weight_conversion

    names: dict[str, str] = {}
    for name, param in module.named_parameters():
        converted = list(revert_weight_conversion(module, {name: param}))
        if len(converted) != 1:
            raise ValueError(f"parameter {name!r} maps to {len(converted)} checkpoint tensors ({converted}); streaming needs one-to-one names")
        names[name] = converted[0]
    return names


class CheckpointWeightSource(WeightSource):
    """The policy's parameters in checkpoint naming; see the module docstring."""

    def __init__(self, module, zero_stage: int):
        self.module = getattr(module, "module", module)
        self.zero3 = zero_stage == 3
        self.names = checkpoint_names(self.module)
        self.params = dict(self.module.named_parameters())

    def metadata(self) -> list[ParamMeta]:
        return [ParamMeta(self.names[name], param.dtype, tuple(getattr(param, "ds_shape", param.shape))) for name, param in self.params.items()]

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, param in self.params.items():
            with self._gathered(param):
                yield self.names[name], param.detach()

    def _gathered(self, param):
        if not self.zero3:
            return nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters([param], modifier_rank=None)


class AdapterWeightSource(CheckpointWeightSource):
    """The LoRA adapter's weights (PEFT's saved names), gathered one by one under ZeRO-3."""

    def __init__(self, params: dict[str, torch.nn.Parameter], config: dict, zero_stage: int):
        self.zero3 = zero_stage == 3
        self.params = dict(params)  # saved name -> parameter (rft.learner.lora.adapter_params)
        self.names = {name: name for name in self.params}
        self.update_extras = {"adapter_config": config}


@dataclass
class GlooTrainerInitInfo(TrainerInitInfo):
    backend: ClassVar[str] = GLOO_BACKEND

    master_address: str
    master_port: int
    world_size: int
    timeout_s: float = 600.0


class GlooTrainerWeightTransferEngine(TrainerWeightTransferEngine[GlooTrainerInitInfo]):
    init_info_cls = GlooTrainerInitInfo

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.group = None

    @classmethod
    def trainer_init(cls, init_info: GlooTrainerInitInfo, *, client, source: WeightSource | None = None):
        engine = cls(client=client, source=source, is_sender=init_info.is_sender)
        if not engine.is_sender:
            return engine
        worker_info = {
            "master_address": init_info.master_address,
            "master_port": init_info.master_port,
            "rank_offset": 1,
            "world_size": init_info.world_size,
            "timeout_s": init_info.timeout_s,
        }
        # The engines block in the rendezvous until the trainer joins: run both at once.
        with ThreadPoolExecutor(max_workers=1) as pool:
            joined = pool.submit(client.init_weight_transfer_engine, worker_info)
            engine.group = open_gloo_group(init_info.master_address, init_info.master_port, 0, init_info.world_size, init_info.timeout_s)
            joined.result()
        return engine

    def send_weights(self) -> None:
        meta = self.source.metadata()
        if not self.is_sender:
            for _ in self.source:  # take part in the ZeRO-3 gathers
                pass
            return
        update_info = {
            "names": [m.name for m in meta],
            "dtype_names": [str(m.dtype).removeprefix("torch.") for m in meta],
            "shapes": [list(m.shape) for m in meta],
            "bucket_bytes": BUCKET_BYTES,
            **getattr(self.source, "update_extras", {}),
        }
        self.client.start_weight_update()
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            received = pool.submit(self.client.update_weights, update_info)
            items = iter(self.source)
            for bucket in weight_buckets([m.dtype for m in meta], update_info["shapes"], BUCKET_BYTES):
                flat = self._pack([meta[i] for i in bucket], items)
                if received.done():
                    received.result()  # an engine failed: raise instead of waiting on the broadcast
                self.group.broadcast(flat, 0).wait()
            if next(items, None) is not None:
                raise ValueError("weight source yielded more tensors than its metadata lists")
            received.result()
        finally:
            pool.shutdown(wait=False)  # after a failure the engines may never return
        self.client.finish_weight_update()

    @staticmethod
    def _pack(metas: list[ParamMeta], items: Iterator[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """The next `len(metas)` tensors of `items`, flattened into one CPU buffer. Each is copied
        while the source still holds it (under ZeRO-3 it is released when the iterator moves on)."""
        numels = [math.prod(m.shape) for m in metas]
        flat = torch.empty(sum(numels), dtype=metas[0].dtype)
        for expected, piece in zip(metas, flat.split(numels), strict=True):
            name, tensor = next(items, (None, None))
            if name != expected.name or tuple(tensor.shape) != expected.shape:
                raise ValueError(f"weight source changed between metadata and iteration at {expected.name!r}")
            piece.copy_(tensor.reshape(-1))
        return flat

    def shutdown(self) -> None:
        self.group = None


if GLOO_BACKEND not in WeightTransferTrainerFactory._registry:
    WeightTransferTrainerFactory.register_engine(GLOO_BACKEND, GlooTrainerWeightTransferEngine)


def trainer_init_info(backend: str, rank: int, master_address: str, master_port: int, world_size: int) -> TrainerInitInfo:
    """Init info for `rollout.weight_sync` = `nccl` or `ipc` (vLLM's senders) or `gloo` (ours)."""
    if backend == "ipc":  # same GPUs: handles to the learner's tensors, no process group
        from vllm.distributed.weight_transfer.ipc_engine import IPCTrainerInitInfo

        return IPCTrainerInitInfo(rank=rank)
    if backend == "nccl":
        from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

        return NCCLTrainerInitInfo(master_address=master_address, master_port=master_port, world_size=world_size, rank=rank)
    if backend == "gloo":
        return GlooTrainerInitInfo(master_address=master_address, master_port=master_port, world_size=world_size, rank=rank)
    raise ValueError(f"rollout.weight_sync={backend!r} does not stream weights (expected nccl, ipc or gloo)")


def open_transfer(
    backend: str, rank: int, master_address: str, master_port: int, world_size: int, client: Any, source: WeightSource
) -> TrainerWeightTransferEngine:
    """Join the transfer group (collective over learner rank 0 and every engine worker)."""
    info = trainer_init_info(backend, rank, master_address, master_port, world_size)
    return WeightTransferTrainerFactory.trainer_init(info, client=client, source=source)
