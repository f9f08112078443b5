"""The gloo transport of `rollout.weight_sync=gloo`, both ends' shared pieces and the engine's end.

vLLM 0.32 lets a trainer stream weights into running engines: the engine is started with a
`weight_transfer_config`, then `init_weight_transfer_engine` (once, joins a process group with
the trainer), and per update `start_weight_update`, `update_weights` (receives the tensors while
the trainer broadcasts them), `finish_weight_update` (vLLM's layerwise reload re-runs each
layer's post-load processing). `nccl` and `ipc` are vLLM's own backends for GPUs; `rft_gloo`
(`GlooWeightTransferEngine` below) is the same protocol over torch's gloo broadcast (TCP). It
runs the GPU code path on CPU, so tests cover it here, and it works across nodes, where the
folder sync's `/dev/shm` folder cannot be shared. Tensors travel packed: runs of one dtype up to
`bucket_bytes` in one broadcast (`weight_buckets`, computed alike on both ends from the update's
metadata), not one broadcast per tensor.

The engine is registered in vLLM's factory when this module is imported; `rft.weights.vllm_worker`
(the worker extension every rft engine loads) imports it, so each vLLM worker process has it.
The trainer's end is `rft.weights.stream`.
"""

from __future__ import annotations

import datetime
import math
import socket
from dataclasses import dataclass
from typing import Any

import torch
from vllm.distributed.weight_transfer.base import WeightTransferEngine, WeightTransferInitInfo, WeightTransferUpdateInfo
from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory

from rft.weights.modes import GLOO_BACKEND

BUCKET_BYTES = 128 << 20


def weight_buckets(dtypes: list[torch.dtype], shapes: list[list[int]], bucket_bytes: int) -> list[list[int]]:
    """Tensor indices in broadcast order, grouped into runs of one dtype of at most
    `bucket_bytes` each (a larger tensor travels alone). Sender and receivers both call this on
    the same metadata, so they cut the stream at the same places."""
    buckets: list[list[int]] = []
    size = 0
    for index, (dtype, shape) in enumerate(zip(dtypes, shapes)):
        nbytes = math.prod(shape) * dtype.itemsize
        if not buckets or dtypes[buckets[-1][-1]] != dtype or size + nbytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(index)
        size += nbytes
    return buckets


def unpack_bucket(flat: torch.Tensor, shapes: list[list[int]]) -> list[torch.Tensor]:
    """The tensors one packed broadcast carried, as views of `flat`."""
    pieces = flat.split([math.prod(shape) for shape in shapes])
    return [piece.view(shape) for piece, shape in zip(pieces, shapes)]


def open_gloo_group(master_address: str, master_port: int, rank: int, world_size: int, timeout_s: float):
    """A gloo process group outside `torch.distributed`'s default group (the learner ranks and
    vLLM each have their own); rank 0 (the trainer) hosts the rendezvous store, listening on
    `master_address` only (torch's own store would listen on every interface)."""
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    listen_fd = listening_socket(master_address, master_port) if rank == 0 else None
    store = dist.TCPStore(master_address, master_port, world_size, rank == 0, timeout=timeout, master_listen_fd=listen_fd)
    return dist.ProcessGroupGloo(dist.PrefixStore("rft-weights", store), rank, world_size, timeout)


def listening_socket(host: str, port: int) -> int:
    """The file descriptor of a socket listening on `host:port` (the store takes it over)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock.detach()


@dataclass(kw_only=True)
class GlooInitInfo(WeightTransferInitInfo):
    master_address: str
    master_port: int
    rank_offset: int
    world_size: int
    timeout_s: float = 600.0


@dataclass
class TensorListUpdateInfo(WeightTransferUpdateInfo):
    """What one update sends, in order: the same fields as vLLM's NCCL update info."""

    names: list[str]
    dtype_names: list[str]
    shapes: list[list[int]]
    bucket_bytes: int = BUCKET_BYTES
    adapter_config: dict | None = None  # LoRA: the tensors are this adapter's, not the model's
    adapter_dir: str | None = None  # where the receiving engine writes the adapter (with_adapter_dir)

    @property
    def dtypes(self) -> list[torch.dtype]:
        return [getattr(torch, name) for name in self.dtype_names]

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.dtype_names) == len(self.shapes):
            raise ValueError(f"update info lists differ in length: {len(self.names)} names, {len(self.dtype_names)} dtypes, {len(self.shapes)} shapes")


def worker_rank(parallel_config, rank_offset: int) -> int:
    """This vLLM worker's rank in the transfer group (trainer is rank 0)."""
    within_dp = parallel_config.data_parallel_index * parallel_config.world_size + parallel_config.rank
    return rank_offset + within_dp


class GlooWeightTransferEngine(WeightTransferEngine[GlooInitInfo, TensorListUpdateInfo]):
    """vLLM worker side of `rollout.weight_sync=gloo`: receive each tensor, load it layerwise."""

    init_info_cls = GlooInitInfo
    update_info_cls = TensorListUpdateInfo
    supports_draft_weight_update = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.group = None
        self.reloading = False  # a layerwise reload of the model's own weights is open
        self.received_bytes = 0  # in the current (or last) update
        self.received_adapter = False

    def init_transfer_engine(self, init_info: GlooInitInfo) -> None:
        rank = worker_rank(self.parallel_config, init_info.rank_offset)
        self.group = open_gloo_group(init_info.master_address, init_info.master_port, rank, init_info.world_size, init_info.timeout_s)

    def start_weight_update(self) -> None:
        # The layerwise reload opens with the first model tensor (`_load`): an adapter update
        # leaves the model's weights alone.
        self.received_bytes = 0
        self.received_adapter = False

    def update_weights(self, update_info: dict[str, Any]) -> None:
        # The base class ends with `torch.accelerator.synchronize()`, which fails without one;
        # gloo's `wait()` has already made every tensor whole.
        self.receive_weights(self.parse_update_info(update_info))

    def receive_weights(self, update_info: TensorListUpdateInfo) -> None:
        if self.group is None:
            raise RuntimeError("weight transfer not initialised: call init_weight_transfer_engine first")
        dtypes, shapes = update_info.dtypes, update_info.shapes
        adapter: dict[str, torch.Tensor] = {}
        for bucket in weight_buckets(dtypes, shapes, update_info.bucket_bytes):
            flat = torch.empty(sum(math.prod(shapes[i]) for i in bucket), dtype=dtypes[bucket[0]])
            self.group.broadcast(flat, 0).wait()
            self.received_bytes += flat.numel() * flat.element_size()
            tensors = unpack_bucket(flat, [shapes[i] for i in bucket])
            named = [(update_info.names[i], tensor) for i, tensor in zip(bucket, tensors)]
            if update_info.adapter_config is not None:
                adapter.update((name, tensor.clone()) for name, tensor in named)
            else:
                self._load([(name, tensor.to(self.device)) for name, tensor in named])
        if update_info.adapter_config is not None:
            self._write_adapter(adapter, update_info)

    def _load(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        if not self.reloading:
            from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

            initialize_layerwise_reload(self.model)
            self.reloading = True
        self.model.load_weights(weights)

    def _write_adapter(self, state: dict[str, torch.Tensor], update_info: TensorListUpdateInfo) -> None:
        """The received adapter as an adapter folder where the engine asked for it (first worker
        only: the others received the same tensors)."""
        from rft.models.adapter import write_adapter

        self.received_adapter = True
        if worker_rank(self.parallel_config, 0) == 0:
            write_adapter(state, update_info.adapter_config, update_info.adapter_dir)

    def finish_weight_update(self) -> None:
        if not self.reloading:
            return
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        finalize_layerwise_reload(self.model, self.model_config)
        self.reloading = False

    def shutdown(self) -> None:
        self.group = None


def with_adapter_dir(update_info: dict[str, Any], version: int) -> tuple[dict[str, Any], str | None]:
    """Engine side, before the update: an adapter update (`adapter_config` set) gets the local
    folder the engine's workers write it into, `<sync_root>/rft-adapter-<pid>/v<version>`.
    Returns the update info and that folder (None for the model's own weights)."""
    if update_info.get("adapter_config") is None:
        return update_info, None
    import os

    from rft.weights.folder import sync_root

    folder = str(sync_root() / f"rft-adapter-{os.getpid()}" / f"v{version}")
    return dict(update_info, adapter_dir=folder), folder


def register() -> None:
    if GLOO_BACKEND not in WeightTransferEngineFactory._registry:
        WeightTransferEngineFactory.register_engine(GLOO_BACKEND, GlooWeightTransferEngine)


register()
