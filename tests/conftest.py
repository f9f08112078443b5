"""Session-wide test set-up: environment for CPU runs, and shared fixtures.

Heavy assets (tiny models, synthetic data sets) are built once per session into the cache named
by RFT_CACHE (the Makefile points it at `<repo>/.cache`), and a single local Ray cluster is shared
by every test that needs one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("RFT_CACHE", str(REPO / ".cache"))
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RFT_STRICT_REWARDS", "1")  # a crashing reward fails its test instead of scoring 0


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole session (trainers attach to it instead of starting their own),
    started as a run starts one: on loopback, with token authentication."""
    import ray

    from rft.placement.cluster import start_local

    if not ray.is_initialized():
        start_local(num_cpus=4)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from rft.models.loading import resolve_model_path

    return str(resolve_model_path("tiny:qwen2vl"))


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory) -> str:
    from PIL import Image, ImageDraw

    path = tmp_path_factory.mktemp("img") / "scene.png"
    img = Image.new("RGB", (112, 112), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse((10, 10, 40, 40), fill="red")
    draw.rectangle((60, 60, 90, 95), fill="blue")
    img.save(path)
    return str(path)


@pytest.fixture
def placement(ray_cluster):
    """`placement(bundles)` reserves a placement group that is removed after the test, so the
    shared cluster's CPUs are free again for the next one."""
    from ray.util.placement_group import remove_placement_group

    from rft.placement.cluster import reserve

    groups = []

    def make(bundles):
        groups.append(reserve(bundles, timeout_s=60))
        return groups[-1]

    yield make
    for group in groups:
        remove_placement_group(group)
