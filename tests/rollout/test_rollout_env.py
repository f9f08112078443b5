"""The environment rollout actors start with: library deprecations vLLM triggers are silenced,
everything else (and the caller's own filters) still applies."""

from __future__ import annotations

import os
import subprocess
import sys

from rft.rollout.group import engine_python_warnings

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
