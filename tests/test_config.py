"""The configuration tree: every combination composes; bad keys, types and choices fail by name."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from rft.config import ConfigError, validate
from rft.paths import CONF_DIR

TASKS = ["counting", "structure", "spatial", "classification", "detection", "grounding"]
MODELS = ["demo_qwen2vl", "tiny_qwen2vl", "tiny_qwen25vl", "qwen2vl_2b", "qwen2vl_7b", "qwen25vl_3b", "qwen25vl_7b"]
STAGES = ["ans_sft", "cot_sft", "rl", "zero", "reason_rft"]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("task", TASKS)
def test_every_model_and_stage_composes_and_validates(task):
    for model, stage in itertools.product(MODELS, STAGES):
        cfg = _compose([f"task={task}", f"model={model}", f"stage={stage}"])
        validate(cfg)
        assert cfg.task.name == task and cfg.model.name == model and cfg.stage.name == stage
        assert cfg.reward.name == task, "the reward group follows the task by default"


def test_defaults_are_the_seeds():
    cfg = _compose(["model=tiny_qwen2vl"])  # the embedded demo model sets its own small-model values
    assert cfg.stage.name == "reason_rft" and cfg.stage.sft_samples == 1600
    assert cfg.algo.beta == 0.04 and cfg.algo.lr == 1e-6 and cfg.algo.kl_estimator == "k3"
    assert (cfg.rollout.temperature, cfg.rollout.top_p, cfg.rollout.top_k) == (0.9, 0.9, 50)
    assert (cfg.sft.lr, cfg.sft.warmup_steps, cfg.sft.weight_decay) == (1e-5, 100, 0.1)
    assert (cfg.eval.temperature, cfg.eval.max_tokens) == (0.1, 768)


def test_the_embedded_default_is_the_cpu_demo():
    cfg = _compose([])
    assert cfg.model.name == "demo_qwen2vl" and cfg.model.path == "tiny:qwen2vl" and cfg.stage.name == "reason_rft"
    assert cfg.sft.max_steps is not None and cfg.trainer.max_steps <= 50, "a few minutes on 2 cores"
    real = _compose(["model=qwen2vl_2b"])
    assert real.sft.lr == 1e-5 and real.algo.lr == 1e-6 and real.trainer.max_steps == 100


def test_model_conventions():
    assert _compose(["model=qwen2vl_7b"]).model.box_format == "norm1000"
    q25 = _compose(["model=qwen25vl_7b"]).model
    assert q25.box_format == "abs" and q25.path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert q25.max_pixels == 480000 and q25.min_pixels == 3136


def test_issue_keys_are_overridable():
    keys = {
        "model.path": "/tmp/m",
        "model.max_pixels": 1000,
        "model.min_pixels": 100,
        "trainer.max_steps": 3,
        "trainer.seed": 7,
        "trainer.save_every": 2,
        "trainer.prompts_per_step": 4,
        "trainer.resume": "never",
        "rollout.engine": "hf",
        "rollout.num_workers": 2,
        "rollout.max_tokens": 32,
        "learner.num_workers": 2,
        "learner.zero_stage": 2,
        "algo.num_generations": 4,
        "algo.lr": 3e-6,
        "algo.beta": 0.0,
        "data.train": "/tmp/d.json",
        "data.image_root": "/tmp",
        "stage.sft_samples": 10,
        "cluster.address": "auto",
    }
    cfg = _compose([f"{k}={v}" for k, v in keys.items()])
    for key, value in keys.items():
        assert OmegaConf.select(cfg, key) == value, key


def test_unknown_choice_lists_valid_options():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["task=nope"])
    text = str(err.value)
    assert "task/nope" in text and "counting" in text and "grounding" in text


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["algo.lr=abc"])
    assert "algo.lr" in str(err.value.__cause__) and "Float" in str(err.value.__cause__)


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["trainer.max_stpes=3"])
    assert "max_stpes" in str(err.value.__cause__)


def test_enum_choice_lists_choices():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["rollout.engine=sglang"])
    cause = str(err.value.__cause__)
    assert "rollout.engine" in cause and "vllm" in cause and "hf" in cause


@pytest.mark.parametrize(
    "override, key, valid",
    [
        ("data.format=parquet", "data.format", "sharegpt"),
        ("stage.rl_data=some", "stage.rl_data", "rest"),
        ("sft.scheduler=step", "sft.scheduler", "cosine"),
        ("algo.lr_scheduler=step", "algo.lr_scheduler", "constant"),
        ("sft.prompt=sft", "sft.prompt", "cot_sft"),
        ("eval.prompt=cot", "eval.prompt", "zero_shot"),
        ("learner.backend=mpi", "learner.backend", "gloo"),
        ("algo.name=ppo", "algo.name", "dapo"),
        ("algo.aggregation=sum", "algo.aggregation", "token_mean"),
        ("tracking.wandb_mode=cloud", "tracking.wandb_mode", "offline"),
        ("tracking.sinks=[jsonl,tensorboard]", "tracking.sinks", "mlflow"),
        ("eval.splits=[id,test]", "eval.splits", "ood"),
    ],
)
def test_bad_choice_is_rejected_at_composition_naming_the_key(override, key, valid):
    with pytest.raises(ConfigCompositionException) as err:
        _compose([override])
    cause = str(err.value.__cause__)
    assert f"full_key: {key}" in cause and valid in cause


def test_choices_are_str_enums_after_composition():
    from enum import StrEnum

    cfg = _compose([])
    for key in (
        "stage.name",
        "data.format",
        "sft.prompt",
        "sft.scheduler",
        "algo.name",
        "algo.lr_scheduler",
        "learner.backend",
        "tracking.wandb_mode",
        "eval.prompt",
        "model.dtype",
        "rollout.engine",
    ):
        value = OmegaConf.select(cfg, key)
        assert isinstance(value, StrEnum) and str(value) == value.value, key
    assert all(isinstance(sink, StrEnum) for sink in cfg.tracking.sinks)


def test_no_enum_value_helper_survives():
    import rft.config

    assert not hasattr(rft.config, "enum_value")


@pytest.mark.parametrize(
    "override, key",
    [
        ("learner.zero_stage=1", "learner.zero_stage"),
        ("algo.num_generations=1", "algo.num_generations"),
        ("+reward.weights.bogus=1.0", "reward.weights.bogus"),
        ("+model._target_=os.system", "model._target_"),
        ("rollout.weight_sync=nccl", "rollout.weight_sync"),  # no GPUs configured
        ("rollout.weight_sync=gloo rollout.engine=hf", "rollout.weight_sync"),
        ("rollout=gpu learner=gpu rollout.weight_sync=ipc", "rollout.weight_sync"),  # not colocated
    ],
)
def test_cross_key_validation_names_the_key(override, key):
    cfg = _compose(override.split())
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_outputs_root_is_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("RFT_OUTPUTS", "rel/outputs")
    cfg = _compose([])
    assert cfg.outputs_root.startswith("/") and cfg.outputs_root.endswith("rel/outputs")


def test_cli_help_lists_groups(repo_root):
    out = subprocess.run([sys.executable, "-m", "rft.launch", "--help"], capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 0
    for group in ["task:", "model:", "stage:", "reward:", "algo:", "rollout:", "learner:", "cluster:", "tracking:"]:
        assert group in out.stdout
    assert "reason_rft" in out.stdout and "tiny_qwen2vl" in out.stdout


def test_cli_error_happens_before_ray(repo_root):
    out = subprocess.run([sys.executable, "-m", "rft.launch", "algo.lr=abc"], capture_output=True, text=True, cwd=repo_root)
    assert out.returncode != 0
    assert "algo.lr" in out.stderr and "ray" not in out.stderr.lower()
