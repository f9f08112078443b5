"""`trainer.off_policy_steps=1`: the rollout actors generate step t+1's batch while the learners
update on step t's (rft.trainer.rl). Config checks, the core plan and the step row are fast; the
runs use real Ray, vLLM and DeepSpeed on the session's shared Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rft_test_helpers import MOVING, TINY_RL, assert_every_step_moves_and_is_synced, compose

from rft.config import ConfigError
from rft.placement.workers import disjoint_cores
from rft.trainer import run
from rft.trainer.metrics import RolloutCounts, StepTimes, rl_step_row


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("value", ["-1", "2"])
def test_only_zero_and_one_are_accepted(value):
    with pytest.raises(ConfigError, match=r"trainer\.off_policy_steps"):
        compose(TINY_RL + [f"trainer.off_policy_steps={value}"])


def test_colocated_gpu_engines_cannot_overlap():
    with pytest.raises(ConfigError, match=r"trainer\.off_policy_steps.*colocate"):
        compose(TINY_RL + ["trainer.off_policy_steps=1", "cluster.colocate=true", "rollout.gpus_per_worker=1", "learner.gpus_per_worker=1"])


def test_cores_are_split_only_when_generation_overlaps_updates(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3, 4, 5})
    overlap = compose(TINY_RL + ["trainer.off_policy_steps=1", "learner.num_workers=2", "rollout.cpus_per_worker=2"])
    assert disjoint_cores(overlap, learners=True, rollout=True) == ([[0], [1]], [[2, 3]])
    assert disjoint_cores(compose(TINY_RL), learners=True, rollout=True) == (None, None)  # synchronous
    colocated = compose(TINY_RL + ["trainer.off_policy_steps=1", "cluster.colocate=true"])
    assert disjoint_cores(colocated, learners=True, rollout=True) == (None, None)
    too_many = compose(TINY_RL + ["trainer.off_policy_steps=1", "rollout.cpus_per_worker=6"])
    assert disjoint_cores(too_many, learners=True, rollout=True) == (None, None)


def test_step_row_reports_staleness_and_overlap():
    row = rl_step_row({}, {}, StepTimes(update_s=2.0, overlap_s=1.5), RolloutCounts(), sync_bytes=0.0, ppo_epochs=1, weight_version=2, staleness=1)
    assert (row["rollout/staleness"], row["timing/overlap_s"]) == (1.0, 1.5)


@pytest.fixture(scope="module")
def overlapped_run(ray_cluster, tmp_path_factory) -> Path:
    """Four steps, generation one step ahead; a checkpoint and an evaluation at step 2, while the
    batch of step 3 is already generated."""
    run_dir = tmp_path_factory.mktemp("rl_off_policy")

    overrides = TINY_RL + MOVING + ["trainer.off_policy_steps=1", "trainer.max_steps=4", "trainer.save_every=2"]
    run(compose(overrides + ["trainer.eval_every=2", "eval.limit=2", "eval.max_tokens=8"]), run_dir)
    return run_dir


@pytest.mark.slow
def test_the_next_batch_is_generated_during_the_update(overlapped_run):
    rows = [row for row in _metrics(overlapped_run) if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    # step 1 trains on what the initial weights generated; later steps on one version behind
    assert [row["rollout/staleness"] for row in rows] == [0.0, 1.0, 1.0, 1.0]
    assert [row["weight_version"] for row in rows] == [1.0, 2.0, 3.0, 4.0]
    # the old log-probs are the engine's own here, so the gap reads 0 by construction (no sync check)
    assert_every_step_moves_and_is_synced(rows, [1, 2, 3, 4], synced=False)
    assert all(row["reward/std"] > 0 for row in rows)
    # each side on its own cores (this machine has the two it needs), one thread per core
    learner_cores, rollout_cores = disjoint_cores(compose(TINY_RL + ["trainer.off_policy_steps=1"]), learners=True, rollout=True)
    assert {(row["learner/threads"], row["rollout/engine_threads"]) for row in rows} == {(len(learner_cores[0]), len(rollout_cores[0]))}
    # generation of step t+1 ran while step t's learners worked (wall-clock intervals intersect),
    # and the last step started no generation
    for row in rows[:-1]:
        assert 0 < row["timing/overlap_s"] <= row["timing/logprob_s"] + row["timing/update_s"] + 0.5, row
    assert rows[-1]["timing/overlap_s"] == 0.0


@pytest.fixture(scope="module")
def overlapped_run_separate_reference(ray_cluster, tmp_path_factory) -> Path:
    """`overlapped_run` with the reference in an actor of its own, scoring each prefetched batch."""
    run_dir = tmp_path_factory.mktemp("rl_off_policy_separate_reference")
    overrides = TINY_RL + MOVING + ["trainer.off_policy_steps=1", "trainer.max_steps=4", "trainer.save_every=2", "learner.separate_reference=true"]
    run(compose(overrides + ["trainer.eval_every=2", "eval.limit=2", "eval.max_tokens=8"]), run_dir)
    return run_dir


@pytest.mark.slow
def test_the_separate_reference_gives_the_same_run(overlapped_run, overlapped_run_separate_reference):
    """Same seed, same run (deterministic on CPU): the same completions and rewards at every step,
    and the KL to the reference (nonzero once the policy moved) as the learner's own reference
    gives it."""
    inside = [row for row in _metrics(overlapped_run) if "reward/mean" in row]
    separate = [row for row in _metrics(overlapped_run_separate_reference) if "reward/mean" in row]
    assert [row["step"] for row in separate] == [1, 2, 3, 4]
    # every batch after the first was scored by the reference while the learners updated
    assert [row["reference/scored_ahead"] for row in separate] == [0.0, 1.0, 1.0, 1.0]
    assert [row["reference/scored_ahead"] for row in inside] == [0.0] * 4
    assert [row["reward/mean"] for row in separate] == [row["reward/mean"] for row in inside]
    assert [row["response_length/mean"] for row in separate] == [row["response_length/mean"] for row in inside]
    assert all(row["kl"] > 0 for row in separate[1:])
    for a, b in zip(inside, separate):
        assert b["kl"] == pytest.approx(a["kl"], rel=1e-3, abs=1e-7), (a["step"], a["kl"], b["kl"])
    assert_every_step_moves_and_is_synced(separate, [1, 2, 3, 4], synced=False)


@pytest.mark.slow
def test_checkpoint_and_eval_with_a_batch_in_hand(overlapped_run):
    state = json.loads((overlapped_run / "checkpoints" / "step_2" / "trainer_state.json").read_text())
    # 2 steps x 2 prompts trained; step 3's prompts, generated ahead, are not counted as seen
    assert state["step"] == 2 and state["sampler"]["position"] == 4
    evals = [row for row in _metrics(overlapped_run) if "eval/id/score" in row]
    assert [row["step"] for row in evals] == [2, 4]


@pytest.mark.slow
def test_reward_still_rises_one_step_off_policy(ray_cluster, tmp_path):
    """The learnability run of test_trainer_rl.py (`test_reward_rises_when_it_can`: length reward,
    30 steps, lr 1e-3) with generation one step ahead: the same margin must be cleared."""

    overrides = TINY_RL + [
        "reward=length",
        "trainer.max_steps=30",
        "trainer.prompts_per_step=4",
        "algo.num_generations=8",
        "algo.lr=1e-3",
        "algo.beta=0",
        "learner.zero_stage=2",
        "trainer.save_every=100",
        "trainer.seed=1",
        "data.synth_n_train=32",
        "trainer.off_policy_steps=1",
    ]
    run(compose(overrides), tmp_path)
    rows = _metrics(tmp_path)
    rewards = [row["reward/mean"] for row in rows]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.08, rewards
    assert all(row["rollout/staleness"] == 1.0 for row in rows[1:])
