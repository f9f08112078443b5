"""`LearnerWorker`: one DeepSpeed rank (a Ray actor) holding the policy, optionally a reference
model, the processor and the optimizer. SFT and RL share it; only the loss differs.

Each rank sets up `torch.distributed` itself (gloo on CPU, NCCL on GPU) and then DeepSpeed
(ZeRO-2 or ZeRO-3). The controller drives it call by call: `logprobs`, `train_rl`, `train_sft`,
`save`, `load`, and through `rft.weights.sync` the weight-sync calls `export_weights`,
`init_weight_transfer`, `send_weights` (each checks the weights for NaN/inf first). Every rank
runs the same number of micro-batches per call (ZeRO-3 gathers parameters collectively),
padding with zero-weight repeats where its shard is shorter. Gradient accumulation is
caller-owned (`managed_gradient_accumulation: false`): one `backward` per micro-batch, one
`step` per update.

Compute goes where it counts (measured on the ~44 M bench model, 2 CPU cores: `rft.bench rl`):
- The LM head and the log-prob/entropy math run on completion positions only
  (`rft.models.heads.head_at`), in the policy, old and reference passes alike.
- `model.dtype: bfloat16` (what `auto` gives where the hardware has native bf16: GPUs, CPUs with
  AVX512-BF16 or AMX) runs the forward under torch.autocast over fp32 weights, through
  DeepSpeed's `torch_autocast` section (a model DeepSpeed does not wrap gets the same autocast
  here). The optimizer thus holds fp32 weights and updates as small as lr 1e-6 x a gradient are
  kept; measured against DeepSpeed's `bf16` mode (bf16 weights, fp32 master copy): the same
  speed, 0.6 GB more peak memory, but the bf16 copy dropped such updates (KL to the reference
  after one step at lr 1e-6: 1e-5 vs 1.7e-4 for both fp32 and autocast). The reference model is
  held in fp32 too and runs under the same autocast, so it scores exactly like the initial policy
  (with `learner.separate_reference` it lives in an actor of its own instead, which runs this
  class's scoring path: `rft.learner.reference`).
- One rank (`learner.num_workers=1`) runs DeepSpeed without ZeRO (stage 0): partitioning one
  copy only adds hooks and gathers.
- LoRA (`learner.lora.rank > 0`, `rft.learner.lora`): PEFT adapters around the loaded policy; the
  reference is the same model with its adapters off; export, streaming and checkpoints carry
  the adapter only.
- Gradient checkpointing is decided by the model size (`rft.models.loading.wants_checkpointing`).
- Shared prefix (`learner.shared_prefix`, default on): the completions of one prompt share one
  packed row (`rft.learner.batch`), so the prompt and the image run through the model once per
  group, in every pass; micro-batches hold whole groups (or chunks of a group longer than
  `micro_batch_tokens`, each repeating the prompt), measured in packed-row tokens. With sdpa the
  rows go through `rft.models.prefix_attention`, which computes only the scores the mask keeps
  (the prompt once, each completion against the prompt and itself). Off with flash_attention_2,
  which cannot take the per-segment mask (plain rows then, logged once).
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from rft.algo.config import LossSettings
from rft.host import peak_rss_gb
from rft.learner.batch import FeatureCache, MicroBatch, collate_rows, micro_batch_rows
from rft.learner.lora import LoRASettings
from rft.tracking.stats import LEARNER_STATS, merge_stats
from rft.types import TrainSample, vision_token_ids
from rft.weights.errors import NonFiniteWeights

if TYPE_CHECKING:  # the choices' Enums, for the annotations only: no config import in the actor
    from rft.config import Attention, DistBackend, DType, Scheduler

log = logging.getLogger(__name__)


@dataclass
class LearnerSettings:
    """What a rank needs, built only by `rft.placement.workers.learner_settings` from the config
    (no defaults here: the YAML files and the schema hold them)."""

    model_path: str
    min_pixels: int
    max_pixels: int
    zero_stage: int
    dtype: DType
    attn_implementation: Attention
    gradient_checkpointing: bool | None  # None: by model size (rft.models.loading.wants_checkpointing)
    freeze_vision: bool
    lr: float
    weight_decay: float
    lr_scheduler: Scheduler
    warmup_steps: int
    total_steps: int
    max_grad_norm: float
    micro_batch_tokens: int
    need_reference: bool
    backend: DistBackend
    seed: int
    shared_prefix: bool  # pack each prompt's completions into one row (rft.learner.batch)
    lora: LoRASettings | None  # None or rank 0: full fine-tuning (rft.learner.lora)


def _lr_lambda(kind: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        return 1.0

    return factor


def uses_autocast(settings: LearnerSettings) -> bool:
    """bf16 compute runs as torch.autocast over fp32 weights (see the module docstring)."""
    return settings.dtype == "bfloat16"


def deepspeed_config(settings: LearnerSettings, with_optimizer: bool = True) -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": settings.zero_stage, "overlap_comm": False}
    if settings.zero_stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True, stage3_param_persistence_threshold=0)
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "zero_optimization": zero,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
    if uses_autocast(settings):
        config["torch_autocast"] = {"enabled": True, "dtype": str(settings.dtype)}
    if with_optimizer:
        # Without ZeRO, DeepSpeed clips but drops the norm; the learner then clips itself (`_clip_before_step`).
        config["gradient_clipping"] = settings.max_grad_norm if settings.zero_stage else 0.0
        config["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": settings.lr, "weight_decay": settings.weight_decay, "betas": [0.9, 0.999], "eps": 1e-8, "torch_adam": True},
        }
    return config


class LearnerWorker:
    """Plain class; `rft.learner.group` wraps it with `ray.remote` and places it."""

    def __init__(self, rank: int, world_size: int, settings: LearnerSettings):
        # DeepSpeed 0.19 calls torch.distributed functions that torch 2.13 deprecates; the
        # warning repeats on every ZeRO step (hundreds of lines a run) and says nothing to a user.
        warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)
        self.rank = rank
        self.world_size = world_size
        self.settings = settings
        self.engine = None
        self.ref_engine = None
        self.transfer = None  # weight streaming to the rollout engines, when set up

    # ---- set-up -------------------------------------------------------------------------
    def address(self) -> tuple[str, int]:
        """Where this rank hosts a rendezvous, and a free port there: 127.0.0.1 on a one-node
        cluster, this node's address only on more. The first call (before `setup`) also starts
        the learners' rendezvous store, listening on that address alone: torch's own would listen
        on every interface, and `init_distributed` joins this one (torch shares a multi-tenant
        store by port). Later calls (weight streaming) leave the port to the group that binds it."""
        import datetime
        import socket

        import ray
        import torch.distributed as dist

        one_node = sum(1 for node in ray.nodes() if node.get("Alive")) <= 1
        host = "127.0.0.1" if one_node else ray.util.get_node_ip_address()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        if dist.is_initialized():
            sock.close()
            return host, port
        sock.listen()
        timeout = datetime.timedelta(minutes=30)
        self.rendezvous_store = dist.TCPStore(host, port, None, True, timeout, wait_for_workers=False, multi_tenant=True, master_listen_fd=sock.detach())
        return host, port

    def setup(self, master_addr: str, master_port: int) -> dict[str, Any]:
        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
            RANK=str(self.rank),
            LOCAL_RANK="0",
            WORLD_SIZE=str(self.world_size),
        )
        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            os.environ["DS_ACCELERATOR"] = "cpu"
        import deepspeed

        backend = self.settings.backend if self.settings.backend != "auto" else ("nccl" if on_gpu else "gloo")
        deepspeed.init_distributed(dist_backend=backend)
        torch.manual_seed(self.settings.seed)
        from rft.models.loading import resolve_dtype

        self.settings.dtype = str(resolve_dtype(self.settings.dtype)).removeprefix("torch.")
        self.dtype = "float32" if uses_autocast(self.settings) else self.settings.dtype  # the weights'
        if self.world_size == 1:  # one rank holds everything: no ZeRO partitioning hooks or buffers
            self.settings.zero_stage = 0
        self.device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
        model, self.processor = self._load_policy()
        if self.lora:  # adapters only train; the reference is this model with them off
            from rft.learner.lora import wrap

            model = wrap(model, self.settings.lora)
        trainable = [p for p in model.parameters() if p.requires_grad]
        scheduler = lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, _lr_lambda(self.settings.lr_scheduler, self.settings.warmup_steps, self.settings.total_steps)
        )
        self.engine, *_ = deepspeed.initialize(model=model, model_parameters=trainable, config=deepspeed_config(self.settings), lr_scheduler=scheduler)
        if self.settings.zero_stage == 0:
            self._clip_before_step(trainable)
        if self.settings.need_reference:
            self.ref_engine = self.engine if self.lora else self._load_reference(deepspeed)
        self._prepare_scoring(self.engine.module)
        return {"rank": self.rank, "trainable_params": sum(p.numel() for p in trainable), "backend": backend}

    def _prepare_scoring(self, model) -> None:
        """What every pass needs beside the weights (`model`: the policy, or the reference of a
        `rft.learner.reference.ReferenceWorker`): the prompt-feature cache, packing, the
        attention function, padding."""
        from rft.learner.lora import base_model

        self.features = FeatureCache(self.processor, base_model(model))
        self.shared_prefix = self._use_shared_prefix(model)
        if self.shared_prefix and self.settings.attn_implementation == "sdpa":
            self._use_prefix_attention()
        # eager attention adds the mask to its scores: packed rows' mask goes in as 0 / dtype-min
        self.additive_mask = getattr(torch, self.dtype) if model.config._attn_implementation == "eager" else None
        self.pad_id = self.processor.tokenizer.pad_token_id or 0
        self.placeholder_ids = frozenset(vision_token_ids(self.processor.tokenizer))

    def _use_shared_prefix(self, model) -> bool:
        """The setting, unless the attention kernel cannot take the packed rows' 4D mask."""
        attention = str(model.config._attn_implementation)
        if self.settings.shared_prefix and attention == "flash_attention_2":
            if self.rank == 0:
                log.warning("learner.shared_prefix is off: flash_attention_2 cannot take its per-completion attention mask (use sdpa to pack groups)")
            return False
        return self.settings.shared_prefix

    def _use_prefix_attention(self) -> None:
        """Packed rows through `rft.models.prefix_attention` (sdpa that skips what the mask hides),
        in the policy and a separate reference."""
        from rft.learner.lora import base_model
        from rft.models.prefix_attention import use_prefix_attention

        models = [getattr(self.engine, "module", None), getattr(self.ref_engine, "module", self.ref_engine)]
        for model in {id(m): base_model(m) for m in models if m is not None}.values():
            use_prefix_attention(model)

    def _load_policy(self):
        from rft.models.loading import load_model, load_processor

        model = load_model(
            self.settings.model_path,
            dtype=self.dtype,
            attn_implementation=self.settings.attn_implementation,
            gradient_checkpointing=self.settings.gradient_checkpointing,
            freeze_vision=self.settings.freeze_vision,
        )
        processor = load_processor(self.settings.model_path, min_pixels=self.settings.min_pixels, max_pixels=self.settings.max_pixels)
        return model, processor

    def _load_reference(self, deepspeed):
        from rft.models.loading import load_model

        ref = load_model(self.settings.model_path, dtype=self.dtype, attn_implementation=self.settings.attn_implementation)
        ref.eval().requires_grad_(False)
        if self.settings.zero_stage == 3:  # partition the reference too; it takes part in the same collectives
            engine, *_ = deepspeed.initialize(model=ref, config=deepspeed_config(self.settings, with_optimizer=False))
            return engine
        return ref.to(self.device)

    def _clip_before_step(self, params: list[torch.nn.Parameter]) -> None:
        """Clip the gradients to `max_grad_norm` before every optimizer step and hand the norm to
        DeepSpeed the way its ZeRO optimizers do (`optimizer._global_grad_norm`, read back by
        `engine.get_global_grad_norm()`)."""

        def clip(optimizer, _args, _kwargs):
            optimizer._global_grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.settings.max_grad_norm))

        self.engine.optimizer.register_step_pre_hook(clip)

    def _autocast(self, module):
        """bf16 autocast for a model DeepSpeed does not wrap (the reference below ZeRO-3); a
        DeepSpeed engine applies its `torch_autocast` config itself (and disables an outer one)."""
        import contextlib
        import sys

        deepspeed = sys.modules.get("deepspeed")  # not imported at all by a `ReferenceWorker`
        if (deepspeed is not None and isinstance(module, deepspeed.DeepSpeedEngine)) or not uses_autocast(self.settings):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.settings.dtype))

    # ---- micro-batching -----------------------------------------------------------------
    def _micro_batches(self, samples: list[TrainSample]) -> list[tuple[MicroBatch, float]]:
        """This rank's micro-batches, padded to the count of the busiest rank (weight 0). Their
        samples, in order, are `samples`."""
        import torch.distributed as dist

        feats = [self.features.get(s.prompt) for s in samples]
        plan = micro_batch_rows(samples, feats, self.settings.micro_batch_tokens, self.shared_prefix)
        batches = [(self._collate(rows, samples, feats), 1.0) for rows in plan]
        if self.world_size == 1:
            return batches
        count = torch.tensor([len(plan)], device=self.device)
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        if not batches and count.item() > 0:
            raise RuntimeError(f"learner rank {self.rank} got an empty shard; the controller must give every rank samples")
        while len(batches) < count.item():
            batches.append((batches[0][0], 0.0))
        return batches

    def _collate(self, rows: list[list[int]], samples: list[TrainSample], feats) -> MicroBatch:
        return collate_rows(
            [[samples[i] for i in row] for row in rows],
            [feats[row[0]] for row in rows],
            self.pad_id,
            self.placeholder_ids,
            shared_prefix=self.shared_prefix,
        )

    def _forward_logprobs(self, module, batch: MicroBatch, with_entropy: bool = False, entropy_grad: bool = False):
        from rft.algo import entropy_from_logits, token_logprobs
        from rft.models.heads import head_at

        inputs = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.model_inputs(self.additive_mask).items()}
        # The LM head runs on the completion positions only (the prompt is most of each sequence),
        # one entry per sample also where a row holds a group's completions.
        with head_at(module, batch.logit_positions().to(self.device), batch.sample_rows().to(self.device)), self._autocast(module):
            comp_logits = module(**inputs, use_cache=False).logits
        logp = token_logprobs(comp_logits, batch.completion_ids.to(self.device))
        entropy = None
        if entropy_grad:  # an entropy bonus in the loss needs its gradient
            entropy = entropy_from_logits(comp_logits)
        elif with_entropy:  # reported only
            with torch.no_grad():
                entropy = entropy_from_logits(comp_logits.detach())
        return logp, entropy

    # ---- calls from the controller ------------------------------------------------------
    @torch.no_grad()
    def logprobs(self, samples: list[TrainSample], which: str = "policy") -> list[list[float]]:
        """Per-token log-probs of each sample's completion under the policy or the reference."""
        module = self.engine if which == "policy" else self.ref_engine
        if which != "policy" and self.lora:
            from rft.learner.lora import adapters_off

            with adapters_off(module):
                return self._logprobs_of(module, samples)
        return self._logprobs_of(module, samples)

    def _logprobs_of(self, module, samples: list[TrainSample]) -> list[list[float]]:
        if module is None:
            raise RuntimeError("no reference model: it exists only when algo.beta > 0")
        was_training = module.training
        module.eval()
        out: list[list[float]] = []
        for batch, weight in self._micro_batches(samples):
            logp, _ = self._forward_logprobs(module, batch)
            if weight > 0:
                for row, sample in enumerate(batch.samples):
                    out.append(logp[row, : len(sample.completion_ids)].float().cpu().tolist())
        module.train(was_training)
        return out

    def train_rl(self, samples: list[TrainSample], loss: LossSettings, totals: dict[str, float]) -> dict[str, float]:
        """One optimizer update with the clipped policy loss over this rank's shard."""
        from rft.algo import policy_loss

        def loss_fn(batch: MicroBatch, logp, entropy):
            advantages = torch.tensor([s.advantage for s in batch.samples], dtype=torch.float32, device=logp.device)
            old = batch.per_token([s.old_logprobs for s in batch.samples]) if batch.samples[0].old_logprobs is not None else None
            ref = batch.per_token([s.ref_logprobs for s in batch.samples]) if batch.samples[0].ref_logprobs is not None else None
            rollout = batch.per_token([s.rollout_logprobs for s in batch.samples]) if all(s.rollout_logprobs is not None for s in batch.samples) else None
            return policy_loss(
                logp,
                _to(old, logp),
                advantages,
                batch.completion_mask.to(logp.device),
                _to(ref, logp),
                settings=loss,
                entropy=entropy,
                total_tokens=totals["tokens"],
                total_seqs=totals["seqs"],
                rollout_logp=_to(rollout, logp),
            )

        metrics = self._update(samples, loss_fn, with_entropy=True, entropy_grad=loss.entropy_coef != 0)
        metrics["peak_rss_gb"] = peak_rss_gb()
        metrics["threads"] = float(torch.get_num_threads())  # what placement gave this rank
        return metrics

    def train_sft(self, samples: list[TrainSample], totals: dict[str, float]) -> dict[str, float]:
        """One optimizer update with token-mean cross-entropy on the completion (assistant) tokens."""

        def loss_fn(batch: MicroBatch, logp, _entropy):
            mask = batch.completion_mask.to(logp.device)
            loss = -(logp * mask).sum() / totals["tokens"]
            return loss, {"loss": loss.detach(), "tokens": mask.sum()}

        return self._update(samples, loss_fn, with_entropy=False)

    @torch.no_grad()
    def eval_sft_loss(self, samples: list[TrainSample]) -> tuple[float, float]:
        """(sum of token NLL, token count) on held-out samples."""
        self.engine.eval()
        total, tokens = 0.0, 0.0
        for batch, weight in self._micro_batches(samples):
            logp, _ = self._forward_logprobs(self.engine, batch)
            mask = batch.completion_mask.to(logp.device)
            total += weight * float(-(logp * mask).sum())
            tokens += weight * float(mask.sum())
        self.engine.train()
        return total, tokens

    def _update(self, samples, loss_fn, with_entropy: bool, entropy_grad: bool = False) -> dict[str, float]:
        import torch.distributed as dist

        self.engine.train()
        start = time.perf_counter()
        parts: list[dict[str, float]] = []  # statistics of each real (weight 1) micro-batch
        bad = 0
        used = 0
        for batch, weight in self._micro_batches(samples):
            logp, entropy = self._forward_logprobs(self.engine, batch, with_entropy, entropy_grad)
            loss, metrics = loss_fn(batch, logp, entropy)
            finite = torch.tensor([1.0 if torch.isfinite(loss).item() else 0.0], device=self.device)
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() < 1.0:  # every rank skips this micro-batch's backward together
                bad += 1
                continue
            # DeepSpeed averages gradients over ranks; the loss is normalised by global counts.
            self.engine.backward(loss * weight * self.world_size, scale_wrt_gas=False)
            used += 1
            if weight > 0:
                parts.append({key: float(value) for key, value in metrics.items()})
        stepped = used > 0 and bad == 0
        if stepped:
            self.engine.step()
        elif used > 0:
            # Part of the update is already accumulated; finish it so the next update starts clean,
            # but at zero learning rate so that the partial, tainted gradient changes nothing.
            self._step_without_update()
        # Losses are already normalised by global counts (they add up); the rest are per-token
        # means, weighted by each micro-batch's tokens (`LEARNER_STATS`).
        out = merge_stats(parts, LEARNER_STATS)
        out.update(
            tokens=out.get("tokens", 0.0),
            nonfinite_microbatches=float(bad),
            skipped_update=0.0 if stepped else 1.0,
            grad_norm=float(self.engine.get_global_grad_norm() or 0.0) if stepped else float("nan"),
            lr=float(self.engine.get_lr()[0]),
            update_s=time.perf_counter() - start,
        )
        self.features.clear()
        return out

    def _step_without_update(self) -> None:
        optimizer = self.engine.optimizer
        saved = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = 0.0
        self.engine.step()
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr

    # ---- weights and checkpoints --------------------------------------------------------
    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The whole model in checkpoint naming, on rank 0 (None elsewhere). Collective."""
        from rft.models.loading import checkpoint_state_dict

        module = self.engine.module
        if self.settings.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                state = {k: v.detach().to("cpu", copy=True) for k, v in checkpoint_state_dict(module).items()} if self.rank == 0 else None
            return state
        if self.rank != 0:
            return None
        return {k: v.detach().to("cpu", copy=True) for k, v in checkpoint_state_dict(module).items()}

    def _in_engine_dtype(self, state: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """Under bf16 autocast the weights are fp32 but the engines run bf16: export them cast, at
        half the bytes (vLLM would cast them on load anyway, warning once per tensor)."""
        if state is None or not uses_autocast(self.settings):
            return state
        dtype = getattr(torch, str(self.settings.dtype))
        return {name: t.to(dtype) if t.is_floating_point() else t for name, t in state.items()}

    @property
    def lora(self) -> bool:
        return self.settings.lora is not None and self.settings.lora.rank > 0

    def export_weights(self, folder: str) -> dict[str, float]:
        """Write the current weights (checkpoint naming) as a complete checkpoint folder, or with
        LoRA the adapter as an adapter folder. Collective."""
        from rft.models.loading import write_checkpoint_folder

        start = time.perf_counter()
        self._check_weights_finite()
        if self.lora:
            return {"bytes": float(self._write_adapter(folder)), "export_s": time.perf_counter() - start}
        state = self._in_engine_dtype(self.full_state_dict())
        size = 0
        if state is not None:  # a complete checkpoint: vLLM's reload re-points its config here
            write_checkpoint_folder(state, folder, self.settings.model_path)
            size = sum(t.numel() * t.element_size() for t in state.values())
        return {"bytes": float(size), "export_s": time.perf_counter() - start}

    def init_weight_transfer(self, backend: str, master_address: str, master_port: int, world_size: int, client: Any) -> None:
        """Join the weight-transfer group with the rollout engines (`rollout.weight_sync=gloo|nccl|ipc`).
        Collective: every learner rank calls it; rank 0 rendezvouses through `client`."""
        from rft.weights.stream import CheckpointWeightSource, open_transfer

        if self.transfer is not None:
            self.transfer.shutdown()
        source = CheckpointWeightSource(self.engine.module, self.settings.zero_stage)
        if self.lora:
            from rft.learner.lora import adapter_config, adapter_params
            from rft.weights.stream import AdapterWeightSource

            source = AdapterWeightSource(adapter_params(self.engine), adapter_config(self.engine), self.settings.zero_stage)
        self.transfer = open_transfer(backend, self.rank, master_address, master_port, world_size, client, source)

    def send_weights(self) -> dict[str, float]:
        """Stream the current weights into the rollout engines. Collective."""
        start = time.perf_counter()
        self._check_weights_finite()
        self.transfer.send_weights()
        size = sum(math.prod(m.shape) * m.dtype.itemsize for m in self.transfer.source.metadata())
        return {"bytes": float(size), "export_s": time.perf_counter() - start}

    def _check_weights_finite(self) -> None:
        """NonFiniteWeights on every rank when any rank holds NaN or inf (in its ZeRO-3 partition,
        or its full ZeRO-2 copy), before anything is written or sent. Collective: all ranks raise
        together, so none is left waiting in a gather or a broadcast."""
        import torch.distributed as dist

        bad = [name for name, p in self.engine.module.named_parameters() if not torch.isfinite(getattr(p, "ds_tensor", p)).all()]
        count = torch.tensor([len(bad)], device=self.device)
        dist.all_reduce(count)
        if count.item():
            where = f"e.g. {bad[:3]} on rank {self.rank}" if bad else "on another rank"
            raise NonFiniteWeights(f"weights hold NaN or inf after the update ({where}); lower the learning rate")

    def save(self, folder: str) -> None:
        """DeepSpeed state under `folder/deepspeed`, and on rank 0 an HF model under `folder/hf`."""
        from rft.learner.export import write_hf_checkpoint

        # LoRA: the frozen base is the model's own files, not part of the state (8.8 GB at 2 B)
        self.engine.save_checkpoint(os.path.join(folder, "deepspeed"), tag="state", exclude_frozen_parameters=self.lora)
        if self.lora:  # the adapter; `python -m rft.models.merge` makes a full model of it
            self._write_adapter(os.path.join(folder, "adapter"))
            return
        state = self.full_state_dict()
        if state is not None:
            write_hf_checkpoint(state, self.engine.module.config, self.processor, self.settings.model_path, os.path.join(folder, "hf"))

    def _write_adapter(self, folder: str) -> int:
        """The adapter as an adapter folder, on rank 0; its weights' size in bytes. Collective."""
        from rft.learner.lora import adapter_config, gathered_state
        from rft.models.adapter import write_adapter

        state = gathered_state(self.engine, self.settings.zero_stage, self.rank)
        return write_adapter(state, adapter_config(self.engine), folder) if state is not None else 0

    def load(self, folder: str) -> None:
        path, _ = self.engine.load_checkpoint(os.path.join(folder, "deepspeed"), tag="state", load_module_strict=not self.lora)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed state in {folder}/deepspeed")


def _to(x: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x.to(like.device)
