"""Shared fixtures for tests/models: the two seed-0 tiny models and a test image maker.

The tiny models come from `ensure_tiny_model`, i.e. the shared cache under RFT_CACHE
(tests/conftest.py points it at `<repo>/.cache`): builds are deterministic, named by a hash of their recipe and published
atomically, so reusing them across test runs (and with other test packages) is safe. The fresh
build path is covered by test_tiny_build.py (a private cache, two racing processes). No
environment variable is changed here: a session-wide change would leak into other packages' tests.

Run: `.venv/bin/python -m pytest tests/models -q` (add `-m 'not slow'` to skip the vLLM tests).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dirs():
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
