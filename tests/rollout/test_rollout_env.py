"""The environment rollout actors start with: library deprecations vLLM triggers are silenced,
everything else (and the caller's own filters) still applies; OpenMP threads of an idle engine
sleep instead of spinning."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

from rft.rollout.group import engine_python_warnings, rollout_actor_env

WARN = """
import warnings
warnings.warn("Passing `min_pixels` and `max_pixels` to a processor call is deprecated and will be removed", FutureWarning)
warnings.warn("`torch.distributed.reduce_op` is deprecated, please use `torch.distributed.ReduceOp` instead", FutureWarning)
warnings.warn("something rft should hear about", FutureWarning)
warnings.warn("a user-silenced warning", UserWarning)
"""


def test_engine_processes_skip_only_the_known_library_deprecations(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::UserWarning")
    env = {**os.environ, "PYTHONWARNINGS": engine_python_warnings()}
    stderr = subprocess.run([sys.executable, "-c", WARN], env=env, capture_output=True, text=True, timeout=60).stderr
    assert "something rft should hear about" in stderr
    assert "min_pixels" not in stderr and "reduce_op" not in stderr
    assert "user-silenced" not in stderr


IDLE_AFTER_WORK = """
import resource, time, torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
for _ in range(200):
    a @ a
def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start = cpu_s()
time.sleep(1.0)
print(cpu_s() - start)
"""


def test_openmp_threads_of_an_idle_engine_sleep():
    """After parallel work, a process in the rollout actors' environment uses next to no CPU while
    it waits (OMP_WAIT_POLICY=ACTIVE would spin a core the whole second)."""
    env = {**os.environ, **rollout_actor_env(SimpleNamespace(kv_cache_gb=1))}
    done = subprocess.run([sys.executable, "-c", IDLE_AFTER_WORK], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 0.3
