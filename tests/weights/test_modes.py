"""`rollout.weight_sync`: what `auto` resolves to, which modes the rest of the configuration
rules out (ConfigError naming the key, raised by `rft.config.validate` too), and the vLLM
backend an engine is started with for each mode."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from rft.config import ConfigError, validate
from rft.paths import CONF_DIR
from rft.weights.modes import GLOO_BACKEND, WeightSync, resolve_mode, validate_mode, vllm_backend

GPUS = ["rollout=gpu", "learner=gpu"]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize(
    "overrides, mode",
    [
        ([], WeightSync.folder),
        (GPUS, WeightSync.nccl),
        (GPUS + ["cluster.colocate=true"], WeightSync.ipc),
        (GPUS + ["rollout.engine=hf"], WeightSync.folder),
        (["rollout=gpu"], WeightSync.folder),  # learners on CPU: nothing to broadcast over NCCL
        (["rollout.weight_sync=gloo"], WeightSync.gloo),
        (GPUS + ["rollout.weight_sync=folder"], WeightSync.folder),  # asked for: kept on GPUs too
    ],
)
def test_auto_is_nccl_or_ipc_only_on_gpu_vllm(overrides, mode):
    assert resolve_mode(_compose(overrides)) is mode


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (["rollout.weight_sync=nccl"], "nccl needs GPUs"),
        (["rollout.weight_sync=ipc"], "ipc needs GPUs"),
        (["rollout.weight_sync=gloo", "rollout.engine=hf"], "gloo streams weights into vLLM engines"),
        (GPUS + ["rollout.weight_sync=ipc"], "cluster.colocate=true"),
        (GPUS + ["rollout.weight_sync=nccl", "rollout.engine=hf"], "rollout.engine=hf takes weight_sync=folder"),
    ],
)
def test_a_mode_that_cannot_run_fails_naming_the_key(overrides, reason):
    cfg = _compose(overrides)
    for check in (validate_mode, validate):
        with pytest.raises(ConfigError, match=r"^rollout\.weight_sync: .*" + reason):
            check(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["rollout.weight_sync=gloo"],
        GPUS + ["rollout.weight_sync=nccl"],
        GPUS + ["cluster.colocate=true", "rollout.weight_sync=ipc"],
        GPUS + ["rollout.engine=hf"],
    ],
)
def test_modes_that_can_run_pass(overrides):
    validate_mode(_compose(overrides))


def test_each_streamed_mode_names_its_vllm_backend():
    assert [vllm_backend(mode) for mode in ("folder", "gloo", "nccl", "ipc")] == [None, GLOO_BACKEND, "nccl", "ipc"]
    assert GLOO_BACKEND == "rft_gloo"
