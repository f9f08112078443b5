"""Set-up shared by every stage: model resolution, data, prompts, settings objects, tracking.

Everything here runs in the controller before any actor starts, so a bad path or record fails
fast, with the key or file named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rft.config import to_container
from rft.data.records import Record
from rft.rollout.types import PromptItem

log = logging.getLogger(__name__)

# Stage -> the prompt style of its training data.
TRAIN_STYLE = {"ans_sft": "ans_sft", "cot_sft": "cot_sft", "rl": "rl", "zero": "rl"}


@dataclass
class DataSplits:
    train: list[Record]
    test_id: list[Record]
    test_ood: list[Record]
    source: str  # where the records came from, for the summary


def resolve_model(cfg: DictConfig) -> str:
    from rft.models.loading import resolve_model_path

    return str(resolve_model_path(cfg.model.path))


def _read(path: str, cfg: DictConfig) -> list[Record]:
    from rft.data import load_records

    result = load_records(path, image_root=cfg.data.image_root, fmt=cfg.data.format, max_bad_fraction=cfg.data.max_bad_fraction)
    return result.records


def synthetic_dir(cfg: DictConfig) -> Path:
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
        splits = DataSplits(_read(str(folder / "train.json"), cfg), _read(str(folder / "test_id.json"), cfg), _read(str(folder / "test_ood.json"), cfg), f"synthetic {cfg.task.name} in {folder}")
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
        raise ValueError(f"data.train: no usable training records in {splits.source}")
    return splits


def resized_size(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The (width, height) Qwen-VL processors resize an image to under this pixel budget."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    new_h, new_w = smart_resize(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_w, new_h


BOX_TASKS = ("detection", "grounding")


def task_for(cfg: DictConfig):
    """The configured task; box tasks take the model's box convention (0-1000 or pixels)."""
    from rft.tasks import get_task

    if cfg.task.name in BOX_TASKS:
        return get_task(cfg.task.name, box_format=enum_value(cfg.model.box_format))
    return get_task(cfg.task.name)


def model_image_size(record: Record, model_cfg: DictConfig) -> tuple[int, int] | None:
    """(w, h) of the record's first image as the model sees it (after the pixel budget)."""
    if not record.images:
        return None
    from PIL import Image

    with Image.open(record.images[0]) as img:
        width, height = img.size
    return resized_size(width, height, model_cfg.min_pixels, model_cfg.max_pixels)


def reward_kwargs_for(task, record: Record, model_cfg: DictConfig) -> dict[str, Any]:
    """Per-item reward extras from the task (e.g. box convention and image size)."""
    size = model_image_size(record, model_cfg) if task.name in BOX_TASKS else None
    extras = task.reward_kwargs([record], image_sizes=[size] if size else None)
    return {key: values[0] for key, values in extras.items()}


def prompt_items(task, processor, records: list[Record], style: str, model_cfg: DictConfig) -> list[PromptItem]:
    items = []
    for group, record in enumerate(records):
        messages = task.messages(record, style)
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        items.append(
            PromptItem(
                uid=record.id,
                group=group,
                prompt_text=text,
                images=list(record.images),
                solution=record.answer,
                reward_kwargs=reward_kwargs_for(task, record, model_cfg),
            )
        )
    return items


def make_tracker(cfg: DictConfig, run_dir: Path, run_name: str, parent_run_id: str | None = None):
    from rft.tracking import Tracker

    return Tracker(
        run_dir,
        sinks=tuple(cfg.tracking.sinks),
        config=to_container(cfg),
        run_name=run_name,
        mlflow_uri=cfg.tracking.mlflow_uri or f"sqlite:///{Path(cfg.outputs_root) / 'mlflow.db'}",
        mlflow_experiment=cfg.tracking.experiment,
        wandb_project=cfg.tracking.wandb_project,
        wandb_mode=cfg.tracking.wandb_mode,
        parent_run_id=parent_run_id,
    )


def enum_value(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value
