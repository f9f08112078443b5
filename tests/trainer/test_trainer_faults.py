"""Faults in the RL loop: a diverged model's non-finite updates are skipped, then the run stops
with a clear error after a checkpoint (a real divergence: learning rate 1e30)."""

from __future__ import annotations

import pytest
from rft_test_helpers import TINY_RL, compose, read_metrics

from rft.trainer import run
from rft.trainer.rl import TrainingStopped

pytestmark = pytest.mark.slow


def test_non_finite_updates_are_skipped_then_the_run_stops(ray_cluster, tmp_path):
    overrides = TINY_RL + [
        "rollout.engine=hf",
        "reward=length",
        "algo.lr=1e30",
        "algo.beta=0",
        "learner.zero_stage=2",
        "learner.max_bad_updates=2",
        "trainer.max_steps=6",
        "trainer.save_every=100",
        "rollout.max_tokens=16",
    ]
    with pytest.raises(TrainingStopped, match="2 updates in a row had a non-finite loss") as err:
        run(compose(overrides), tmp_path)
    rows = read_metrics(tmp_path)
    assert [row["skipped_update"] for row in rows] == [0.0, 1.0, 1.0]
    assert "step_3" in str(err.value)
    assert (tmp_path / "checkpoints" / "step_3" / "trainer_state.json").exists()


def test_a_restarted_engine_rejoins_the_weight_stream(ray_cluster, tmp_path):
    """`rollout.weight_sync=gloo`: a rollout actor killed between steps is restarted, the transfer
    group is rebuilt with it and the latest weights are streamed again, so it redoes its slice
    with step 1's weights (the group checks the version) and step 2's sync reaches it."""
    import os
    import signal

    import ray

    from rft.data.splits import load_data
    from rft.models.loading import resolve_model_path
    from rft.trainer.rl import RLTrainer

    cfg = compose(TINY_RL + ["rollout.weight_sync=gloo", "learner.zero_stage=2", "algo.beta=0", "trainer.max_steps=3", "trainer.save_every=100"])
    trainer = RLTrainer(cfg, tmp_path, str(resolve_model_path(cfg.model.path)), load_data(cfg))
    try:
        trainer.setup()
        trainer.step = 1
        trainer.train_step()
        actor = trainer.workers.rollout.workers[0]
        pid = ray.get(actor.health.remote())["pid"]
        os.kill(pid, signal.SIGKILL)
        trainer.step = 2
        metrics = trainer.train_step()  # generation finds the dead actor, restores it, redoes the slice
        health = ray.get(actor.health.remote())
        assert health["pid"] != pid
        assert health["weight_version"] == 2 == metrics["weight_version"]  # step 2's weights were streamed into it
    finally:
        trainer.cleanup()
