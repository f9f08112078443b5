"""Helpers shared by test modules (importable thanks to `pythonpath = ["tests"]`)."""

from __future__ import annotations


def compose(overrides: list[str]):
    """The run configuration for `overrides`, composed and validated as `rft.launch` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from rft.config import validate
    from rft.paths import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    validate(cfg)
    return cfg


# A tiny RL job: two prompts x four samples, short completions, small synthetic data.
TINY_RL = [
    "stage=rl",
    "task=counting",
    "model=tiny_qwen2vl",
    "trainer.prompts_per_step=2",
    "algo.num_generations=4",
    "rollout.max_tokens=24",
    "data.synth_n_train=16",
    "data.synth_n_test=8",
    "tracking=jsonl",
    "trainer.progress=false",
]

# Counting with one or two objects: short chains of thought, so a few dozen COT-SFT steps teach
# the tiny model the answer format (measured: format 100% on ID and OOD after 60 steps).
EASY_COUNTING = ["++task.synth.max_objects=2", "++task.synth.ood_min_objects=3", "++task.synth.ood_max_objects=4"]


def read_metrics(run_dir) -> list[dict]:
    import json
    from pathlib import Path

    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
