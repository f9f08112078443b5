"""The composed default configuration, checked in: a change to any default shows up in review.

`tests/snapshots/default_config.yaml` is what `python -m rft.launch --cfg job` composes with no
arguments (interpolations left as written, so the file does not depend on this machine). After
an intended change to a default, rewrite it with

    RFT_UPDATE_SNAPSHOT=1 python -m pytest tests/test_config_snapshot.py
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf
from rft_test_helpers import compose

SNAPSHOT = Path(__file__).parent / "snapshots" / "default_config.yaml"


def test_the_default_config_matches_its_snapshot() -> None:
    composed = OmegaConf.to_yaml(compose([]))
    if os.environ.get("RFT_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(composed)
    assert composed == SNAPSHOT.read_text(), (
        f"the composed default config differs from {SNAPSHOT}; if the change is intended, rewrite the "
        "snapshot with RFT_UPDATE_SNAPSHOT=1 python -m pytest tests/test_config_snapshot.py and review the diff"
    )
