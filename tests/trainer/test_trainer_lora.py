"""LoRA runs end to end on the tiny model (`learner.lora.rank=8`): GRPO with the HF rollout
engine (applies the adapter with PEFT; the vLLM engine's adapter serving is in
tests/weights/test_lora_sync.py), stopped and resumed; COT-SFT; both leave adapter checkpoints
that evaluation takes as merged models."""

from __future__ import annotations

import pytest
from rft_test_helpers import MOVING, TINY_RL, assert_every_step_moves_and_is_synced, compose, read_metrics

from rft.eval.targets import expand_entry
from rft.models.adapter import adapter_bytes
from rft.trainer import run

pytestmark = pytest.mark.slow
LORA = ["learner.lora.rank=8", "learner.lora.alpha=16"]


def test_grpo_with_lora_syncs_the_adapter_and_resumes(ray_cluster, tmp_path):
    common = TINY_RL + MOVING + LORA + ["rollout.engine=hf", "learner.zero_stage=2", "trainer.save_every=1", "algo.beta=0.04", "algo.lr=1e-2"]
    run(compose(common + ["trainer.max_steps=2"]), tmp_path)
    run(compose(common + ["trainer.max_steps=3", "trainer.resume=auto"]), tmp_path)
    rows = [row for row in read_metrics(tmp_path) if "reward/mean" in row]
    # every step trained the adapter and the engine sampled with the learner's (step 3: pushed on resume)
    assert_every_step_moves_and_is_synced(rows, [1, 2, 3])
    adapter = tmp_path / "checkpoints" / "step_3" / "adapter"
    assert not (adapter.parent / "hf").exists()
    for row in rows[1:]:  # a push moves the adapter file only: a few hundred kB, not the model
        assert row["sync/mb_per_s"] * row["timing/sync_s"] * 1e6 == pytest.approx(adapter_bytes(adapter), rel=1e-3), row
        assert row["kl"] > 0, row  # the reference (adapters off) differs from the trained policy
    [target] = expand_entry("eval.checkpoints", str(adapter.parent))
    assert target.checkpoint == "step_3" and (adapter.parent / "hf" / "config.json").is_file()


def test_cot_sft_with_lora(ray_cluster, tmp_path):
    sft = ["task=counting", "model=tiny_qwen2vl", "data.synth_n_train=16", "data.synth_n_test=4", "tracking=jsonl", "trainer.progress=false"]
    run(compose(sft + LORA + ["stage=cot_sft", "sft.lr=1e-2", "sft.warmup_steps=0", "sft.batch_size=4", "sft.max_steps=3"]), tmp_path)
    losses = [row["loss"] for row in read_metrics(tmp_path) if "loss" in row]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert adapter_bytes(tmp_path / "checkpoints" / "step_3" / "adapter") > 0
