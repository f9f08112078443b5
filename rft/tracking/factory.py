"""The one place a run's `Tracker` is built from its configuration (sinks, mlflow store, wandb)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rft.tracking.tracker import Tracker


def make_tracker(cfg: DictConfig, run_dir: Path, run_name: str, parent_run_id: str | None = None, resume_step: int | None = None) -> Tracker:
    """A tracker for `run_dir` with `tracking.*` settings; the whole resolved config is logged.
    `resume_step`: what a trainer logged after it is dropped (see `Tracker`)."""
    return Tracker(
        run_dir,
        sinks=tuple(str(sink) for sink in cfg.tracking.sinks),  # plain strings past rft's own code
        config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        run_name=run_name,
        mlflow_uri=cfg.tracking.mlflow_uri or f"sqlite:///{Path(cfg.outputs_root) / 'mlflow.db'}",
        mlflow_experiment=cfg.tracking.experiment,
        wandb_project=cfg.tracking.wandb_project,
        wandb_mode=str(cfg.tracking.wandb_mode),
        parent_run_id=parent_run_id,
        resume_step=resume_step,
    )
