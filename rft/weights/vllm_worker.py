"""The engine end of weight sync: new weights into a running vLLM engine (vllm 0.32), tied
embeddings kept right, for a folder (`reload_vllm_weights`) and for a streamed update
(`finish_transferred_update`). `rft.rollout.vllm_engine` calls these inside the rollout actor;
`WeightSyncExtension` runs inside vLLM's worker processes.

    from rft.models.loading import checkpoint_state_dict, write_checkpoint_folder
    from rft.weights.vllm_worker import WORKER_EXTENSION, reload_vllm_weights

    llm = vllm.LLM(model=model_dir, worker_extension_cls=WORKER_EXTENSION, ...)
    folder = write_checkpoint_folder(checkpoint_state_dict(model), "/dev/shm/rft-weights", model_dir)
    reload_vllm_weights(llm, folder)

`LLM.collective_rpc("reload_weights", weights_path=..., is_checkpoint_format=True)` reloads layer by
layer and re-runs each *loaded* layer's post-load processing. With tied word embeddings (the tiny
models, Qwen2-VL-2B, Qwen2.5-VL-3B) no weight is loaded into the LM head itself (its name is
skipped), so on the CPU backend the LM head keeps the packed copy of the old embedding that its
post-load step made for the GEMM kernel (`dispatch_cpu_unquantized_gemm`): token embeddings are
new, logits come from the old weights, silently (measured: log-probs off by 0.1-5 nats against
transformers with the same weights). `retie_word_embeddings`, run inside each worker, re-ties the
LM head to the embedding and re-runs its post-load step. tests/models/test_model_vllm.py checks
vLLM's log-probs against transformers' after a reload, in both engine modes.

Running it in the workers: a multiprocess engine refuses to ship a Python function to its workers
("Object of type function is not serializable", unless VLLM_ALLOW_INSECURE_SERIALIZATION=1), so
the engine is started with `worker_extension_cls=WORKER_EXTENSION`, which adds
`rft_reload_weights` to every worker, called by name. Without the extension the re-tie is sent
as a function, which works for an in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0) only.

The encoder cache (vision embeddings of earlier images) and the prefix cache hold results of the
old weights and are reset afterwards; without the encoder-cache reset the next image request
fails with "Encoder cache miss".
"""

from __future__ import annotations

import logging
import os

import rft.weights.gloo  # noqa: F401  registers the gloo weight-transfer backend in vLLM workers

# Every reload warns that rotary embeddings, norms fused into other layers and the tied LM head
# "failed to load weights": they have none in the checkpoint. Four lines per training step.
logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").setLevel(logging.ERROR)


def retie_word_embeddings(worker) -> int:
    """Worker side: point every tied LM head back at its embedding. Returns how many were tied."""
    model = worker.model_runner.model
    tied = 0
    for module in model.modules():
        config = getattr(module, "config", None)
        head, inner = getattr(module, "lm_head", None), getattr(module, "model", None)
        embed = getattr(inner, "embed_tokens", None)
        if head is None or embed is None or not getattr(config, "tie_word_embeddings", False):
            continue
        if head.weight is not embed.weight:
            head.weight = embed.weight
        method = getattr(head, "quant_method", None)
        if method is not None:
            method.process_weights_after_loading(head)  # re-pack the new weight (CPU GEMM)
        tied += 1
    return tied


class WeightSyncExtension:
    """Mixed into vLLM's workers by `LLM(..., worker_extension_cls=WORKER_EXTENSION)`."""

    def rft_torch_threads(self) -> int:
        """The threads this worker's model runs with (a method, so multiprocess engines can call it)."""
        import torch

        return torch.get_num_threads()

    def rft_reload_weights(self, weights_path: str) -> int:
        self.reload_weights(weights_path=weights_path, is_checkpoint_format=True)
        return retie_word_embeddings(self)

    def rft_finish_weight_update(self) -> int:
        """`finish_weight_update` of the weight-transfer API, then the same re-tie: the
        transfer skips the tied head exactly as a folder reload does. Returns the bytes this
        worker received in the update (an adapter's, when one came)."""
        self.finish_weight_update()
        engine = self.weight_transfer_engine
        if not getattr(engine, "received_adapter", False):
            retie_word_embeddings(self)
        return int(getattr(engine, "received_bytes", 0))


WORKER_EXTENSION = f"{__name__}.{WeightSyncExtension.__qualname__}"


def has_extension(llm) -> bool:
    return llm.llm_engine.vllm_config.parallel_config.worker_extension_cls == WORKER_EXTENSION


def reload_vllm_weights(llm, folder: str | os.PathLike) -> None:
    """Load the checkpoint-format weights in `folder` into `llm` and drop caches of old weights.

    `folder` should be a complete checkpoint (see `rft.models.loading.write_checkpoint_folder`):
    the reload re-points the engine's model config at it for good.
    """
    if has_extension(llm):
        llm.collective_rpc("rft_reload_weights", kwargs={"weights_path": str(folder)})
    else:
        llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder), "is_checkpoint_format": True})
        try:
            llm.collective_rpc(retie_word_embeddings)
        except TypeError as err:  # multiprocess engine: functions are not serialisable
            raise RuntimeError(
                f"start the vLLM engine with worker_extension_cls={WORKER_EXTENSION!r} so that reloaded weights can be re-tied in its workers ({err})"
            ) from err
    drop_stale_caches(llm)


def finish_transferred_update(llm) -> int:
    """Close a weight-transfer update (`start_weight_update`, `update_weights` done) in `llm`;
    the bytes its first worker received (every worker receives the whole update)."""
    received = llm.collective_rpc("rft_finish_weight_update")
    drop_stale_caches(llm)
    return int(received[0]) if received else 0


def drop_stale_caches(llm) -> None:
    llm.llm_engine.reset_encoder_cache()
    llm.reset_prefix_cache()
