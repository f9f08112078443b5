"""Predicted memory of every actor of a run, and whether the placement fits the hardware.

    shape = model_shape(cfg)                          # from config.json, no weights loaded
    plan = plan_memory(cfg, shape, Hardware.gpus(80 * GiB, per_node=8))
    print(format_plan(plan))                          # per actor: weights, grads, optimizer, ...

`python -m rft.plan` prints this for a configuration; `rft.launch` calls `check_fits` before Ray
starts and stops with one line when a local run cannot fit this machine.

Parameter counts come from the model's `config.json` by formula (`count_parameters`), exact for
Qwen2-VL and Qwen2.5-VL (tests check it against the model built on the meta device), so
planning imports neither torch nor transformers. A hub id without a local copy takes the
published config values of `rft.models.arch`.

What each learner rank holds (P parameters, T trainable: the vision tower is frozen by
default; W ranks; ZeRO stage Z, 0 when W = 1 as `rft.learner.worker` runs it):
- weights: fp32 (bf16 is autocast compute over fp32 weights, `rft.learner.worker`), 4P, or 4P/W
  under ZeRO-3, which also holds the gathered working set (largest tensor + prefetch bucket);
- gradients 4T (4T/W from ZeRO-2) plus DeepSpeed's reduce bucket (ZeRO-2/3);
- Adam moments 8T (8T/W from ZeRO-1; no extra master copy: the weights are already fp32);
- the autocast cache: bf16 copies of the trainable weights, alive for a forward, 2T (with LoRA
  also the frozen language layers' casts that autograd saves, `autocast_copy_bytes`);
- the reference model (RL with algo.beta > 0): fp32, 4P, or 4P/W under ZeRO-3; with
  `learner.separate_reference` it is an actor of its own instead (`reference_memory`: the fp32
  weights, one layer's no-grad activations at a time, the logits, a learner's runtime);
- activations of one micro-batch of `learner.micro_batch_tokens` (at least one sequence):
  per token and layer ~(42 h + 8 I + 8 kv) bytes under bf16 autocast (fp32 residual stream and
  norms, bf16 matmul inputs/outputs, SwiGLU's four I-wide tensors, sdpa attention, no s² term),
  or with gradient checkpointing 4 h per layer plus one layer recomputed;
- logits of the completion positions only (`rft.models.heads.head_at`): bf16 logits and their
  gradient, plus the chunked log-softmax temporaries (`rft.algo.logprobs`, 256 MiB chunks); with
  `learner.shared_prefix` a micro-batch holds more completion positions (one prompt copy per group).
A CPU learner has a second peak, while it loads (`learner_load_memory`): transformers keeps every
safetensors file of the checkpoint mapped until the last tensor is cast, so the file's pages
(P x its dtype's bytes, `checkpoint pages`) are resident beside the fp32 weights (4P on every
rank: the model loads whole before DeepSpeed partitions it). An actor's predicted peak (`total`)
is the larger of its loading and running sums; measured on the 2B LoRA learner: 14.23 GB while
loading (4.8 GB of it file pages), 10.8 GB at most while running (predicted 14.42 and 10.89 GB).
File pages are clean and the kernel drops them under pressure, so what a device must hold
(`committed`, what `Device.used` and `check_fits` add up) leaves them out (`RECLAIMABLE`).
Rollout engines: vLLM on GPU takes `gpu_memory_utilization` x the GPU (weights, a workspace and
the KV cache inside it; the plan checks that the KV cache holds at least one `max_model_len`
sequence); vLLM on CPU holds its weights (bf16 where the CPU has it; the linears are repacked
for oneDNN in place, measured 1.0x), a second, packed copy of each vocabulary table
(`packed_embedding_bytes`), and `VLLM_CPU_KVCACHE_SPACE` (rollout.kv_cache_gb); it reads one
shard at a time, so its load is no peak of its own for shards up to the KV cache's size.
The HF engine holds the weights plus a KV cache for its batch. Colocated on a GPU, vLLM sleeps
while the learners update, so a GPU must hold max(learner peak + vLLM asleep, learner's
persistent state + vLLM awake).

Runtime baselines are measured constants per actor kind (`CPU_BASELINE`): a CPU actor's resident
memory includes the Python, torch, transformers, DeepSpeed / vLLM and Ray runtime, which no
formula predicts. They come from the committed `python -m rft.bench rl` run on the ~0.8 M tiny
model (rft/bench/results/rl_peer_trl.json), where the model's own terms are a few MB; the
~44 M bench model of the same run is the check (tests/placement/test_memory_plan.py). That run
had vLLM's engine core in a process of its own; since `trainer.deterministic` (on by default on
CPU) the engine runs inside the rollout actor, one runtime instead of two (`vllm_in_process`,
calibrated on a fresh tiny run). The 2B real-architecture LoRA run
(rft/bench/results/scale_qwen2vl_2b_lora8.json) checks the terms that only matter at real size.
What the terms leave out, measured on its vLLM engine in a plain process (8.7 GB): ~0.9 GB that
grows with the model without a term yet: ~0.25 GB of it is five tokenizer copies of the 151 k
vocabulary (~0.05 GB each); the rest is neither tensors (the Python-visible ones are the KV
cache, the embedding and small buffers) nor oneDNN's packing (242 handles of the 2B's linear
shapes hold 1.001x their weights). With glibc's mmap threshold fixed at 128 KiB (2026-12-02 to
12-07) its peak was 8.24 GB; with glibc's default, which rft keeps again since it is 2x faster for
the learner (`rft.host`), 8.75 GB (re-measured 2026-12-07, the committed run): the blocks freed
while the engine loads and packs its weights stay in glibc's heap, a term of their own
(`CPU_FREED_AT_LOAD` x the weights, calibrated on that one run; a few MB on the small models). GPU
constants (`GPU_OVERHEAD`: CUDA context, allocator slack, NCCL buffers, vLLM's graphs and
sampler workspace) are assumptions from the libraries' documented behaviour, not measured here.
Sequence lengths are the worst case the configuration allows: `PROMPT_TEXT_TOKENS` of text plus
one image at `model.max_pixels`, plus `rollout.max_tokens`, capped at `rollout.max_model_len`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rft.config import DEFAULT_MAX_MODEL_LEN, separate_reference
from rft.errors import UserError

log = logging.getLogger(__name__)
GiB = 1 << 30
GB = 10**9
PROMPT_TEXT_TOKENS = 128  # system + task text of a prompt (the counting prompts are ~70-100)
ZERO_PREFETCH_ELEMS = 50_000_000  # DeepSpeed stage3_prefetch_bucket_size default
ZERO_REDUCE_BUCKET_ELEMS = 500_000_000  # DeepSpeed reduce_bucket_size default
LOGPROB_CHUNK_BYTES = 2 * 256 * (1 << 20)  # rft.algo.logprobs: two 256 MiB fp32 chunks at a time
# Resident memory of an actor with a (near) empty model, CPU, bytes: measured, see the docstring.
# vllm: the engine core in a process of its own beside the rollout actor (pages both map count
# twice); vllm_in_process: the engine inside the actor (trainer.deterministic, the CPU default
# since 2026-12-02 06:59, measured by the slow test below on the tiny model: 2.47 GB in all).
# hf: not measured, taken as the learner's runtime.
# vLLM on CPU: blocks freed while loading and packing the weights that glibc's heap keeps, as a
# share of the weights (2B: 8.75 GB measured against 7.35 GB of the other terms).
CPU_FREED_AT_LOAD = 0.3
CPU_BASELINE = {"learner": int(1.17 * GB), "vllm": int(3.72 * GB), "vllm_in_process": int(1.39 * GB), "hf": int(1.17 * GB), "driver": int(2.3 * GB)}
# GPU memory outside the terms above, bytes: CUDA context + allocator slack (learner), context +
# sampler/graph workspace + the vision encoder's profiling run (vLLM, inside its utilization).
GPU_OVERHEAD = {"learner": int(1.5 * GiB), "vllm": int(2.0 * GiB), "hf": int(1.0 * GiB), "vllm_asleep": int(0.5 * GiB)}
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")  # language-model linears
RECLAIMABLE = ("checkpoint pages",)  # clean mmap'd file pages: resident, but not memory a plan must hold


class PlanError(UserError, RuntimeError):
    """The configuration cannot fit the hardware it is given (one line: what, and what to change)."""


# ---------------------------------------------------------------------------------------------
# the model's shape, from config.json


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs from a config.json (text part at the top level or in `text_config`)."""

    params: int
    vision_params: int
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vision_hidden: int
    vision_intermediate: int
    vision_depth: int
    patch: int
    merge: int
    largest_tensor: int  # elements: the embedding
    tied: bool = True  # the LM head is the embedding (tie_word_embeddings)
    checkpoint_element: int = 2  # bytes a parameter takes in the checkpoint files (config.json's dtype)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V of every layer for one token (vLLM's and HF's cache)."""
        return 2 * 2 * self.layers * self.kv_width

    @property
    def layer_params(self) -> int:
        """Parameters of one language-model decoder layer."""
        h, i, kv = self.hidden, self.intermediate, self.kv_width
        return (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h

    def lora_params(self, rank: int) -> int:
        """Adapter parameters of rank `rank` on the language model's LORA_TARGETS linears."""
        h, i, kv = self.hidden, self.intermediate, self.kv_width
        per_layer = (h + h) + (h + kv) + (h + kv) + (h + h) + (h + i) + (h + i) + (i + h)
        return rank * per_layer * self.layers


def _text(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, **config.get("text_config", {})}


def count_parameters(config: dict[str, Any]) -> tuple[int, int]:
    """(all parameters, vision tower parameters) of a Qwen2-VL / Qwen2.5-VL config.json; a tied
    embedding counted once."""
    text, vision = _text(config), config["vision_config"]
    h, i, vocab = text["hidden_size"], text["intermediate_size"], text["vocab_size"]
    kv = text["num_key_value_heads"] * (h // text["num_attention_heads"])
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    language = vocab * h + text["num_hidden_layers"] * layer + h + (0 if tied else vocab * h)
    return language + vision_parameters(vision, out_hidden=h), vision_parameters(vision, out_hidden=h)


def vision_parameters(vision: dict[str, Any], out_hidden: int) -> int:
    patch, temporal, merge = vision["patch_size"], vision["temporal_patch_size"], vision["spatial_merge_size"]
    width = vision.get("embed_dim") or vision["hidden_size"]
    embed = vision.get("in_chans", vision.get("in_channels", 3)) * temporal * patch * patch * width
    attention = width * 3 * width + 3 * width + width * width + width
    if "embed_dim" in vision:  # Qwen2-VL: LayerNorms, GELU MLP of mlp_ratio x width
        mlp_width = int(width * vision["mlp_ratio"])
        block = 4 * width + attention + 2 * width * mlp_width + mlp_width + width
        ln_q = 2 * width
    else:  # Qwen2.5-VL: RMSNorms, SwiGLU MLP with biases
        mlp_width = vision["intermediate_size"]
        block = 2 * width + attention + 3 * width * mlp_width + 2 * mlp_width + width
        ln_q = width
    merged = width * merge * merge
    out = vision.get("out_hidden_size", vision.get("hidden_size") if "embed_dim" in vision else out_hidden)
    merger = ln_q + merged * merged + merged + merged * out + out
    return embed + vision["depth"] * block + merger


CHECKPOINT_ELEMENT = {"float32": 4, "bfloat16": 2, "float16": 2}


def checkpoint_element(config: dict[str, Any]) -> int:
    """Bytes per parameter in the safetensors files: config.json's `dtype` (`torch_dtype` before
    transformers 5), bf16 where it is missing (the published Qwen2-VL / Qwen2.5-VL checkpoints)."""
    text = _text(config)
    dtype = config.get("dtype") or config.get("torch_dtype") or text.get("dtype") or text.get("torch_dtype") or "bfloat16"
    return CHECKPOINT_ELEMENT.get(str(dtype).removeprefix("torch."), 2)


def shape_of(config: dict[str, Any]) -> ModelShape:
    text, vision = _text(config), config["vision_config"]
    params, vision_params = count_parameters(config)
    width = vision.get("embed_dim") or vision["hidden_size"]
    return ModelShape(
        params=params,
        vision_params=vision_params,
        vocab=text["vocab_size"],
        hidden=text["hidden_size"],
        layers=text["num_hidden_layers"],
        intermediate=text["intermediate_size"],
        heads=text["num_attention_heads"],
        kv_heads=text["num_key_value_heads"],
        vision_hidden=width,
        vision_intermediate=vision.get("intermediate_size") if "embed_dim" not in vision else int(width * vision["mlp_ratio"]),
        vision_depth=vision["depth"],
        patch=vision["patch_size"],
        merge=vision["spatial_merge_size"],
        largest_tensor=text["vocab_size"] * text["hidden_size"],
        tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        checkpoint_element=checkpoint_element(config),
    )


def model_config(path: str) -> dict[str, Any] | None:
    """The config.json of `model.path` without loading weights or asking the network: a local
    folder, a `tiny:` build (built if missing, as the run would), an `arch:` or known hub id's
    published values, or a hub id in the local Hugging Face cache. None when unknown."""
    from rft.models import arch

    value = str(path).strip()
    if value.startswith(arch.PREFIX):
        name = value.removeprefix(arch.PREFIX)
        return published_config_json(name) if name in arch.PUBLISHED else None
    if value == "tiny" or value.startswith("tiny:"):
        from rft.models.loading import resolve_model_path

        return _read_json(Path(resolve_model_path(value)) / "config.json")
    local = Path(value).expanduser()
    if local.is_dir():
        return _read_json(local / "config.json")
    cached = _hf_cached_config(value)
    if cached is not None:
        return cached
    name = arch.name_of_hub_id(value)
    return published_config_json(name) if name else None


def published_config_json(name: str) -> dict[str, Any]:
    """The config.json fields the plan reads, from `rft.models.arch.PUBLISHED`."""
    from rft.models.arch import spec_of

    spec = spec_of(name)
    # bf16: what the released checkpoints and the arch: builds store
    return {"text_config": dict(spec.text), "vision_config": dict(spec.vision), "tie_word_embeddings": spec.text["tie_word_embeddings"], "dtype": "bfloat16"}


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _hf_cached_config(repo_id: str) -> dict[str, Any] | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # not a valid repo id: not cached
        return None
    return _read_json(Path(found)) if isinstance(found, str) else None


# ---------------------------------------------------------------------------------------------
# the settings that decide memory, and the hardware


@dataclass(frozen=True)
class Setup:
    """The memory-relevant settings of a composed configuration, as plain values."""

    rl: bool  # a stage with rollouts and (beta > 0) a reference model
    learners: int
    zero_stage: int
    learner_gpus: float
    micro_batch_tokens: int
    checkpointing: bool | None  # None: by size (rft.models.loading.wants_checkpointing)
    freeze_vision: bool
    bf16: bool  # bf16 compute (autocast over fp32 weights)
    beta: float
    engine: str
    rollouts: int
    rollout_gpus: float
    gpu_memory_utilization: float
    kv_cache_gb: float
    max_model_len: int
    max_tokens: int
    max_pixels: int
    concurrent_sequences: int  # prompts per step x generations, over the rollout workers
    colocate: bool
    generations: int = 1
    vllm_in_process: bool = False  # CPU: the engine core inside the rollout actor (trainer.deterministic)
    shared_prefix: bool = False  # learner.shared_prefix: a prompt's completions packed behind one prompt
    lora_rank: int = 0
    separate_reference: bool = False  # the reference in an actor of its own (rft.learner.reference)

    @classmethod
    def of(cls, cfg: DictConfig, on_gpu: bool) -> Setup:
        from rft.placement.determinism import is_deterministic

        stage = str(cfg.stage.name)
        dtype = str(cfg.model.dtype)
        return cls(
            rl=stage in ("rl", "zero", "reason_rft"),
            learners=int(cfg.learner.num_workers),
            zero_stage=int(cfg.learner.zero_stage),
            learner_gpus=float(cfg.learner.gpus_per_worker),
            micro_batch_tokens=int(cfg.learner.micro_batch_tokens),
            checkpointing=cfg.model.gradient_checkpointing,
            freeze_vision=bool(cfg.model.freeze_vision),
            bf16=dtype == "bfloat16" or (dtype == "auto" and (on_gpu or cpu_has_bf16())),
            beta=float(cfg.algo.beta),
            engine=str(cfg.rollout.engine),
            rollouts=int(cfg.rollout.num_workers),
            rollout_gpus=float(cfg.rollout.gpus_per_worker),
            gpu_memory_utilization=float(cfg.rollout.gpu_memory_utilization),
            kv_cache_gb=float(cfg.rollout.kv_cache_gb),
            max_model_len=int(cfg.rollout.max_model_len or DEFAULT_MAX_MODEL_LEN),  # null: the engine's default
            max_tokens=int(cfg.rollout.max_tokens),
            max_pixels=int(cfg.model.max_pixels),
            concurrent_sequences=math.ceil(cfg.trainer.prompts_per_step * cfg.algo.num_generations / max(1, cfg.rollout.num_workers)),
            colocate=bool(cfg.cluster.colocate),
            generations=int(cfg.algo.num_generations),
            vllm_in_process=is_deterministic(cfg) and not cfg.rollout.gpus_per_worker,
            shared_prefix=bool(cfg.learner.get("shared_prefix", False)),
            lora_rank=int(cfg.learner.lora.rank),
            separate_reference=separate_reference(cfg, need_reference=float(cfg.algo.beta) > 0),
        )

    @property
    def uses_gpus(self) -> bool:
        return self.learner_gpus > 0 or self.rollout_gpus > 0

    @property
    def effective_zero(self) -> int:
        return 0 if self.learners == 1 else self.zero_stage


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX on this CPU (what `model.dtype: auto` turns into bf16 on a CPU)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_tile" in flags


@dataclass(frozen=True)
class Hardware:
    """GPUs (memory each, per node, nodes) and each node's RAM; None where unknown."""

    gpu_mem: int | None = None
    gpus_per_node: int = 0
    nodes: int = 1
    host_mem: int | None = None

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes if self.gpu_mem else 0

    def describe(self) -> str:
        parts = []
        if self.gpus:
            parts.append(f"{self.gpus} GPU{'s' if self.gpus > 1 else ''} x {self.gpu_mem / GiB:.0f} GiB ({self.nodes} node{'s' if self.nodes > 1 else ''})")
        if self.host_mem:
            parts.append(f"{self.host_mem / GiB:.1f} GiB RAM per node")
        return ", ".join(parts) or "unknown"


def this_machine(want_gpus: bool) -> Hardware:
    """This machine's RAM (os.sysconf), and its GPUs (torch.cuda) when the run asks for GPUs."""
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if not want_gpus:
        return Hardware(host_mem=host)
    import torch

    if not torch.cuda.is_available():
        return Hardware(host_mem=host)
    return Hardware(gpu_mem=torch.cuda.get_device_properties(0).total_memory, gpus_per_node=torch.cuda.device_count(), host_mem=host)


# ---------------------------------------------------------------------------------------------
# per-actor memory


@dataclass
class ActorMemory:
    """One actor's predicted peak: named terms in bytes, where it runs (`GPU n` or `RAM`)."""

    name: str
    kind: str  # learner | reference | vllm | hf | driver
    terms: dict[str, int]
    persistent: int = 0  # what stays between updates (a colocated GPU holds it beside vLLM)
    device: str = "RAM"
    load: dict[str, int] = field(default_factory=dict)  # terms of the model-loading peak, when it has its own

    @property
    def total(self) -> int:
        """Predicted peak resident memory: the larger of the two peaks, loading and running."""
        return max(sum(self.terms.values()), sum(self.load.values()))

    @property
    def committed(self) -> int:
        """The peak the machine must hold: `total` without the clean file pages (RECLAIMABLE)
        that resident memory counts but the kernel drops and reads back under pressure."""
        return max(sum(v for k, v in terms.items() if k not in RECLAIMABLE) for terms in (self.terms, self.load))


def sequence_tokens(shape: ModelShape, setup: Setup) -> int:
    """Longest sequence the configuration allows: prompt text + one image at max_pixels + completion."""
    image = math.ceil(setup.max_pixels / (shape.patch * shape.merge) ** 2)
    return min(setup.max_model_len, PROMPT_TEXT_TOKENS + image + setup.max_tokens)


def trainable_params(shape: ModelShape, setup: Setup) -> int:
    if setup.lora_rank:
        return shape.lora_params(setup.lora_rank)
    return shape.params - (shape.vision_params if setup.freeze_vision else 0)


def checkpointing_on(shape: ModelShape, setup: Setup) -> bool:
    from rft.models.loading import wants_checkpointing

    return wants_checkpointing(setup.checkpointing, shape.params)


def learner_memory(shape: ModelShape, setup: Setup, on_gpu: bool) -> dict[str, int]:
    """Terms of one learner rank's peak (see the module docstring)."""
    p, t, w, z = shape.params, trainable_params(shape, setup), setup.learners, setup.effective_zero
    lora = setup.lora_rank > 0
    weights = 4 * p // w if z == 3 else 4 * p
    if lora:  # adapters beside a frozen base: fp32 adapters, the base held once
        weights += 4 * t
    terms = {"weights": weights}
    if z == 3:
        terms["zero3 gather"] = 4 * (shape.largest_tensor + ZERO_PREFETCH_ELEMS)
    terms["gradients"] = 4 * t // w if z >= 2 else 4 * t
    if z >= 2:
        terms["zero buckets"] = 4 * min(t, ZERO_REDUCE_BUCKET_ELEMS)
    terms["optimizer"] = 8 * t // w if z >= 1 else 8 * t
    if setup.bf16:
        terms["autocast copies"] = autocast_copy_bytes(shape, setup, t)
    if setup.rl and setup.beta > 0 and not lora and not setup.separate_reference:  # LoRA: the reference is the base, adapters off
        terms["reference"] = 4 * p // w if z == 3 else 4 * p
    terms["activations"] = activation_bytes(shape, setup)
    terms["logits"] = logit_bytes(shape, setup)
    terms["runtime"] = GPU_OVERHEAD["learner"] if on_gpu else CPU_BASELINE["learner"]
    return terms


def reference_memory(shape: ModelShape, setup: Setup, on_gpu: bool) -> dict[str, int]:
    """Terms of the separate reference actor's peak: fp32 weights (it scores under the
    learners' autocast, which caches no casts of frozen weights), one layer's activations at a
    time (no autograd), the completion logits, and a learner's runtime."""
    tokens = max(setup.micro_batch_tokens, sequence_tokens(shape, setup))
    return {
        "weights": 4 * shape.params,
        "activations": tokens * (layer_activation_bytes(shape) + 3 * 4 * shape.hidden),
        "logits": logit_bytes(shape, setup),
        "runtime": GPU_OVERHEAD["learner"] if on_gpu else CPU_BASELINE["learner"],
    }


def learner_load_memory(shape: ModelShape, terms: dict[str, int]) -> dict[str, int]:
    """Terms of a CPU learner rank's peak while it loads its model(s) (`terms`: its running
    terms). transformers maps every safetensors file of the checkpoint (mmap) and keeps them
    mapped until the last tensor is converted, so the file's pages count in the process's
    resident memory beside the fp32 parameters they are cast into; every rank loads the whole
    model before DeepSpeed partitions it. With a reference model (full fine-tuning, beta > 0) the
    reference loads last, beside the policy as the rank then holds it."""
    policy_held = terms["weights"] if "reference" in terms else 0
    return {"weights": policy_held + 4 * shape.params, "checkpoint pages": shape.checkpoint_element * shape.params, "runtime": terms["runtime"]}


def autocast_copy_bytes(shape: ModelShape, setup: Setup, trainable: int) -> int:
    """bf16 casts of fp32 weights alive at the end of a forward: the trainable ones (autocast
    caches them), and with LoRA the frozen base's language layers too, which autograd saves for
    the input gradient (one layer at a time under gradient checkpointing)."""
    if not setup.lora_rank:
        return 2 * trainable
    base = shape.layer_params if checkpointing_on(shape, setup) else shape.layer_params * shape.layers
    return 2 * (trainable + base)


def layer_activation_bytes(shape: ModelShape) -> int:
    """One language layer's activations per token under bf16 autocast (see the module docstring)."""
    return 42 * shape.hidden + 8 * shape.intermediate + 8 * shape.kv_width


def activation_bytes(shape: ModelShape, setup: Setup) -> int:
    """Saved activations of one micro-batch (language model; the vision tower's too if trained)."""
    seq = sequence_tokens(shape, setup)
    tokens = max(setup.micro_batch_tokens, seq)
    h = shape.hidden
    per_layer = layer_activation_bytes(shape)
    scale = 1.0 if setup.bf16 else 1.6  # fp32: the bf16 matmul tensors double, the fp32 ones stay
    if checkpointing_on(shape, setup):
        text = tokens * (4 * h * shape.layers + per_layer)
    else:
        text = tokens * per_layer * shape.layers
    text += tokens * 3 * 4 * h  # embeddings, final norm
    vision = 0
    if not setup.freeze_vision and not setup.lora_rank:
        rows = max(1, setup.micro_batch_tokens // seq)
        patches = rows * math.ceil(setup.max_pixels / shape.patch**2)
        vision = patches * (42 * shape.vision_hidden + 8 * shape.vision_intermediate) * shape.vision_depth
    return int((text + vision) * scale)


def logit_bytes(shape: ModelShape, setup: Setup) -> int:
    """Completion-position logits (bf16, and their gradient) plus the log-prob chunk temporaries."""
    positions = completion_positions(shape, setup)
    element = 2 if setup.bf16 else 4
    logits = positions * shape.vocab * element * 2
    return logits + min(LOGPROB_CHUNK_BYTES, positions * shape.vocab * 4 * 2)


def completion_positions(shape: ModelShape, setup: Setup) -> int:
    """Completion tokens in one micro-batch: rows of prompt + completion, or with the shared
    prefix, rows of one prompt + its G completions (a group over the budget is cut into chunks
    that each repeat the prompt)."""
    seq = sequence_tokens(shape, setup)
    completion = min(setup.max_tokens, seq)
    prompt = seq - completion
    budget = setup.micro_batch_tokens
    if setup.shared_prefix and setup.rl:
        group = prompt + setup.generations * completion
        if group <= budget:
            return (budget // group) * setup.generations * completion
        return max(completion, (budget - prompt) // completion * completion)
    return max(1, budget // seq) * completion


def vllm_gpu_memory(shape: ModelShape, setup: Setup, gpu_mem: int) -> tuple[dict[str, int], int]:
    """(terms inside vLLM's gpu_memory_utilization share, KV cache tokens it leaves)."""
    budget = int(setup.gpu_memory_utilization * gpu_mem)
    weights = 2 * shape.params
    kv = budget - weights - GPU_OVERHEAD["vllm"]
    return {"weights": weights, "workspace": GPU_OVERHEAD["vllm"], "kv cache": max(0, kv)}, max(0, kv) // shape.kv_bytes_per_token


def packed_embedding_bytes(shape: ModelShape, element: int) -> int:
    """vLLM on CPU: every vocabulary-sized embedding module (the input embedding, and the LM head
    when it is not tied to it) gets a oneDNN-packed copy of its table for the logits matmul and
    keeps the original for the lookup (`UnquantizedEmbeddingMethod.process_weights_after_loading`,
    `remove_weight=False`); the other linears drop theirs once packed."""
    tables = 1 if shape.tied else 2
    return tables * shape.vocab * shape.hidden * element


def rollout_memory(shape: ModelShape, setup: Setup, gpu_mem: int | None) -> tuple[dict[str, int], int | None]:
    """(terms of one rollout worker, KV cache tokens for vLLM on GPU else None)."""
    on_gpu = setup.rollout_gpus > 0 and gpu_mem is not None
    element = 2 if setup.bf16 or on_gpu else 4
    if setup.engine == "vllm" and on_gpu:
        return vllm_gpu_memory(shape, setup, gpu_mem)
    if setup.engine == "vllm":
        runtime = CPU_BASELINE["vllm_in_process" if setup.vllm_in_process else "vllm"]
        weights = element * shape.params
        terms = {"weights": weights, "packed embedding": packed_embedding_bytes(shape, element), "freed at load": int(CPU_FREED_AT_LOAD * weights)}
        terms |= {"kv cache": int(setup.kv_cache_gb * GiB), "runtime": runtime}
        return terms, None
    kv = setup.concurrent_sequences * sequence_tokens(shape, setup) * shape.kv_bytes_per_token
    runtime = GPU_OVERHEAD["hf"] if on_gpu else CPU_BASELINE["hf"]
    return {"weights": element * shape.params, "kv cache": kv, "runtime": runtime}, None


# ---------------------------------------------------------------------------------------------
# placement


@dataclass
class Device:
    """One GPU (or the host RAM of a node) and the actors on it."""

    name: str
    capacity: int | None
    actors: list[ActorMemory] = field(default_factory=list)
    used: int = 0

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.used <= self.capacity


@dataclass
class Plan:
    model: str
    shape: ModelShape
    setup: Setup
    hardware: Hardware
    actors: list[ActorMemory]
    devices: list[Device]
    problems: list[str]
    kv_tokens: int | None = None
    advice: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems

    def worst(self) -> Device | None:
        over = [d for d in self.devices if d.capacity]
        return max(over, key=lambda d: d.used / d.capacity) if over else None


def plan_memory(cfg_or_setup: DictConfig | Setup, shape: ModelShape, hardware: Hardware, model: str = "", advise: bool = True) -> Plan:
    """Every actor's predicted peak, where it runs, and whether it fits `hardware`."""
    on_gpu = hardware.gpus > 0
    setup = cfg_or_setup if isinstance(cfg_or_setup, Setup) else Setup.of(cfg_or_setup, on_gpu)
    plan = _place(setup, shape, hardware, model)
    if advise and not plan.fits:
        plan.advice = advice(plan)
    return plan


def _actors(setup: Setup, shape: ModelShape, hardware: Hardware) -> tuple[list[ActorMemory], list[ActorMemory], int | None]:
    """(learner ranks and the separate reference, rollout engines, the KV cache's tokens)."""
    learner_on_gpu = setup.learner_gpus > 0 and hardware.gpus > 0
    learners = []
    for rank in range(setup.learners):
        terms = learner_memory(shape, setup, learner_on_gpu)
        persistent = sum(v for k, v in terms.items() if k not in ("activations", "logits", "autocast copies", "zero3 gather"))
        load = {} if learner_on_gpu else learner_load_memory(shape, terms)  # a GPU rank loads into host RAM
        learners.append(ActorMemory(f"learner rank {rank}", "learner", terms, persistent, load=load))
    if setup.rl and setup.separate_reference:
        terms = reference_memory(shape, setup, learner_on_gpu)
        load = {} if learner_on_gpu else learner_load_memory(shape, terms)  # the reference alone: no policy held
        learners.append(ActorMemory("reference", "reference", terms, sum(terms.values()), load=load))
    rollouts: list[ActorMemory] = []
    kv_tokens = None
    if setup.rl:
        for index in range(setup.rollouts):
            terms, kv_tokens = rollout_memory(shape, setup, hardware.gpu_mem)
            rollouts.append(ActorMemory(f"rollout {index} ({setup.engine})", setup.engine, terms, sum(terms.values())))
    return learners, rollouts, kv_tokens


def _place(setup: Setup, shape: ModelShape, hardware: Hardware, model: str) -> Plan:
    learners, rollouts, kv_tokens = _actors(setup, shape, hardware)
    driver = ActorMemory("driver (+Ray)", "driver", {"runtime": CPU_BASELINE["driver"]})
    problems: list[str] = []
    devices: list[Device] = []
    host = Device("RAM", hardware.host_mem * hardware.nodes if hardware.host_mem else None)
    gpu_actors = [(a, setup.learner_gpus) for a in learners if setup.learner_gpus > 0] + [(a, setup.rollout_gpus) for a in rollouts if setup.rollout_gpus > 0]
    if gpu_actors and not hardware.gpus:
        problems.append(
            f"the configuration asks for GPUs (learner.gpus_per_worker={setup.learner_gpus}, rollout.gpus_per_worker={setup.rollout_gpus}) and the hardware has none"
        )
    elif gpu_actors:
        devices, placement_problem = _place_on_gpus(setup, learners, rollouts, hardware)
        problems += placement_problem
    for actor in [*learners, *rollouts, driver]:
        if actor.device == "RAM":
            host.actors.append(actor)
            host.used += actor.committed
    devices.append(host)
    for device in devices:
        if not device.fits:
            biggest = max(device.actors, key=lambda a: a.committed)
            problems.append(
                f"{device.name} needs {device.used / GiB:.1f} GiB of {device.capacity / GiB:.1f} GiB ({biggest.name}: {biggest.committed / GiB:.1f} GiB)"
            )
    if kv_tokens is not None and kv_tokens < setup.max_model_len:
        problems.append(f"vLLM's KV cache holds {kv_tokens:,} tokens, less than one rollout.max_model_len={setup.max_model_len} sequence")
    plan = Plan(model, shape, setup, hardware, [*learners, *rollouts, driver], devices, problems, kv_tokens)
    return plan


def _place_on_gpus(setup: Setup, learners, rollouts, hardware: Hardware) -> tuple[list[Device], list[str]]:
    """Bundles as rft.placement.workers builds them (colocated rollouts share learner bundles),
    packed onto GPUs: a bundle of >= 1 GPU takes whole GPUs, fractional ones share."""
    ranks = [a for a in learners if a.kind == "learner"]
    bundles: list[tuple[float, list[ActorMemory]]] = []
    if setup.learner_gpus > 0:
        bundles += [(setup.learner_gpus, [a]) for a in ranks]
    for index, actor in enumerate(rollouts):
        if setup.colocate and ranks and setup.learner_gpus > 0:
            gpus, members = bundles[index % len(ranks)]
            bundles[index % len(ranks)] = (gpus + setup.rollout_gpus, [*members, actor])
        elif setup.rollout_gpus > 0:
            bundles.append((setup.rollout_gpus, [actor]))
    if setup.learner_gpus > 0:  # the separate reference's bundle comes last, like a rank's
        bundles += [(setup.learner_gpus, [a]) for a in learners if a.kind == "reference"]
    gpus: list[Device] = []
    free: list[float] = []
    for size, members in bundles:
        slot = next((i for i, room in enumerate(free) if size < 1 and room >= size - 1e-9), None)
        if slot is None:
            slot = len(gpus)
            for _ in range(max(1, math.ceil(size))):
                gpus.append(Device(f"GPU {len(gpus)}", hardware.gpu_mem))
                free.append(1.0)
        free[slot] -= min(size, 1.0) if size < 1 else 1.0
        _put(gpus[slot], members)
    problems = []
    if len(gpus) > hardware.gpus:
        problems.append(f"the placement needs {len(gpus)} GPUs and the hardware has {hardware.gpus}")
    return gpus, problems


def _put(device: Device, members: list[ActorMemory]) -> None:
    """Add actors to a GPU. A learner and a vLLM engine together: the engine sleeps during updates."""
    for actor in members:
        actor.device = device.name
        device.actors.append(actor)
    learners = [a for a in device.actors if a.kind == "learner"]
    engines = [a for a in device.actors if a.kind != "learner"]  # vLLM, HF, the separate reference: always resident
    if learners and engines:
        awake = sum(a.persistent for a in learners) + sum(a.total for a in engines)
        asleep = sum(a.total for a in learners) + GPU_OVERHEAD["vllm_asleep"] * len(engines)
        device.used = max(awake, asleep)
    else:
        device.used = sum(a.total for a in device.actors)


# ---------------------------------------------------------------------------------------------
# what to change when it does not fit


def candidate_changes(plan: Plan) -> list[tuple[str, Setup]]:
    """(override, changed setup) pairs worth trying, each one change to the current setup."""
    s, shape = plan.setup, plan.shape
    out: list[tuple[str, Setup]] = []
    if s.learners > 1 and s.zero_stage < 3:
        out.append(("learner.zero_stage=3", replace(s, zero_stage=3)))
    if not checkpointing_on(shape, s):
        out.append(("model.gradient_checkpointing=true", replace(s, checkpointing=True)))
    seq = sequence_tokens(shape, s)
    for factor in (2, 4, 8):
        tokens = s.micro_batch_tokens // factor
        if tokens >= seq:
            out.append((f"learner.micro_batch_tokens={tokens}", replace(s, micro_batch_tokens=tokens)))
    if not s.freeze_vision:
        out.append(("model.freeze_vision=true", replace(s, freeze_vision=True)))
    if not s.lora_rank:
        out.append(("learner.lora.rank=16", replace(s, lora_rank=16)))
    spare = plan.hardware.gpus - sum(1 for d in plan.devices if d.name.startswith("GPU"))
    if s.learner_gpus > 0 and spare > 0:
        more = s.learners + spare
        out.append((f"learner.num_workers={more} learner.zero_stage=3", replace(s, learners=more, zero_stage=3)))
    if s.colocate and s.learner_gpus > 0 and spare > 0:
        out.append(("cluster.colocate=false", replace(s, colocate=False, learner_gpus=max(1.0, s.learner_gpus), rollout_gpus=max(1.0, s.rollout_gpus))))
    if s.engine == "vllm" and s.rollout_gpus > 0:
        for utilization in (0.3, 0.5, 0.7, 0.9):
            if abs(utilization - s.gpu_memory_utilization) > 1e-6:
                out.append((f"rollout.gpu_memory_utilization={utilization}", replace(s, gpu_memory_utilization=utilization)))
    return out


def advice(plan: Plan) -> list[str]:
    """Single changes that make the plan fit (with their peak), else the ones that help most."""
    results = []
    for override, setup in candidate_changes(plan):
        trial = plan_memory(setup, plan.shape, plan.hardware, plan.model, advise=False)
        worst = trial.worst()
        results.append((trial.fits, worst.used / worst.capacity if worst else 0.0, override, worst))
    fitting = [r for r in results if r[0]]
    chosen = fitting if fitting else sorted(results, key=lambda r: r[1])[:3]
    return [
        f"{override}: {'fits' if ok else 'still over'} ({worst.name} at {worst.used / GiB:.1f} GiB)" if worst else override for ok, _, override, worst in chosen
    ]


# ---------------------------------------------------------------------------------------------
# output, and the check rft.launch runs


LOAD_COLUMN = "peak at load"  # the loading peak; an actor's total is the larger of it and its terms' sum


def format_plan(plan: Plan) -> str:
    columns: list[str] = []
    for actor in plan.actors:
        columns += [k for k in actor.terms if k not in columns]
    shape = plan.shape
    lines = [
        f"model {plan.model}: {shape.params / 1e9:.3g} B parameters ({shape.vision_params / 1e9:.3g} B vision), "
        f"{trainable_params(shape, plan.setup) / 1e9:.3g} B trainable; hardware: {plan.hardware.describe()}",
        f"predicted peak per actor, GiB (sequence <= {sequence_tokens(shape, plan.setup)} tokens, ZeRO stage {plan.setup.effective_zero}, "
        f"checkpointing {'on' if checkpointing_on(shape, plan.setup) else 'off'}):",
        "  " + " | ".join(["actor".ljust(20), "where".ljust(6), *columns, LOAD_COLUMN, "total"]),
    ]
    for actor in plan.actors:
        cells = [(f"{actor.terms[c] / GiB:.2f}" if c in actor.terms else "-").rjust(len(c)) for c in columns]
        at_load = f"{sum(actor.load.values()) / GiB:.2f}" if actor.load else "-"
        lines.append(
            "  " + " | ".join([actor.name.ljust(20), actor.device.ljust(6), *cells, at_load.rjust(len(LOAD_COLUMN)), f"{actor.total / GiB:.2f}".rjust(5)])
        )
    for device in plan.devices:
        capacity = f" of {device.capacity / GiB:.1f}" if device.capacity else ""
        dropped = sum(a.total - a.committed for a in device.actors)
        beside = f" (+{dropped / GiB:.1f} GiB while loading, in file pages the kernel can drop)" if dropped else ""
        lines.append(f"{device.name}: {device.used / GiB:.1f}{capacity} GiB{beside}{'' if device.fits else '  <-- over'}")
    if plan.kv_tokens is not None:
        lines.append(
            f"vLLM KV cache: {plan.kv_tokens:,} tokens per engine ({plan.kv_tokens / max(1, sequence_tokens(shape, plan.setup)):.1f} longest sequences)"
        )
    lines.append("fits" if plan.fits else "does not fit: " + "; ".join(plan.problems))
    lines += [f"  try {a}" for a in plan.advice]
    return "\n".join(lines)


def one_line(plan: Plan) -> str:
    tries = f"; try {' or '.join(a.split(':')[0] for a in plan.advice[:3])}" if plan.advice else ""
    return (
        f"predicted memory does not fit {plan.hardware.describe()}: {'; '.join(plan.problems)}{tries} (python -m rft.plan <same overrides> for the breakdown)"
    )


def check_fits(cfg: DictConfig) -> Plan | None:
    """Raise PlanError when a local run cannot fit this machine. Nothing is checked where the
    cluster's memory is unknown (an attached cluster) or the model's config cannot be read
    without the network (the run then reports what is missing)."""
    if cfg.cluster.address:
        return None
    config = model_config(str(cfg.model.path))
    if config is None:
        return None
    want_gpus = cfg.learner.gpus_per_worker > 0 or cfg.rollout.gpus_per_worker > 0
    hardware = this_machine(want_gpus)
    if want_gpus and not hardware.gpus:
        return None  # Ray's placement reports the missing GPUs itself
    plan = plan_memory(cfg, shape_of(config), hardware, model=str(cfg.model.name))
    if not plan.fits:
        raise PlanError(one_line(plan))
    worst = plan.worst()
    if worst is not None:
        log.info("memory plan: fits %s (%s at %.1f of %.1f GiB predicted)", hardware.describe(), worst.name, worst.used / GiB, worst.capacity / GiB)
    return plan
