"""Placement: bundles for separate and colocated rollout/learners; infeasible requests fail fast."""

from __future__ import annotations

import time

import pytest
from rft_test_helpers import compose

from rft.placement.cluster import ResourceError, local_cpus_needed, reserve
from rft.placement.workers import _bundles


def test_separate_bundles():
    cfg = compose(["learner.num_workers=2", "rollout.num_workers=1"])
    bundles, learners, rollout = _bundles(cfg, learners=True, rollout=True)
    assert bundles == [{"CPU": 1.0}] * 3 and learners == [0, 1] and rollout == [2]


def test_colocated_rollout_shares_learner_bundles():
    cfg = compose(["learner.num_workers=2", "rollout.num_workers=2", "cluster.colocate=true", "rollout.gpus_per_worker=0.5", "learner.gpus_per_worker=0.5"])
    bundles, learners, rollout = _bundles(cfg, learners=True, rollout=True)
    assert len(bundles) == 2 and rollout == [0, 1]
    assert bundles[0] == {"CPU": 2.0, "GPU": 1.0}


def test_local_ray_advertises_enough_cpus():
    assert local_cpus_needed([{"CPU": 1.0}] * 5) >= 6


@pytest.mark.slow
def test_infeasible_request_fails_within_the_timeout(ray_cluster):
    start = time.monotonic()
    with pytest.raises(ResourceError, match="GPU"):
        reserve([{"CPU": 1.0, "GPU": 1.0}], timeout_s=3)
    assert time.monotonic() - start < 15
