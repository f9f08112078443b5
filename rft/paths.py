"""Where rft keeps what it builds (tiny models, synthetic data sets, run outputs), where its
Hydra configuration lives, and which environment variables carry these settings to other
processes (Ray actors, Ray Jobs).

`RFT_CACHE` (default `~/.cache/rft`) holds deterministic, rebuildable assets; `RFT_OUTPUTS`
(default `<cwd>/outputs`, made absolute at launch so it survives Ray Jobs' throwaway working
directories) holds runs.
"""

from __future__ import annotations

import os
from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# Variables that actors and jobs need from the environment they were started from. Paths among
# them are made absolute before they leave this machine (`rft.jobs.runtime_env`).
FORWARDED_ENV = (
    "RFT_CACHE", "RFT_OUTPUTS", "RAY_AUTH_MODE", "VLLM_CPU_KVCACHE_SPACE", "DS_ACCELERATOR", "HF_HUB_OFFLINE",
    "HF_HOME", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI",
    "RFT_STRICT_REWARDS",
)  # fmt: skip
PATH_ENV = ("RFT_CACHE", "RFT_OUTPUTS", "HF_HOME")  # made absolute before they are forwarded


def cache_root() -> Path:
    return Path(os.environ.get("RFT_CACHE", "~/.cache/rft")).expanduser().resolve()


def models_cache() -> Path:
    return cache_root() / "models"


def data_cache() -> Path:
    return cache_root() / "data"


def run_dir_of_current_job() -> Path:
    """The output folder Hydra chose for the job running in this process."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir).resolve()
