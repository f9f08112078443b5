"""Where rft keeps what it builds: tiny models, synthetic data sets, and run outputs.

`RFT_CACHE` (default `~/.cache/rft`) holds deterministic, rebuildable assets; `RFT_OUTPUTS`
(default `<cwd>/outputs`, made absolute at launch so it survives Ray Jobs' throwaway working
directories) holds runs.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("RFT_CACHE", "~/.cache/rft")).expanduser().resolve()


def models_cache() -> Path:
    return cache_root() / "models"


def data_cache() -> Path:
    return cache_root() / "data"
