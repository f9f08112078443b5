"""From dataset records to `PromptItem`s: the configured task, its prompt in a style, rendered
through the model's chat template, with the per-item reward extras (box convention, image size).

The trainers and the evaluation build every prompt through `prompt_items`, and pick its style
with `prompt_style`, so a model sees the same text in training and in evaluation:

| stage                 | train                       | eval (`eval.prompt=auto`) |
|-----------------------|-----------------------------|---------------------------|
| ans_sft               | ans_sft                     | ans_sft                   |
| cot_sft               | `sft.prompt` (default rl)   | `sft.prompt`              |
| rl, zero, reason_rft  | rl                          | rl                        |

(reason_rft's stage 1 trains as cot_sft; its final model comes out of RL.) An `eval.prompt`
other than `auto` is the evaluation's style whatever the stage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from omegaconf import DictConfig

from rft.data.records import Record
from rft.tasks.base import PromptStyle
from rft.types import PromptItem


class Purpose(StrEnum):
    train = "train"
    eval = "eval"


AUTO = "auto"  # eval.prompt: the style the stage trains on


def prompt_style(stage: str, purpose: Purpose, cfg: DictConfig) -> PromptStyle:
    """The prompt style a model sees in `stage` (a `stage.name`; `cot_sft` for reason_rft's
    stage 1) for `purpose`, with `cfg.sft.prompt` and `cfg.eval.prompt` (see the table above)."""
    if purpose == Purpose.eval and cfg.eval.prompt != AUTO:
        return PromptStyle(cfg.eval.prompt)  # EvalPrompt (auto + the styles) to the style
    if stage == "ans_sft":
        return PromptStyle.ans_sft
    if stage == "cot_sft":
        return cfg.sft.prompt
    return PromptStyle.rl


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


def prompt_items(task, processor, records: list[Record], style: PromptStyle, model_cfg: DictConfig) -> list[PromptItem]:
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
