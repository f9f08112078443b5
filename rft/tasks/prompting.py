"""From dataset records to `PromptItem`s: the configured task, its prompt in a style, rendered
through the model's chat template, with the per-item reward extras (box convention, image size).

The trainers and the evaluation build every prompt through `prompt_items`, so a model sees the
same text in training and in evaluation.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rft.data.records import Record
from rft.types import PromptItem

# Stage -> the prompt style of its training data.
TRAIN_STYLE = {"ans_sft": "ans_sft", "cot_sft": "cot_sft", "rl": "rl", "zero": "rl"}

BOX_TASKS = ("detection", "grounding")


def task_for(cfg: DictConfig):
    """The configured task; box tasks take the model's box convention (0-1000 or pixels)."""
    from rft.tasks import get_task  # here: rft.tasks' package module imports the task modules

    if cfg.task.name in BOX_TASKS:
        return get_task(cfg.task.name, box_format=cfg.model.box_format)
    return get_task(cfg.task.name)


def resized_size(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The (width, height) Qwen-VL processors resize an image to under this pixel budget."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    new_h, new_w = smart_resize(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_w, new_h


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
    """One `PromptItem` per record, group = its index, the prompt in `style`."""
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
