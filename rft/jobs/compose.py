"""Composing and checking a run's configuration before anything is submitted.

A configuration that would fail on the cluster should fail here, on the submitting machine, in
seconds: schema errors (wrong type, unknown key) come from composition, interpolation errors from
resolving every value, cross-key errors from `rft.config.validate`. `PointError` names the point
by its overrides.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class PointError(ValueError):
    """One or more runs whose configuration does not compose or validate; nothing was submitted."""


def task_config(cfg: DictConfig) -> DictConfig:
    """The configuration the task function sees: a copy without the `hydra` node."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        task.pop("hydra", None)
    return task


def check_task_config(cfg: DictConfig) -> None:
    """Resolve every value and run rft's cross-key checks; raises on the first problem."""
    from rft.config import validate

    task = task_config(cfg)
    OmegaConf.to_container(task, resolve=True, throw_on_missing=True)
    validate(task)


def describe(overrides: Sequence[str], err: BaseException) -> str:
    """`[overrides]: error (cause)` for an error report, on one line."""
    parts = []
    while err is not None and len(parts) < 2:
        parts.append(f"{type(err).__name__}: {' '.join(line.strip() for line in str(err).strip().splitlines())}")
        err = err.__cause__ or err.__context__
    return f"[{' '.join(overrides) or 'no overrides'}]: " + " <- ".join(parts)


def compose_run(overrides: Sequence[str]) -> tuple[DictConfig, str]:
    """A single run's full configuration (with `hydra`) and its absolute run folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import setup_globals

    from rft.config import register_schemas
    from rft.paths import CONF_DIR

    register_schemas()  # `conf/config.yaml` starts from the `rft_schema` node
    setup_globals()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="launch"):
            cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        run_dir = os.path.abspath(str(cfg.hydra.run.dir))
        check_task_config(cfg)
    except Exception as err:
        raise PointError(f"the run does not compose, nothing was submitted:\n  {describe(overrides, err)}") from err
    return cfg, run_dir


def outputs_root(cfg: DictConfig) -> Path:
    """The run's absolute outputs root (`outputs_root`, from RFT_OUTPUTS)."""
    return Path(str(cfg.outputs_root)).expanduser().resolve()
