"""A task's train / in-domain / out-of-domain records for one run: the configured files, or the
task's cached synthetic set.

Everything here runs in the controller before any actor starts, so a bad path or record fails
fast, with the key or file named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rft.data.readers import DataError, load_records
from rft.data.records import Record


@dataclass
class DataSplits:
    train: list[Record]
    test_id: list[Record]
    test_ood: list[Record]
    source: str  # where the records came from, for the summary


def _read(path: str, cfg: DictConfig) -> list[Record]:
    result = load_records(path, image_root=cfg.data.image_root, fmt=cfg.data.format, max_bad_fraction=cfg.data.max_bad_fraction)
    return result.records


def synthetic_dir(cfg: DictConfig) -> Path:
    """The folder of the task's synthetic set for these `data.synth_*` settings (built once, cached)."""
    from rft.data.synth import ensure_synth

    return Path(
        ensure_synth(
            cfg.task.name,
            n_train=cfg.data.synth_n_train,
            n_test=cfg.data.synth_n_test,
            seed=cfg.data.synth_seed,
            image_size=cfg.data.synth_image_size,
            **OmegaConf.to_container(cfg.task.synth, resolve=True),
        )
    )


def load_data(cfg: DictConfig) -> DataSplits:
    """The task's train/ID/OOD records: the configured files, or its cached synthetic set."""
    if cfg.data.train is None:
        folder = synthetic_dir(cfg)
        splits = DataSplits(
            _read(str(folder / "train.json"), cfg),
            _read(str(folder / "test_id.json"), cfg),
            _read(str(folder / "test_ood.json"), cfg),
            f"synthetic {cfg.task.name} in {folder}",
        )
    else:
        splits = DataSplits(
            _read(cfg.data.train, cfg),
            _read(cfg.data.test_id, cfg) if cfg.data.test_id else [],
            _read(cfg.data.test_ood, cfg) if cfg.data.test_ood else [],
            cfg.data.train,
        )
    if cfg.data.limit_train is not None:
        splits.train = splits.train[: cfg.data.limit_train]
    if not splits.train:
        raise DataError(f"data.train: no usable training records in {splits.source}")
    return splits
