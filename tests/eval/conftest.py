"""Fixtures for the evaluation tests: composed configs, a fake training run with two
checkpoints of the tiny model, and ONE evaluation session (rollout actors) per test module, so
vLLM starts once however many evaluations the module runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rft.paths import CONF_DIR

FAST = [
    "model=tiny_qwen2vl",
    "data.synth_n_train=8",
    "data.synth_n_test=4",
    "eval.limit=3",
    "eval.max_tokens=16",
    "eval.greedy=true",
    "rollout.max_model_len=1024",
    "tracking.sinks=[jsonl]",
]


def _compose(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[*FAST, f"outputs_root={tmp_path}", *overrides])


@pytest.fixture(scope="session")
def compose_cfg():
    """`compose_cfg(tmp_path, *overrides)`: the evaluation config the tests use (tiny model,
    small synthetic splits, short greedy answers, outputs under tmp_path)."""
    return _compose


@pytest.fixture(scope="module")
def eval_session(ray_cluster):
    """Rollout actors shared by a module's evaluations (started on first use), released after
    it so the CPUs go back to the session's one Ray for other modules' actors."""
    from rft.eval.session import EvalSession

    session = EvalSession()
    yield session
    session.close()


@pytest.fixture(scope="session")
def tiny_folder() -> str:
    from rft.models.loading import resolve_model_path

    return str(resolve_model_path("tiny:qwen2vl"))


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory, tiny_folder) -> Path:
    """A training run folder holding `checkpoints/step_1/hf` and `step_2/hf`: the tiny model
    saved twice with different weights, in checkpoint naming, as the trainer writes them."""
    import torch

    from rft.models.loading import checkpoint_state_dict, load_model, write_checkpoint_folder

    run = tmp_path_factory.mktemp("train_run")
    for step in (1, 2):
        model = load_model(tiny_folder, dtype="float32")
        generator = torch.Generator().manual_seed(step)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * (param.std() if param.numel() > 1 else 0.1) * 3)
        folder = run / "checkpoints" / f"step_{step}"
        write_checkpoint_folder(checkpoint_state_dict(model), folder / "hf", tiny_folder)
        (folder / "trainer_state.json").write_text(json.dumps({"step": step}))
    (run / "checkpoints" / "step_3.tmp" / "hf").mkdir(parents=True)  # an unfinished save: ignored
    return run
