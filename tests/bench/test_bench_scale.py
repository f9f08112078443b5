"""`python -m rft.bench scale`: the run it launches composes and validates as asked (the run
itself is a manual benchmark: ~19 GiB and minutes on 2 cores), and its summary reads a run back."""

from __future__ import annotations

from rft_test_helpers import compose

from rft.bench.runs import LaunchResult
from rft.bench.scale import scale_overrides, summarize


def test_scale_run_is_two_steps_of_the_2b_build_with_lora():
    cfg = compose(scale_overrides("qwen2vl_2b", 8, 2))
    assert cfg.model.path == "arch:qwen2vl_2b" and cfg.learner.lora.rank == 8
    assert (cfg.trainer.prompts_per_step, cfg.algo.num_generations, cfg.rollout.max_tokens, cfg.trainer.max_steps) == (2, 2, 16, 2)
    assert (cfg.rollout.num_workers, cfg.learner.num_workers, str(cfg.rollout.engine)) == (1, 1, "vllm")


def test_summary_has_peaks_steps_and_sync_bytes():
    launch = LaunchResult("run", [], 0, 100.0, 0.0, 0.0, peak_rss_gb={"RolloutWorker": 6.0, "LearnerWorker": 10.0})
    rows = [{"step": 1, "timing/step_s": 30.0, "timing/sync_s": 0.5, "sync/mb_per_s": 0.4}, {"step": 1, "eval/id/score": 0.0}]
    summary = summarize(launch, rows)
    assert summary["ok"] and summary["peak RSS GB"]["LearnerWorker"] == 10.0
    [step] = summary["steps"]
    assert step["step"] == 1 and step["step s"] == 30.0 and step["sync MB"] == 0.2
