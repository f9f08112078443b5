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


# A run whose weights move at every step: the random tiny model scores 0 on counting (no
# advantage, no gradient), but the length term differs between any two completions, lr 1e-3
# changes the weights, and fp32 on both sides makes the engine/learner log-prob gap measurable.
MOVING = ["+reward.weights.length=1.0", "algo.lr=1e-3", "model.dtype=float32"]

# Mean |engine - learner| log-prob of the sampled tokens, both in fp32: measured 2.1-2.6e-7 per
# step (vLLM and HF engines). A planted sync that exported but never loaded gave 0.35 at step 2.
LOGPROB_GAP_TOL = 1e-4
# The same gap with both sides in bf16 (the default dtype on this CPU): measured 0.8-1.2e-3 over
# 30 steps of 24 tokens, 1.7-2.0e-3 over 64-token completions; a sync that never loads moves it
# by ~0.35 at lr 1e-3.
LOGPROB_GAP_TOL_BF16 = 1e-2


def assert_every_step_moves_and_is_synced(rows: list[dict], steps: list[int], synced: bool = True, gap_tol: float = LOGPROB_GAP_TOL) -> None:
    """Every step of `rows` (a run's metrics) trained on a gradient, and (`synced`) the engine
    sampled with the learner's weights: at step 1 the weights both loaded, after that the ones
    the previous step's sync pushed. (`synced=False` for off-policy runs, whose old log-probs are
    the engine's own, so the gap reads 0 by construction.)"""
    steps_rows = [row for row in rows if "reward/mean" in row]
    assert [row["step"] for row in steps_rows] == steps
    for row in steps_rows:
        assert row["grad_norm"] > 0 and row["skipped_update"] == 0, row
        if synced:
            assert row["rollout/logprob_gap"] < gap_tol, row


def read_metrics(run_dir) -> list[dict]:
    import json
    from pathlib import Path

    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def no_kl_loss():
    """GRPO's clipped loss without KL or entropy terms: what the weight-sync tests update with."""
    from rft.algo.config import Aggregation, KLEstimator, LossSettings

    return LossSettings(
        beta=0.0,
        kl_estimator=KLEstimator.k3,
        clip_eps_low=0.2,
        clip_eps_high=0.2,
        aggregation=Aggregation.seq_mean_token_mean,
        entropy_coef=0.0,
        max_completion_len=None,
        tis_cap=0.0,
    )


def counting_prompt(model_dir, image, min_pixels: int = 3136, max_pixels: int = 50176):
    """One chat-formatted counting prompt with `image`, for scoring a fixed completion."""
    from rft.models.loading import load_processor
    from rft.types import PromptItem

    processor = load_processor(model_dir, min_pixels=min_pixels, max_pixels=max_pixels)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many objects are there?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return PromptItem(uid="r0", group=0, prompt_text=text, images=[image], solution="2")


def max_gap(a: list[float], b: list[float]) -> float:
    """The largest |a_i - b_i| of two equally long, non-empty log-prob lists."""
    assert len(a) == len(b) > 0
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def tiny_learner_settings(model_path, **changes):
    """LearnerSettings for a learner group built directly in a test (fp32, sdpa, constant lr, no LoRA)."""
    from rft.learner.worker import LearnerSettings

    base = dict(
        model_path=model_path,
        min_pixels=3136,
        max_pixels=50176,
        zero_stage=3,
        dtype="float32",
        attn_implementation="sdpa",
        gradient_checkpointing=None,
        freeze_vision=True,
        lr=1e-6,
        weight_decay=0.0,
        lr_scheduler="constant",
        warmup_steps=0,
        total_steps=1,
        max_grad_norm=1.0,
        micro_batch_tokens=120,
        need_reference=True,
        backend="auto",
        seed=0,
        shared_prefix=True,
        lora=None,
    )
    return LearnerSettings(**{**base, **changes})


# A learner group and a vLLM engine in fp32 with a large constant learning rate, so that one
# update visibly moves the engine's log-probs after a sync (the weight-sync tests).
ONE_UPDATE_MOVES = [
    *TINY_RL,
    "model.dtype=float32",
    "learner.zero_stage=3",
    "learner.micro_batch_tokens=4096",
    "algo.lr=1e-2",
    "algo.lr_scheduler=constant",
    "algo.warmup_steps=0",
    "algo.weight_decay=0.0",
    "rollout.max_model_len=1024",
    "rollout.engine=vllm",
]
