"""`trainer.deterministic`: on by default for CPU runs, off with GPUs, and the environment it
gives the actors (the end-to-end check is tests/trainer/test_determinism.py)."""

import pytest
from rft_test_helpers import compose

from rft.placement.determinism import actor_env, is_deterministic, rollout_env


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], True),  # CPU only
        (["learner.gpus_per_worker=1"], False),
        (["rollout.gpus_per_worker=1"], False),
        (["learner.gpus_per_worker=1", "trainer.deterministic=true"], True),
        (["trainer.deterministic=false"], False),
    ],
)
def test_default_follows_the_devices(overrides, expected):
    assert is_deterministic(compose(["stage=rl", "model=tiny_qwen2vl", *overrides])) is expected


def test_cpu_actors_get_reproducible_mkl_and_an_in_process_engine():
    assert actor_env(True, on_gpu=False) == {"MKL_CBWR": "AUTO,STRICT"}
    assert rollout_env(True, on_gpu=False) == {"MKL_CBWR": "AUTO,STRICT", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def test_gpu_actors_get_cublas_workspace_and_keep_a_multiprocess_engine():
    assert actor_env(True, on_gpu=True) == rollout_env(True, on_gpu=True) == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def test_off_changes_nothing():
    assert actor_env(False, on_gpu=False) == rollout_env(False, on_gpu=False) == rollout_env(False, on_gpu=True) == {}
