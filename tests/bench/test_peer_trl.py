"""The TRL peer of the RL benchmark (rft.bench.peer_trl): the rows it trains on are rft's own
prompts and images, its reward is rft's, and (slow, needs the `bench` extra) one real
GRPOTrainer step on the tiny model writes a result with timed steps and its memory."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rft.bench import peer_trl

REPO = Path(__file__).resolve().parents[2]


def test_completion_text_reads_both_trl_formats():
    assert peer_trl.completion_text([{"role": "assistant", "content": "<answer>3</answer>"}]) == "<answer>3</answer>"
    assert peer_trl.completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]) == "ab"
    assert peer_trl.completion_text("plain") == "plain"


def test_rows_and_reward_come_from_rfts_run_config():
    cfg = peer_trl.compose_config("tiny", steps=2, prompts=4, max_tokens=32)
    assert cfg.algo.num_generations == 8 and cfg.rollout.max_tokens == 32 and cfg.algo.beta == pytest.approx(0.04)
    rows = peer_trl.peer_rows(cfg)
    assert len(rows) == cfg.data.synth_n_train
    (message,) = rows[0]["prompt"]
    assert message["role"] == "user" and [part["type"] for part in message["content"]] == ["image", "text"]
    assert rows[0]["image"].mode == "RGB" and rows[0]["solution"].isdigit()
    reward = peer_trl.make_reward(cfg)
    right = [{"role": "assistant", "content": f"<think>count</think><answer>{rows[0]['solution']}</answer>"}]
    wrong = [{"role": "assistant", "content": "no idea"}]
    scores = reward(prompts=[None, None], completions=[right, wrong], solution=[rows[0]["solution"]] * 2)
    assert scores[0] > scores[1]


@pytest.mark.slow
def test_one_trl_step_on_the_tiny_model(tmp_path):
    pytest.importorskip("trl", reason="TRL is the optional `bench` extra (pip install -e '.[bench]'); CI does not install it")
    command = peer_trl.peer_command("tiny", steps=1, prompts=2, max_tokens=8, out=tmp_path)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / peer_trl.RESULT_NAME).read_text())
    assert result["peer"] == "trl" and result["settings"]["generations"] == 8
    assert len(result["step_s"]) == 1 and result["step_s"][0] > 0
    assert len(result["generate_score_s"]) == 1 and 0 < result["generate_score_s"][0] <= result["step_s"][0]
    assert 0 < result["trainable_parameters"] < result["parameters"]  # the vision tower is frozen
    assert result["peak_rss_gb"] > 0.1
    assert any(row.get("completions/mean_length", 0) > 0 for row in result["logs"])
