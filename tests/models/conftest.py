"""Shared fixtures for tests/models: a private RFT_CACHE and the two seed-0 tiny models built once.

Run: `.venv/bin/python -m pytest tests/models -q` (add `-m 'not slow'` to skip the vLLM tests).
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def rft_cache(tmp_path_factory):
    """Point RFT_CACHE at a fresh folder so tiny models are built by these tests, not reused."""
    old = os.environ.get("RFT_CACHE")
    os.environ["RFT_CACHE"] = str(tmp_path_factory.mktemp("rft-cache"))
    yield os.environ["RFT_CACHE"]
    if old is None:
        os.environ.pop("RFT_CACHE", None)
    else:
        os.environ["RFT_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_dirs(rft_cache):
    """{arch: folder} of the cached seed-0 `tiny` builds (ensure_tiny_model)."""
    from rft.models.tiny import ARCHS, ensure_tiny_model

    return {arch: ensure_tiny_model(arch, "tiny") for arch in ARCHS}


@pytest.fixture
def make_image():
    """make_image(width, height, color) -> a PIL image: a colored square on a light background."""
    from PIL import Image, ImageDraw

    def make(width=448, height=336, color=(220, 30, 30)):
        img = Image.new("RGB", (width, height), (250, 250, 250))
        ImageDraw.Draw(img).rectangle([width // 10, height // 10, width // 2, height // 2], fill=color)
        return img

    return make
