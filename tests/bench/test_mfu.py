"""The RL benchmark's derived columns: MFU, orchestration share, speed-up, and how they reach
the rows and tables (rft.bench.mfu, rft.bench.rl). No launches: rows are written by hand."""

from __future__ import annotations

import math

import pytest

from rft.bench import mfu, rl, runs


def test_learner_flops_is_six_n_tokens():
    assert mfu.learner_flops(500_000, 1_000.0) == 6 * 500_000 * 1_000.0
    assert math.isnan(mfu.learner_flops(None, 1_000.0))
    assert math.isnan(mfu.learner_flops(500_000, float("nan")))


def test_mfu_is_achieved_over_peak():
    assert mfu.mfu(3e9, 1.2e11) == pytest.approx(0.025)
    assert math.isnan(mfu.mfu(3e9, 0.0))
    assert math.isnan(mfu.mfu(float("nan"), 1e11))


def test_orchestration_is_step_minus_phases_never_negative():
    assert mfu.orchestration_s(10.0, [5.0, 0.5, 1.0, 2.0, 0.5]) == pytest.approx(1.0)
    assert mfu.orchestration_s(3.0, [2.0, 2.0]) == 0.0  # phases overlapping the step: clamp
    assert mfu.orchestration_s(4.0, [1.0, float("nan")]) == pytest.approx(3.0)  # unknown phase counts 0
    assert math.isnan(mfu.orchestration_s(float("nan"), [1.0]))
    assert mfu.share(1.0, 4.0) == 0.25 and math.isnan(mfu.share(1.0, 0.0))


def test_speedup_is_peer_over_rft():
    assert mfu.speedup(12.7, 2.54) == pytest.approx(5.0)
    assert math.isnan(mfu.speedup(float("nan"), 2.0)) and math.isnan(mfu.speedup(12.7, 0.0))


def test_matmul_peak_is_positive_and_finite():
    peak = mfu.matmul_peak_flops("float32", n=128, repeats=2)
    assert math.isfinite(peak) and peak > 0


def test_trainable_parameters_skip_the_frozen_vision_tower(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"model.embed_tokens.weight": torch.zeros(10, 4), "visual.patch_embed.proj.weight": torch.zeros(3, 5)}, str(tmp_path / "model.safetensors"))
    assert mfu.trainable_parameters(tmp_path, freeze_vision=True) == 40
    assert mfu.trainable_parameters(tmp_path, freeze_vision=False) == 55


def _step(step, generate, update, logprob=1.0, reward=0.0, sync=0.5):
    return {
        "timing/step_s": step,
        "timing/generate_s": generate,
        "timing/reward_s": reward,
        "timing/logprob_s": logprob,
        "timing/update_s": update,
        "timing/sync_s": sync,
        "learner/tokens_per_s": 1000.0,
    }


def _summary(rows):
    launch = runs.LaunchResult("run", [], 0, 30.0, 1.0, 2.0, 40.0, {"RolloutWorker": 1.25, "driver+ray": 0.5})
    return rl.summarize("tiny", "vllm", launch, rows)


def test_orchestration_share_skips_the_warmup_step():
    rows = [_step(30.0, 1.0, 1.0), _step(10.0, 5.0, 2.0), _step(10.0, 6.0, 1.5)]  # warm-up: 26.5 s of start-up
    # after warm-up: (10 - 8.5) / 10 and (10 - 9.0) / 10 -> median 0.125
    assert rl.orchestration_share(rows) == pytest.approx(0.125)
    assert _summary(rows)["orchestration %"] == pytest.approx(12.5)


def test_row_gets_actor_memory_mfu_and_speedup():
    summary = _summary([_step(20.0, 10.0, 5.0), _step(4.0, 2.0, 1.0)])
    assert summary["rollout RSS GB"] == 1.25 and summary["driver RSS GB"] == 0.5
    rl.add_compute(summary, trainable=500_000, peak_flops=1e11)
    assert summary["learner GFLOP/s"] == pytest.approx(6 * 500_000 * 1000.0 / 1e9)
    assert summary["MFU %"] == pytest.approx(100 * 3e9 / 1e11)
    rl.add_speedup(summary, {"summary": {"step s": 12.0, "peak RSS GB": 2.0}})
    assert summary["speed-up x"] == pytest.approx(3.0) and summary["peer RSS GB"] == 2.0
    rl.add_speedup(summary, None)
    assert math.isnan(summary["speed-up x"])


def test_peer_steps_pair_step_and_generation_times():
    rows = rl.peer_steps({"step_s": [9.0, 3.0, 2.0], "generate_score_s": [6.0, 2.0]})
    assert rows == [{"step_s": 9.0, "generate_score_s": 6.0}, {"step_s": 3.0, "generate_score_s": 2.0}, {"step_s": 2.0}]
    assert rl.peer_steps({}) == []


def test_comparison_table_shows_speedup_and_placeholders(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "260")
    summary = _summary([_step(20.0, 10.0, 5.0), _step(4.0, 2.0, 1.0)])
    rl.add_compute(summary, 500_000, 1e11)
    rl.add_speedup(summary, {"summary": {"step s": 12.0, "peak RSS GB": 2.0}})
    peer = {
        "summary": {
            "size": "tiny",
            "engine": "peer: trl",
            "sync": "-",
            "ok": True,
            "step s": 12.0,
            "generate+score s": 9.0,
            "update s": 3.0,
            "learner GFLOP/s": float("nan"),
            "MFU %": float("nan"),
            "peak RSS GB": 2.0,
            "cpu s": 20.0,
            "load": "1-2",
        }
    }
    rl.print_comparison([{"summary": summary}], [peer], {"tiny": 800_000}, "trl")
    out = capsys.readouterr().out
    assert "rft vs trl" in out and "speed-up x" in out and "3.00" in out and "0.8 M" in out
    assert "peer: trl" in out and "12.00" in out and "-" in out


def test_number_cells():
    assert rl._num(float("nan")) == "-" and rl._num("x") == "-"
    assert rl._num(1234.4) == "1,234" and rl._num(3.14159) == "3.14"


def test_peer_row_from_its_result():
    result = {
        "step_s": [9.0, 3.0, 5.0],
        "generate_score_s": [6.0, 2.0, 3.0],
        "peak_rss_gb": 1.8,
        "logs": [{"completions/mean_length": 32.0}, {"completions/mean_length": 32.0}, {"completions/mean_length": 30.0}],
    }
    row = rl.summarize_peer("tiny", "trl", result, tokens_per_step=32)
    assert row["ok"] and row["steps"] == 3 and row["engine"] == "peer: trl"
    assert row["step s"] == 4.0 and row["generate+score s"] == 2.5 and row["update s"] == 1.5
    assert row["learner tok/s"] == pytest.approx(32 * 31.0 / 1.5) and row["peak RSS GB"] == 1.8
    failed = rl.summarize_peer("tiny", "trl", {}, tokens_per_step=32)
    assert not failed["ok"] and math.isnan(failed["step s"]) and math.isnan(failed["learner tok/s"])
