"""Generation with vLLM (`rollout.engine=vllm`): the production engine, CPU build here.

Images are passed as `multi_modal_data` and resized by vLLM's Qwen2-VL processor with the same
`min_pixels`/`max_pixels` as the learner's processor (the seeds did not pass them to vLLM, so
rollouts saw other resolutions than training did).

Weight updates, two ways. `load_weights(folder)` reloads a complete checkpoint folder in place
through a worker extension that also re-ties tied LM heads, then drops the encoder and prefix
caches (see `rft.weights.vllm_worker`; stale image embeddings otherwise survive an update).
With `weight_transfer_backend` set, the engine also takes weights streamed by a trainer through
vLLM's weight-transfer API (`init_weight_transfer`, then per update `start_weight_update`,
`update_weights`, `finish_weight_update`; see `rft.weights`).

LoRA (`max_lora_rank > 0`): the engine is started with `enable_lora` and serves one adapter at a
time; each weight version arrives as an adapter folder (`rft.models.adapter`), by path or written
here by the gloo receiver, and becomes a new `LoRARequest` (loaded at once, the previous one
removed), which every `generate` and `score` call then carries. The base weights never change.
Both update paths return the bytes of weights this engine received.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rft.data.images import open_images
from rft.types import Completion, PromptItem, SamplingSettings, vision_token_ids

log = logging.getLogger(__name__)


def _vllm_input(item: PromptItem) -> dict[str, Any]:
    request: dict[str, Any] = {"prompt": item.prompt_text}
    if item.images:
        images = open_images(item.images)
        request["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
    return request


def lora_options(max_lora_rank: int) -> dict[str, Any]:
    """`LLM` arguments for serving adapters up to `max_lora_rank` (none when 0): one adapter at a
    time, the smallest rank vLLM offers that holds it."""
    if max_lora_rank <= 0:
        return {}
    from typing import get_args

    from vllm.config.lora import MaxLoRARanks

    offered = next(rank for rank in get_args(MaxLoRARanks) if rank >= max_lora_rank)
    return {"enable_lora": True, "max_lora_rank": offered, "max_loras": 1}


def _sampled_logprobs(output) -> list[float]:
    if output.logprobs is None:
        return []
    return [step[token].logprob for token, step in zip(output.token_ids, output.logprobs)]


# Notices an engine in this process logs on every step, with nothing a user can act on: the CPU
# worker's "torch.set_num_threads is skipped after thread binding" (vLLM's own prompt renderer
# calls it) and the reload's "failed to load weights" for layers that have none. vLLM's logging
# set-up resets levels set before the engine starts, hence after it.
IN_PROCESS_NOISE = ("vllm.v1.worker.cpu_worker", "vllm.model_executor.model_loader.reload.layerwise")


def _quiet_in_process_engine() -> None:
    for name in IN_PROCESS_NOISE:
        logging.getLogger(name).setLevel(logging.ERROR)


class VLLMEngine:
    """A vLLM `LLM` with the model's pixel budget; one per rollout actor."""

    def __init__(
        self,
        model_path: str,
        *,
        min_pixels: int,
        max_pixels: int,
        max_model_len: int = 4096,
        max_images: int = 2,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = True,
        kv_cache_gb: int = 1,
        gpu_memory_utilization: float = 0.4,
        enable_sleep_mode: bool = False,
        weight_transfer_backend: str | None = None,
        max_lora_rank: int = 0,
    ):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gb))
        from vllm import LLM

        from rft.weights.vllm_worker import WORKER_EXTENSION

        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            limit_mm_per_prompt={"image": max_images},
            mm_processor_kwargs={"min_pixels": min_pixels, "max_pixels": max_pixels},
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep_mode=enable_sleep_mode,
            worker_extension_cls=WORKER_EXTENSION,  # weight reload that keeps tied heads right
            weight_transfer_config={"backend": weight_transfer_backend} if weight_transfer_backend else None,
            use_tqdm_on_load=False,  # a progress bar per weight reload, i.e. per training step
            **lora_options(max_lora_rank),
        )
        self.adapter = None  # the LoRARequest of the weight version being served (LoRA only)
        self.adapters_loaded = 0
        self.streamed_adapter = None  # the adapter folder a streamed update is writing (LoRA only)
        # Per-request seeds make sampling reproducible request by request, but on CPU vLLM 0.32
        # crashes when it rewinds a seeded request's generator after a split prefill ("CPU
        # Generator does not use offset"); there the engine-wide `seed` alone is used, and an
        # engine running in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0, what
        # `trainer.deterministic` sets on CPUs) samples with this process's generator, which
        # `generate` reseeds from each call's seed: the same call then samples the same tokens,
        # whatever was generated before it (a resumed run too).
        import torch
        import vllm.envs

        self.per_request_seeds = torch.cuda.is_available()
        self.reseeds_here = not self.per_request_seeds and not vllm.envs.VLLM_ENABLE_V1_MULTIPROCESSING
        if not vllm.envs.VLLM_ENABLE_V1_MULTIPROCESSING:
            _quiet_in_process_engine()
        self.banned = {token: -100.0 for token in vision_token_ids(self.llm.get_tokenizer())}

    def generate(self, items: list[PromptItem], sampling: SamplingSettings) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=0.0 if sampling.greedy else sampling.temperature,
            top_p=1.0 if sampling.greedy else sampling.top_p,
            top_k=-1 if sampling.greedy else sampling.top_k,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed if self.per_request_seeds else None,
            logprobs=0,
            logit_bias=self.banned,
        )
        if self.reseeds_here and sampling.seed is not None:
            import torch

            torch.manual_seed(sampling.seed)
        outputs = self.llm.generate([_vllm_input(item) for item in items], params, use_tqdm=False, lora_request=self.adapter)
        completions = []
        for item, request in zip(items, outputs):
            for index, out in enumerate(request.outputs):
                completions.append(
                    Completion(
                        group=item.group,
                        sample=index,
                        token_ids=list(out.token_ids),
                        text=out.text,
                        logprobs=_sampled_logprobs(out),
                        finish_reason=out.finish_reason or "stop",
                        prompt_token_ids=list(request.prompt_token_ids),
                    )
                )
        return completions

    def compute_threads(self) -> int:
        """The threads the model runs with, asked of the engine's worker (vLLM binds them at start:
        `VLLM_CPU_OMP_THREADS_BIND` on CPUs)."""
        return max(self.llm.collective_rpc("rft_torch_threads"))

    def score(self, item: PromptItem, completion_token_ids: list[int]) -> list[float]:
        """Log-probs the engine assigns to a fixed completion of `item` (for sync checks).

        The prompt goes in as unexpanded token ids (one `<|image_pad|>` per image): vLLM expands
        image placeholders itself, also in token prompts, so expanded ids would be expanded twice.
        """
        from vllm import SamplingParams

        unexpanded = self.llm.get_tokenizer().encode(item.prompt_text, add_special_tokens=False)
        request = {k: v for k, v in _vllm_input(item).items() if k != "prompt"}
        request["prompt_token_ids"] = unexpanded + list(completion_token_ids)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        out = self.llm.generate([request], params, use_tqdm=False, lora_request=self.adapter)[0]
        start = len(out.prompt_token_ids) - len(completion_token_ids)
        scored = out.prompt_logprobs[start:]
        return [step[token].logprob for token, step in zip(completion_token_ids, scored)]

    def load_weights(self, folder: str) -> int:
        """Serve the weights in `folder` (a checkpoint, or an adapter); the bytes read."""
        from rft.models.adapter import adapter_bytes, is_adapter_folder
        from rft.models.loading import weight_file_bytes
        from rft.weights.vllm_worker import reload_vllm_weights

        if is_adapter_folder(folder):
            self.serve_adapter(folder)
            return adapter_bytes(folder)
        reload_vllm_weights(self.llm, folder)
        self.stop_adapter()  # a whole model (e.g. a merged one) replaces base and adapter alike
        return weight_file_bytes(folder)

    def stop_adapter(self) -> None:
        if self.adapter is not None:
            self.llm.llm_engine.remove_lora(self.adapter.lora_int_id)
            self.adapter = None

    def serve_adapter(self, folder: str) -> None:
        """The adapter in `folder` as this engine's adapter from now on (a new LoRARequest)."""
        from vllm.lora.request import LoRARequest

        if self.llm.llm_engine.vllm_config.lora_config is None:
            raise RuntimeError(f"{folder} holds a LoRA adapter, but the engine was started without LoRA (max_lora_rank=0)")
        self.adapters_loaded += 1
        previous, self.adapter = self.adapter, LoRARequest(f"v{self.adapters_loaded}", self.adapters_loaded, str(folder))
        self.llm.llm_engine.add_lora(self.adapter)  # read now: the folder may go once the next version lands
        if previous is not None:
            self.llm.llm_engine.remove_lora(previous.lora_int_id)
        self.llm.reset_prefix_cache()

    # ---- weight-transfer API (`rollout.weight_sync=gloo|nccl|ipc`, see rft.weights.gloo) ----
    def init_weight_transfer(self, init_info: dict[str, Any]) -> None:
        self.llm.init_weight_transfer_engine({"init_info": init_info})

    def start_weight_update(self) -> None:
        self.llm.start_weight_update()

    def update_weights(self, update_info: dict[str, Any]) -> None:
        from rft.weights.gloo import with_adapter_dir

        update_info, self.streamed_adapter = with_adapter_dir(update_info, self.adapters_loaded + 1)
        self.llm.update_weights({"update_info": update_info})

    def finish_weight_update(self) -> int:
        """End a streamed update; the bytes received (an adapter is served from now on)."""
        from rft.weights.vllm_worker import finish_transferred_update

        received = finish_transferred_update(self.llm)
        adapter, self.streamed_adapter = self.streamed_adapter, None
        if adapter is not None:
            from pathlib import Path

            from rft.weights.folder import drop_other_versions

            self.serve_adapter(adapter)
            drop_other_versions(Path(adapter).parent, keep=Path(adapter))
        return received

    def shutdown_weight_transfer(self) -> None:
        self.llm.shutdown_weight_transfer_engine()

    def sleep(self) -> None:
        self.llm.sleep(level=1)

    def wake(self) -> None:
        self.llm.wake_up()
