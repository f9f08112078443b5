"""`rollout.weight_sync`: the modes, their checks against the rest of the configuration, and
which one `auto` picks.

Imported by `rft.config` (the schema's field type and `validate`), so it stays free of vLLM,
torch and Ray.
"""

from __future__ import annotations

from enum import StrEnum

from omegaconf import DictConfig

from rft.errors import ConfigError

KEY = "rollout.weight_sync"
GLOO_BACKEND = "rft_gloo"  # our gloo backend's name in vLLM's weight-transfer factories


class WeightSync(StrEnum):
    auto = "auto"  # on GPU vLLM engines: ipc when colocated, else nccl; folder otherwise
    folder = "folder"  # safetensors folder in shared memory, reloaded by each engine
    gloo = "gloo"  # streamed through vLLM's weight-transfer API over gloo (CPU, across nodes)
    nccl = "nccl"  # streamed through vLLM's weight-transfer API over NCCL (GPU)
    ipc = "ipc"  # vLLM's weight-transfer API over CUDA IPC (GPU, colocated: shared GPUs)


STREAMED = (WeightSync.gloo, WeightSync.nccl, WeightSync.ipc)


def on_gpus(cfg: DictConfig) -> bool:
    """Learners and rollout workers both hold GPUs (what nccl and ipc need)."""
    return cfg.rollout.gpus_per_worker > 0 and cfg.learner.gpus_per_worker > 0


def _uses_vllm(cfg: DictConfig) -> bool:
    return cfg.rollout.engine == "vllm"  # an `Engine` member or its string: a StrEnum compares equal


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(f"{KEY}: {message}")


def _lora(cfg: DictConfig) -> bool:
    return cfg.learner.lora.rank > 0


def validate_mode(cfg: DictConfig) -> None:
    """ConfigError naming `rollout.weight_sync` when the asked-for mode cannot run here."""
    mode = WeightSync(cfg.rollout.weight_sync)
    _require(
        not (_lora(cfg) and mode in (WeightSync.nccl, WeightSync.ipc)),
        f"{mode.value} loads model weights only; a LoRA adapter (learner.lora.rank > 0) streams over gloo (a few MB) or goes by folder",
    )
    if mode in STREAMED:
        _require(_uses_vllm(cfg), f"{mode.value} streams weights into vLLM engines; rollout.engine=hf takes weight_sync=folder")
    if mode in (WeightSync.nccl, WeightSync.ipc):
        _require(
            on_gpus(cfg),
            f"{mode.value} needs GPUs on learners and rollout workers (learner.gpus_per_worker, rollout.gpus_per_worker); use gloo or folder on CPU",
        )
    if mode == WeightSync.ipc:
        _require(bool(cfg.cluster.colocate), "ipc shares GPU memory, so learners and engines must share GPUs (cluster.colocate=true); use nccl otherwise")


def resolve_mode(cfg: DictConfig) -> WeightSync:
    """`rollout.weight_sync` with `auto` resolved: on GPU vLLM engines ipc when colocated and
    nccl when not (gloo with LoRA: the adapter is small, and vLLM's receivers load model weights
    only); folder otherwise."""
    mode = WeightSync(cfg.rollout.weight_sync)
    if mode != WeightSync.auto:
        return mode
    if not (on_gpus(cfg) and _uses_vllm(cfg)):
        return WeightSync.folder
    if _lora(cfg):
        return WeightSync.gloo
    return WeightSync.ipc if cfg.cluster.colocate else WeightSync.nccl


def vllm_backend(mode: WeightSync | str) -> str | None:
    """The `weight_transfer_config.backend` a vLLM engine is started with for `mode` (None: folder)."""
    return {WeightSync.nccl: "nccl", WeightSync.ipc: "ipc", WeightSync.gloo: GLOO_BACKEND}.get(WeightSync(mode))
