"""Faults in the RL loop: a diverged model's non-finite updates are skipped, then the run stops
with a clear error after a checkpoint (a real divergence: learning rate 1e30); a killed rollout
actor and a killed learner rank are recovered, checked by the engine's log-probs matching the
learner's afterwards."""

from __future__ import annotations

import pytest
from rft_test_helpers import LOGPROB_GAP_TOL, MOVING, TINY_RL, assert_every_step_moves_and_is_synced, compose, read_metrics

from rft.trainer import run
from rft.trainer.rl import TrainingStopped

pytestmark = pytest.mark.slow


def test_non_finite_updates_are_skipped_then_the_run_stops(ray_cluster, tmp_path):
    overrides = TINY_RL + [
        "rollout.engine=hf",
        "reward=length",
        "algo.beta=0",
        "learner.zero_stage=2",
        "learner.max_bad_updates=2",
        "trainer.max_steps=6",
        "trainer.save_every=100",
        "rollout.max_tokens=16",
    ]
    cfg = compose(overrides)
    cfg.algo.lr = 1e30  # a real divergence; the schema refuses lr > 1 at composition, the trainer must cope anyway
    with pytest.raises(TrainingStopped, match="2 updates in a row had a non-finite loss") as err:
        run(cfg, tmp_path)
    rows = read_metrics(tmp_path)
    assert [row["skipped_update"] for row in rows] == [0.0, 1.0, 1.0]
    assert "step_3" in str(err.value)
    assert (tmp_path / "checkpoints" / "step_3" / "trainer_state.json").exists()


def test_a_restarted_engine_rejoins_the_weight_stream(ray_cluster, tmp_path):
    """`rollout.weight_sync=gloo`: a rollout actor killed between steps is restarted, the transfer
    group is rebuilt with it and the latest weights are streamed again, so it redoes its slice
    with step 1's weights and step 2's sync reaches it. Checked by log-probs, not only by the
    version label: the restarted engine's log-probs of what it sampled at steps 2 and 3 match the
    learner's (the weights move at every step, so stale or initial weights would not)."""
    import os
    import signal

    import ray

    from rft.data.splits import load_data
    from rft.models.loading import resolve_model_path
    from rft.trainer.rl import RLTrainer

    cfg = compose(TINY_RL + MOVING + ["rollout.weight_sync=gloo", "learner.zero_stage=2", "algo.beta=0", "trainer.max_steps=3", "trainer.save_every=100"])
    trainer = RLTrainer(cfg, tmp_path, str(resolve_model_path(cfg.model.path)), load_data(cfg))
    try:
        trainer.setup()
        trainer.step = 1
        assert trainer.train_step()["grad_norm"] > 0
        actor = trainer.workers.rollout.workers[0]
        pid = ray.get(actor.health.remote())["pid"]
        os.kill(pid, signal.SIGKILL)
        trainer.step = 2
        metrics = trainer.train_step()  # generation finds the dead actor, restores it, redoes the slice
        health = ray.get(actor.health.remote())
        assert health["pid"] != pid
        assert health["weight_version"] == 2 == metrics["weight_version"]  # step 2's weights were streamed into it
        trainer.step = 3
        rows = [metrics, trainer.train_step()]
        for row in rows:
            assert row["grad_norm"] > 0 and row["rollout/logprob_gap"] < LOGPROB_GAP_TOL, row
    finally:
        trainer.cleanup()


def _pid_of(actor) -> int:
    import os

    import ray

    return ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()))


def test_a_killed_learner_rank_is_recovered(ray_cluster, tmp_path):
    """Two ZeRO-2 ranks; rank 1 is SIGKILLed while an update is in flight (step 3), and rank 0
    while a checkpoint is being written (step 4). Each time the controller restarts the learner
    group, goes back to the latest checkpoint (step 2, then step 2 again: step 4's was never
    finished), redoes the steps, and the run ends with every step recorded once."""
    import os
    import signal

    from rft.data.splits import load_data
    from rft.learner.group import shard_bounds
    from rft.models.loading import resolve_model_path
    from rft.trainer import checkpoint as ckpt
    from rft.trainer.rl import RLTrainer

    cfg = compose(
        TINY_RL + MOVING + ["rollout.engine=hf", "learner.num_workers=2", "learner.zero_stage=2", "algo.beta=0", "trainer.max_steps=4", "trainer.save_every=2"]
    )
    trainer = RLTrainer(cfg, tmp_path, str(resolve_model_path(cfg.model.path)), load_data(cfg))
    kills: list[tuple[str, int]] = []

    def start_then_kill(refs: list, rank: int, method: str):
        """The group's own wait, after one rank was SIGKILLed with the call in flight."""
        group = trainer.workers.learners
        os.kill(_pid_of(group.workers[rank]), signal.SIGKILL)
        kills.append((method, trainer.step))
        return group._gather(refs)

    try:
        trainer.setup()
        group = trainer.workers.learners
        plain_sharded, plain_save = group._sharded, group.save

        def sharded(method, samples, *args):
            if method != "train_rl" or trainer.step != 3 or kills:
                return plain_sharded(method, samples, *args)
            bounds = shard_bounds(len(samples), group.world_size)
            return start_then_kill([w.train_rl.remote(samples[a:b], *args) for w, (a, b) in zip(group.workers, bounds)], 1, method)

        def save(folder):
            if trainer.step != 4 or len(kills) != 1:
                return plain_save(folder)
            return start_then_kill([w.save.remote(folder) for w in group.workers], 0, "save")

        group._sharded, group.save = sharded, save
        trainer.train()
        assert kills == [("train_rl", 3), ("save", 4)]
        assert group.restarts == 2
    finally:
        trainer.cleanup()
    rows = [row for row in read_metrics(tmp_path) if "reward/mean" in row]
    assert [row["step"] for row in rows] == [1, 2, 3, 4], "every step once, the redone ones replacing nothing"
    # the HF engine sampled with the learner's weights at every step, also after each restart
    # (the engine held step 4's weights when the group went back to step 2)
    assert_every_step_moves_and_is_synced(rows, [1, 2, 3, 4])
    assert all(row["rollout/tokens_per_s"] > 0 for row in rows)
    assert [step for step, _ in ckpt.all_steps(tmp_path)] == [2, 4]
    assert ckpt.read_state(ckpt.latest(tmp_path))["step"] == 4
