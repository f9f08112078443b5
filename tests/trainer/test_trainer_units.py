"""The trainer's pure pieces without Ray: the epoch sampler, the step rows, the result.json schema,
the optimised metric, the stage runner's status logic (with a stage object standing in for a
trainer; the real trainers run through the same runner in test_trainer_sft/rl), and the RL
controller's dynamic-sampling refills (with scripted generation rounds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rft.tracking.result import RESULT_FILE, Direction, Optimized, RunResult, read_result, write_result
from rft.trainer.metrics import RolloutCounts, StepTimes, rl_step_row, rollout_metrics, sft_step_row
from rft.trainer.sampler import EpochSampler
from rft.trainer.stage import RunStatus, optimized_target, pick_optimized, run_stage
from rft.types import Completion


# ---- sampler ------------------------------------------------------------------------------------
def test_sampler_visits_every_item_once_per_epoch_in_a_new_order():
    sampler = EpochSampler(list(range(10)), seed=3)
    first, second = sampler.take(10), sampler.take(10)
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert sampler.state() == {"epoch": 1, "position": 10}


def test_sampler_resumes_where_it_stopped_across_an_epoch_boundary():
    straight = EpochSampler(list("abcdefg"), seed=1)
    expected = straight.take(5) + straight.take(6)
    first = EpochSampler(list("abcdefg"), seed=1)
    head = first.take(5)
    resumed = EpochSampler(list("abcdefg"), seed=1)
    resumed.restore(json.loads(json.dumps(first.state())))
    assert head + resumed.take(6) == expected
    assert resumed.epoch == 1


def test_sampler_without_shuffle_and_with_nothing():
    assert EpochSampler([1, 2, 3], seed=0, shuffle=False).take(5) == [1, 2, 3, 1, 2]
    with pytest.raises(ValueError, match="nothing to sample"):
        EpochSampler([], seed=0)


# ---- step rows ----------------------------------------------------------------------------------
def _completion(group: int, total: float, tokens: int, finish: str = "stop") -> Completion:
    return Completion(
        group=group, sample=0, token_ids=[1] * tokens, text="", logprobs=[], finish_reason=finish, rewards={"total": total, "accuracy": total, "format": 1.0}
    )


def test_rollout_metrics_and_the_primary_reward():
    rows = rollout_metrics([_completion(0, 1.0, 4), _completion(0, 0.0, 8, "length")], max_tokens=8, weights={"format": 0.5, "accuracy": 1.0})
    assert rows["reward/mean"] == 0.5 and rows["accuracy/mean"] == 0.5 and rows["format/mean"] == 1.0
    assert (rows["response_length/max"], rows["response_length/clip_rate"]) == (8.0, 0.5)


def test_rl_row_renames_learner_statistics_and_keeps_counts_out_of_the_times():
    update = {"kl": 0.1, "loss": 0.5, "grad_norm": 2.0, "lr": 1e-6, "skipped_update": 0.0, "rollout_logprob_gap": 0.01}
    times = StepTimes(generate_s=2.0, reward_s=0.5, logprob_s=1.0, update_s=4.0, sync_s=0.5, step_s=8.0)
    counts = RolloutCounts(generated_tokens=100, learner_tokens=80, samples=8, dynamic_sampling={"dynamic_sampling_rounds": 2.0})
    row = rl_step_row({"reward/mean": 0.25}, update, times, counts, sync_bytes=2e6, ppo_epochs=2, weight_version=3)
    assert row["reward/mean"] == 0.25 and row["kl"] == 0.1 and row["rollout/logprob_gap"] == 0.01
    assert math.isnan(row["entropy"]) and row["clip_frac"] == 0.0  # not reported: NaN or its neutral value
    assert {k: v for k, v in row.items() if k.startswith("timing/")} == {
        "timing/generate_s": 2.0,
        "timing/reward_s": 0.5,
        "timing/logprob_s": 1.0,
        "timing/update_s": 4.0,
        "timing/sync_s": 0.5,
        "timing/step_s": 8.0,
        "timing/overlap_s": 0.0,
    }
    assert row["rollout/staleness"] == 0.0  # the synchronous loop's default
    assert (row["rollout/tokens_per_s"], row["learner/tokens_per_s"], row["sync/mb_per_s"]) == (50.0, 40.0, 4.0)
    assert (row["weight_version"], row["samples"], row["dapo/dynamic_sampling_rounds"]) == (3.0, 8.0, 2.0)


def test_sft_row():
    row = sft_step_row({"loss": 1.5, "grad_norm": 0.5, "lr": 1e-3, "skipped_update": 0.0, "update_s": 2.0, "tokens": 64.0}, step_s=3.0, epoch=1)
    assert row == {
        "loss": 1.5,
        "grad_norm": 0.5,
        "lr": 1e-3,
        "skipped_update": 0.0,
        "timing/update_s": 2.0,
        "timing/step_s": 3.0,
        "learner/tokens_per_s": 32.0,
        "epoch": 1.0,
    }


# ---- result.json --------------------------------------------------------------------------------
def test_result_round_trips_with_nested_stages(tmp_path):
    stage2 = RunResult("rl", {"reward/mean": 0.5}, "/r/stage2_rl/checkpoints/step_2", eval_after={"eval/id/score": 75.0})
    chain = RunResult("reason_rft", dict(stage2.metrics), stage2.checkpoint, stage1=RunResult("cot_sft", {"loss": 0.2}), stage2=stage2)
    chain.optimized = pick_optimized(chain, ("eval/id/score", "reward/mean"), Direction.maximize)
    write_result(tmp_path, chain)
    raw = json.loads((tmp_path / RESULT_FILE).read_text())
    assert raw["final_metric"] == 75.0 and raw["optimized"] == {"name": "eval/id/score", "direction": "maximize", "value": 75.0}
    assert raw["stage2"]["eval_after"] == {"eval/id/score": 75.0} and raw["stage1"]["metrics"] == {"loss": 0.2}
    assert read_result(tmp_path) == chain


def test_reading_a_missing_or_torn_result_gives_none(tmp_path):
    assert read_result(tmp_path) is None
    (tmp_path / RESULT_FILE).write_text('{"stage": "rl", "metr')
    assert read_result(tmp_path) is None


def test_optimized_metric_falls_back_in_order_and_skips_non_finite_values():
    sft = RunResult("ans_sft", {"loss": 0.7, "eval/loss": float("nan")})
    assert pick_optimized(sft, ("eval/loss", "loss"), Direction.minimize) == Optimized("loss", Direction.minimize, 0.7)
    assert pick_optimized(sft, ("eval/id/score",), Direction.maximize).value is None


def test_optimized_target_defaults_per_stage_and_follows_the_config():
    default = OmegaConf.create({"trainer": {"optimized_metric": None, "optimized_direction": None}})
    assert optimized_target(default, "cot_sft") == (("eval/loss", "loss"), Direction.minimize)
    assert optimized_target(default, "zero") == (("reward/mean",), Direction.maximize)
    assert optimized_target(default, "reason_rft")[1] is Direction.maximize
    chosen = OmegaConf.create({"trainer": {"optimized_metric": "eval/ood/score", "optimized_direction": "maximize"}})
    assert optimized_target(chosen, "ans_sft") == (("eval/ood/score",), Direction.maximize)


# ---- the stage runner ---------------------------------------------------------------------------
class RecordingStage:
    """Records the lifecycle calls the runner makes; `fail_in` raises there."""

    name = "rl"

    def __init__(self, run_dir: Path, fail_in: str | None = None, error: BaseException | None = None):
        self.run_dir = run_dir
        self.fail_in, self.error = fail_in, error or RuntimeError("boom")
        self.calls: list[str] = []
        self.status: str | None = None

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_in == name:
            raise self.error

    def setup(self) -> None:
        self._call("setup")

    def train(self) -> RunResult:
        self._call("train")
        (self.run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward/mean": 0.5, "timing/step_s": 1.0}) + "\n")
        return RunResult(self.name, {"reward/mean": 0.5})

    def save(self) -> Path:
        self._call("save")
        return self.run_dir / "checkpoints" / "step_1"

    def cleanup(self, status: RunStatus) -> None:
        self.calls.append("cleanup")
        self.status = status


def test_a_finished_stage_writes_its_result_and_report(tmp_path):
    stage = RecordingStage(tmp_path)
    result = run_stage(stage, (("reward/mean",), Direction.maximize))
    assert stage.calls == ["setup", "train", "save", "cleanup"] and stage.status == RunStatus.FINISHED
    assert (result.status, result.checkpoint, result.final_metric) == ("FINISHED", str(tmp_path / "checkpoints" / "step_1"), 0.5)
    assert read_result(tmp_path) == result
    assert (tmp_path / "report.html").exists()


@pytest.mark.parametrize("where", ["setup", "train", "save"])
def test_a_failing_stage_is_cleaned_up_as_failed_and_writes_no_result(tmp_path, where):
    stage = RecordingStage(tmp_path, fail_in=where)
    with pytest.raises(RuntimeError, match="boom"):
        run_stage(stage, (("reward/mean",), Direction.maximize))
    assert stage.calls[-1] == "cleanup" and stage.status == RunStatus.FAILED
    assert not (tmp_path / RESULT_FILE).exists()


def test_ctrl_c_marks_the_stage_killed(tmp_path):
    stage = RecordingStage(tmp_path, fail_in="train", error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_stage(stage, (("reward/mean",), Direction.maximize))
    assert stage.status == RunStatus.KILLED and not (tmp_path / RESULT_FILE).exists()


# ---- dynamic sampling (DAPO): the refill rounds of the controller -------------------------------
class _ScriptedRounds:
    """The controller's `_rollouts` with generation replaced by scripted rounds of rewards (one
    list of per-completion rewards per group); the end-to-end DAPO run moves every group, so the
    zero-variance refills are checked here."""

    def __init__(self, rounds: list[list[list[float]]], max_refill_rounds: int):
        from rft_test_helpers import TINY_RL, compose

        from rft.algo import AlgoSettings
        from rft.trainer.rl import RLTrainer

        cfg = compose(TINY_RL + ["algo=dapo", f"algo.max_refill_rounds={max_refill_rounds}"])
        self.trainer = RLTrainer.__new__(RLTrainer)
        self.trainer.cfg, self.trainer.prefetch = cfg, None
        self.trainer.algo = AlgoSettings.from_config(cfg.algo, max_completion_len=cfg.rollout.max_tokens)
        self.trainer._generate = self._generate
        self.rounds, self.asked = list(rounds), []

    def _generate(self, count: int, group_offset: int):
        from rft.types import PromptItem

        self.asked.append(count)
        groups = self.rounds.pop(0)[:count]
        items = [PromptItem(uid=f"p{group_offset + g}", group=group_offset + g, prompt_text="", images=[], solution="1") for g in range(len(groups))]
        completions = [
            Completion(group=item.group, sample=i, token_ids=[1], text="", logprobs=[], finish_reason="stop", rewards={"total": r})
            for item, rewards in zip(items, groups)
            for i, r in enumerate(rewards)
        ]
        return items, completions, {"generate_s": 1.0}


def test_zero_variance_groups_are_dropped_and_refilled():
    flat, moving = [1.0, 1.0], [0.0, 1.0]
    script = _ScriptedRounds([[flat, moving], [moving]], max_refill_rounds=3)
    batch = script.trainer._rollouts()
    items, completions, timings, counts = batch.items, batch.completions, batch.timings, batch.dynamic
    assert script.asked == [2, 1] and [i.group for i in items] == [1, 2]
    assert counts == {"dynamic_sampling_rounds": 2.0, "dynamic_sampling_kept_groups": 2.0} and timings["generate_s"] == 2.0
    assert {c.group for c in completions} == {1, 2}


def test_nothing_informative_after_every_round_trains_on_the_first_batch():
    flat = [0.0, 0.0]
    script = _ScriptedRounds([[flat, flat], [flat, flat]], max_refill_rounds=2)
    batch = script.trainer._rollouts()
    items, completions, counts = batch.items, batch.completions, batch.dynamic
    assert script.asked == [2, 2] and [i.group for i in items] == [0, 1] and len(completions) == 4
    assert counts == {"dynamic_sampling_rounds": 2.0, "dynamic_sampling_kept_groups": 0.0}


def test_reference_scores_from_ahead_are_used_by_key_and_the_rest_scored_now():
    """`learner.separate_reference`: scores of the prefetched round are matched to completions by
    (group, sample), so dynamic sampling's filtering keeps them; a refill's completions, and a
    score of the wrong length, are scored now by the separate reference."""
    from types import SimpleNamespace

    from rft.trainer.rl import RLTrainer
    from rft.types import PromptItem, TrainSample

    item = PromptItem(uid="p", group=0, prompt_text="", images=[])
    completions = [
        Completion(group=g, sample=s, token_ids=[1] * (s + 1), text="", logprobs=[], finish_reason="stop") for g, s in [(0, 0), (0, 1), (0, 2), (5, 0)]
    ]
    samples = [TrainSample(item, c.token_ids) for c in completions]
    asked = []

    class Scorer:
        @staticmethod
        def result(_pending):
            return {(0, 0): [-0.5], (0, 1): [-1.0, -1.0], (0, 2): [-3.0], (9, 9): [-9.0]}  # (0, 2): 1 score for 3 tokens

        @staticmethod
        def logprobs(missing):
            asked.append([len(s.completion_ids) for s in missing])
            return [[-2.0] * len(s.completion_ids) for s in missing]

    trainer = RLTrainer.__new__(RLTrainer)
    trainer.workers = SimpleNamespace(reference=Scorer(), learners=None)
    share = trainer._reference_logprobs(samples, completions, scoring="pending")
    assert [s.ref_logprobs for s in samples] == [[-0.5], [-1.0, -1.0], [-2.0] * 3, [-2.0]]
    assert asked == [[3, 1]] and share == pytest.approx(2 / 4)
