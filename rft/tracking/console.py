"""What the terminal shows during a run: rft's lines; the libraries' output goes to `launch.log`.

`tracking.console=quiet` (default): the terminal gets rft's own log records, tables, progress
bars and the warnings rft raises (each once); everything else goes to `<run dir>/launch.log`
(Hydra's log file of the run), from the driver and from every Ray actor:

- driver: library loggers that print through handlers of their own (Ray, transformers, ...) are
  sent up to the root logger instead, whose console handler passes only rft's records while the
  file handler keeps all (mlflow, imported later, is told not to add one: MLFLOW_CONFIGURE_LOGGING);
  Python warnings are logged (`logging.captureWarnings`), so only rft's
  reach the terminal, once each.
- actors: `ray.init(log_to_driver=False)` and a worker set-up hook (`setup_worker`, named in the
  job's runtime_env with `RFT_CONSOLE`/`RFT_CONSOLE_LOG` in its env_vars, see `worker_runtime_env`)
  that points the process's stdout and stderr (file descriptors, so C-level output and the
  processes vLLM spawns follow) at launch.log.

`tracking.console=verbose` leaves every stream and logger as the libraries set them (the
behaviour before this module): library output on the terminal, actors' lines relayed by Ray.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

CONSOLE_ENV = "RFT_CONSOLE"  # quiet | verbose, for actors
LOG_ENV = "RFT_CONSOLE_LOG"  # the file actors write their stdout/stderr to
QUIET, VERBOSE = "quiet", "verbose"
LOG_FILE = "launch.log"
# Loggers that attach handlers of their own at import and do not propagate to the root logger.
LIBRARY_LOGGERS = ("ray", "transformers", "vllm", "deepspeed", "torch", "datasets", "mlflow", "alembic", "wandb", "urllib3", "filelock")


def is_quiet() -> bool:
    """True in a process of a quiet run (driver after `setup_driver`, or an actor)."""
    return os.environ.get(CONSOLE_ENV, VERBOSE) == QUIET


class RftOnly(logging.Filter):
    """Passes rft's own records, and warnings raised in rft's code, each distinct message once."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings":
            message = record.getMessage()
            if f"{os.sep}rft{os.sep}" not in message or message in self._seen:
                return False
            self._seen.add(message)
            return True
        return record.name == "rft" or record.name.startswith("rft.") or record.name == "__main__"


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def _file_handler(run_dir: Path) -> logging.Handler:
    """The root logger's file handler (Hydra's `<job name>.log`), or a new one on launch.log."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            return handler
    handler = logging.FileHandler(run_dir / LOG_FILE, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root.addHandler(handler)
    return handler


def route_library_loggers(names: tuple[str, ...] = LIBRARY_LOGGERS) -> None:
    """Send library loggers' records to the root logger (file kept, console filtered) instead of
    their own terminal handlers."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
    for name in names:
        logger = logging.getLogger(name)
        for handler in _console_handlers(logger):
            logger.removeHandler(handler)
        logger.propagate = True


def setup_driver(mode: str, run_dir: str | Path) -> Path | None:
    """Quiet the run's terminal (see the module docstring); the log file's path, None when verbose."""
    if str(mode) != QUIET:
        os.environ[CONSOLE_ENV] = VERBOSE
        return None
    import ray  # noqa: F401  (its logger's handler exists from import on: route it now)

    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # mlflow, imported later, then adds no handler of its own

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = Path(getattr(_file_handler(run_dir), "baseFilename", run_dir / LOG_FILE))
    os.environ[CONSOLE_ENV], os.environ[LOG_ENV] = QUIET, str(path)
    root = logging.getLogger()
    rft_only = RftOnly()
    for handler in _console_handlers(root):
        handler.addFilter(rft_only)
    route_library_loggers()
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # each warning once per place, then the filter's once per message
    return path


def worker_runtime_env() -> dict[str, Any]:
    """What `ray.init` adds to the job's runtime_env in a quiet run: the set-up hook and the two
    variables it reads. Empty when the run is verbose."""
    if not is_quiet() or not os.environ.get(LOG_ENV):
        return {}
    return {
        "worker_process_setup_hook": "rft.tracking.console.setup_worker",
        "env_vars": {CONSOLE_ENV: QUIET, LOG_ENV: os.environ[LOG_ENV]},
    }


def setup_worker() -> None:
    """Ray worker set-up hook: stdout and stderr (descriptors 1 and 2) appended to the run's
    launch.log. A no-op unless the run is quiet."""
    path = os.environ.get(LOG_ENV)
    if not is_quiet() or not path:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
