"""`rft.host.return_freed_memory_to_the_os` (called when a learner rank or rollout worker starts): after it, a freed
activation-sized tensor below a live one leaves the resident set; without it glibc keeps it.
Each case runs in a fresh interpreter, since the setting is process-wide."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import gc, sys, torch
from rft.host import return_freed_memory_to_the_os
def rss_mb():
    return [int(l.split()[1]) / 1e3 for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
if sys.argv[1] == "on":
    assert return_freed_memory_to_the_os()
warm = torch.ones(16 << 20, dtype=torch.uint8); del warm  # glibc's own threshold now grows to 16 MB
base = rss_mb()
lower, upper = torch.ones(16 << 20, dtype=torch.uint8), torch.ones(16 << 20, dtype=torch.uint8)
del lower; gc.collect()
print(round(rss_mb() - base))
"""


def _kept_mb(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHECK, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc")
def test_a_freed_16_mb_tensor_leaves_the_resident_set():
    assert _kept_mb("off") >= 30  # both 16 MB blocks stay resident: the freed one sits in the heap
    assert _kept_mb("on") <= 20  # only the live one
