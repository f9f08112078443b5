"""Per-actor peak memory of a launch (rft.bench.memory): roles from Ray process titles, peaks
of per-sample sums, and a real sample of this test's own process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rft.bench import memory


def test_role_of_title():
    assert memory.role_of_title("ray::RolloutWorker.generate") == "RolloutWorker"
    assert memory.role_of_title("ray::LearnerWorker") == "LearnerWorker"
    assert memory.role_of_title("ray::IDLE") is None
    assert memory.role_of_title("ray::DashboardAgent --flag") is None
    assert memory.role_of_title("python -m rft.launch") is None


def test_children_count_with_their_actor():
    parents = {1: 0, 2: 1, 3: 2, 4: 3, 5: 1}
    titles = {1: "python -m rft.launch", 2: "raylet", 3: "ray::RolloutWorker.generate", 4: "VLLM::EngineCore", 5: "ray::LearnerWorker.train_rl"}
    assert memory.roles(parents, titles, root=1) == {1: "driver+ray", 2: "driver+ray", 3: "RolloutWorker", 4: "RolloutWorker", 5: "LearnerWorker"}


def test_peak_is_the_largest_sum_per_role():
    samples = [{"RolloutWorker": 2_000_000_000, "driver+ray": 100_000_000}, {"RolloutWorker": 1_500_000_000, "driver+ray": 300_000_000}]
    assert memory.peak_by_role(samples) == {"RolloutWorker": 2.0, "driver+ray": 0.3}


def test_samples_a_real_process_tree():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50_000_000); time.sleep(30)"])
    try:
        time.sleep(1.0)
        meter = memory.TreeMemory(os.getpid())
        meter.sample()
        peaks = meter.peaks_gb()
    finally:
        child.kill()
        child.wait()
    assert set(peaks) == {"driver+ray"}
    assert peaks["driver+ray"] > 0.05  # this process plus the child's 50 MB
