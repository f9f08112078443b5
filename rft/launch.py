"""The entry point: `python -m rft.launch [group=option ...] [key=value ...]`.

Composes and validates the configuration (before Ray starts), resolves the model, then hands
the run to the stage runner in `rft.trainer`. A `rft.errors.UserError` (bad key, missing model
or data, unsatisfiable resources, a run stopped on purpose) ends it with one line and status 2.
`-m` runs a sweep; with `hydra/launcher=ray_jobs` every point is its own Ray Job. `--help`
lists the groups.

Every bad value gets one line: before Hydra takes over, `preflight` composes the configuration
from the command line as Hydra will and checks it (`rft.config`), so a wrong type, an unknown
key or choice, or a value out of range ends with `error: ConfigError: <key>: ...` and status 2
(Hydra itself reports composition errors over several lines, with status 1). A job server's
`http://` address is refused here: runs go there through `python -m rft.jobs submit`.

The function returns the run's optimised metric (`trainer.optimized_metric`; by default the
stage's own: the SFT eval loss, the RL reward, Reason-RFT's ID accuracy) as it is, so Hydra
sweepers (e.g. Optuna) can use it; tell the sweeper its direction (Optuna's `direction`), which
`result.json` records next to the value (`optimized.direction`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import hydra
from omegaconf import DictConfig

from rft.config import check_launch_address, check_model_limits, compose_checked, plain_overrides, validate
from rft.errors import user_errors_as_one_line
from rft.paths import CONF_DIR, run_dir_of_current_job
from rft.placement.memory_plan import check_fits
from rft.tracking.console import setup_driver

log = logging.getLogger("rft")


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    with user_errors_as_one_line():
        setup_driver(cfg.tracking.console, run_dir_of_current_job())  # library output to launch.log unless verbose
        validate(cfg)
        check_launch_address(cfg)
        check_model_limits(cfg)
        check_fits(cfg)  # predicted memory vs this machine, before Ray starts (rft.plan)
        from rft.trainer import run

        return run(cfg, run_dir_of_current_job())


def preflight(argv: Sequence[str]) -> None:
    """Compose and check the run's configuration from `argv` as Hydra will; a `UserError` ends
    the process with one line and status 2. Hydra's own options (`--help`, `--cfg`, `-cd` ...)
    are left to Hydra; in a sweep (`-m`) the points' sweep values are left to the sweep."""
    multirun = any(arg in ("-m", "--multirun") for arg in argv)
    overrides = [arg for arg in argv if arg not in ("-m", "--multirun")]
    if any(arg.startswith("-") for arg in overrides):
        return
    with user_errors_as_one_line():
        cfg = compose_checked(plain_overrides(overrides) if multirun else overrides)
        if not multirun:  # a sweep's launcher may take a job server's address (ray_jobs)
            check_launch_address(cfg)


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
