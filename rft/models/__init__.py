"""Models for rft: Qwen2-VL / Qwen2.5-VL loading, checkpoint naming, and tiny random-weight builds.

- `rft.models.loading`: `resolve_model_path` (local folder, `tiny:<arch>[:<size>]`, `arch:<name>`, hub id),
  `load_model`, `load_processor` (pixel budget), `vllm_mm_processor_kwargs`,
  `checkpoint_state_dict`, `write_checkpoint_folder`, `ModelNotFoundError`.
- `rft.models.tiny`: `python -m rft.models.tiny --arch qwen2vl --out DIR`, `build_tiny_model`,
  `ensure_tiny_model` (cached under RFT_CACHE).
- `rft.models.arch`: `python -m rft.models.arch --name qwen2vl_2b`, `model.path=arch:<name>`:
  random-weight builds of the published Qwen2-VL-2B / Qwen2.5-VL-3B / 7B shapes (`PUBLISHED`).
- `rft.models.vocab`: the corpus the tiny tokenizer is trained on.

New weights into a running engine (weight sync) live in `rft.weights`.

Submodules import torch/transformers lazily; importing this package is cheap.
"""
