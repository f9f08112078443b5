"""The quiet console: rft's lines on the terminal, library output in launch.log (driver and
actor processes), verbose as before. Each case runs in a fresh interpreter (it rewires logging)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DRIVER = """
import logging, sys, warnings
from pathlib import Path
run_dir = Path(sys.argv[1])
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
logging.getLogger().addHandler(logging.FileHandler(run_dir / "launch.log"))
from rft.tracking.console import setup_driver
print("log file:", setup_driver(sys.argv[2], run_dir))
logging.getLogger("ray").warning("a ray banner")
logging.getLogger("transformers.processing").warning("a transformers notice")
logging.getLogger("rft.trainer").info("rft's own line")
warnings.warn("a library warning", UserWarning)
from rft.tracking import console
for _ in range(2):
    console.warnings.warn_explicit("an rft warning", RuntimeWarning, console.__file__, 1)
print("a plain print")
"""


def _driver(tmp_path: Path, mode: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path), mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr, (tmp_path / "launch.log").read_text()


def test_quiet_driver_shows_rft_lines_and_files_the_libraries(tmp_path):
    terminal, log = _driver(tmp_path, "quiet")
    assert "rft.trainer: rft's own line" in terminal and "a plain print" in terminal
    assert terminal.count("an rft warning") == 1
    for library in ("a ray banner", "a transformers notice", "a library warning"):
        assert library not in terminal and library in log


def test_verbose_driver_leaves_the_libraries_on_the_terminal(tmp_path):
    terminal, _ = _driver(tmp_path, "verbose")
    assert "a ray banner" in terminal and "a library warning" in terminal and "log file: None" in terminal


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_actor_processes_write_to_the_runs_log_when_quiet(tmp_path, mode):
    log = tmp_path / "launch.log"
    script = textwrap.dedent(
        """
        import os, sys
        from rft.tracking.console import setup_worker, worker_runtime_env
        print(worker_runtime_env())
        sys.stdout.flush()
        setup_worker()
        print("from python")
        os.write(2, b"from C\\n")
        """
    )
    env = {"RFT_CONSOLE": mode, "RFT_CONSOLE_LOG": str(log), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    if mode == "quiet":
        assert "'worker_process_setup_hook': 'rft.tracking.console.setup_worker'" in done.stdout
        assert "from python" not in done.stdout + done.stderr
        assert sorted(log.read_text().splitlines()) == ["from C", "from python"]  # Python buffers its own
    else:
        assert done.stdout.startswith("{}") and "from python" in done.stdout and not log.exists()
