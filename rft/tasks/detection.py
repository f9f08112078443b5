"""Open-vocabulary and few-shot detection (Visual-RFT, COCO/LVIS): boxes of one asked category.

A record asks for `meta["category"]` in one image whose original `(w, h)` is
`meta["image_size"]`; its answer is the seeds' list `[{'Position': [x1, y1, x2, y2],
'Confidence': 1}, …]` in 0–1000 coordinates, or `No Objects`.
Rewards: format + iou + confidence. Score: COCO mAP (pycocotools COCOeval, IoU .5:.95, all
areas, 100 detections) over the task's class list, x100, with per-category AP in `subsets`.
Records that share an image (several categories asked of one picture) share one COCO image.
`per_item` holds each record's IoU reward.

`box_format="abs"` (Qwen2.5-VL) asks for pixel coordinates of the image the model saw and
converts predictions to 0–1000 with the sizes passed to `reward_kwargs`/`evaluate`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

from rft.data.records import Record
from rft.rewards.boxes import BOX_FORMATS, Box, Detection, parse_detections
from rft.rewards.common import open_answer_span, split_kwargs
from rft.rewards.detection import iou_of, predicted_detections, truth_boxes
from rft.tasks.base import EvalResult, Task, check_aligned, think_instruction

ANSWER_FORMAT = "[{'Position': [x1, y1, x2, y2], 'Confidence': number}, ...]"


def check_box_format(box_format: str) -> None:
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}")


def box_kwargs(records: Sequence[Record], box_format: str, image_sizes: Sequence[Sequence[int]] | None) -> dict[str, list[Any]]:
    """`box_format` and `image_size` per record, for the box rewards."""
    sizes = image_sizes if image_sizes is not None else [r.meta.get("image_size") for r in records]
    if len(sizes) != len(records):
        raise ValueError(f"{len(sizes)} image sizes for {len(records)} records")
    return {
        "box_format": [box_format] * len(records),
        "image_size": [tuple(s) if s is not None else None for s in sizes],
    }


def box_frames(records: Sequence[Record], default_format: str, box_format: Any = None, image_size: Any = None) -> list[tuple[str, tuple[float, float] | None]]:
    """Each record's (box_format, image_size) for evaluation.

    `box_format` and `image_size` are taken as the rewards take them (a per-record list, or one
    value for all), so `evaluate(..., **extras)` accepts the same extras the rewards got;
    missing ones default to the task's format and the records' `meta["image_size"]`.
    """
    kwargs = box_kwargs(records, default_format, None)
    if box_format is not None:
        kwargs["box_format"] = box_format
    if image_size is not None:
        kwargs["image_size"] = image_size
    frames = []
    for sample in split_kwargs(kwargs, len(records)):
        check_box_format(sample["box_format"])
        size = sample["image_size"]
        frames.append((sample["box_format"], None if size is None else tuple(size)))
    return frames


class BoxTask(Task):
    """A task whose answers are boxes, in the model's convention: 0-1000 (Qwen2-VL) or pixels
    of the resized image (Qwen2.5-VL)."""

    def __init__(self, box_format: str = "norm1000"):
        check_box_format(box_format)
        self.box_format = box_format

    def reward_kwargs(self, records: Sequence[Record], image_sizes: Sequence[Sequence[int]] | None = None) -> dict[str, list[Any]]:
        return box_kwargs(records, self.box_format, image_sizes)


class DetectionTask(BoxTask):
    name = "detection"
    default_rewards = {"format": 1.0, "iou": 1.0, "confidence": 1.0}
    examples = (
        Record(
            id="detection-example-0",
            images=["detection-0.png"],
            problem="Detect all objects belonging to the category 'red_circle'.",
            answer=("[{'Position': [120, 80, 360, 300], 'Confidence': 1}, {'Position': [600, 540, 820, 760], 'Confidence': 1}]"),
            cot="There are two red circles, one top left and one bottom right.",
            meta={"category": "red_circle", "image_size": [640, 480]},
        ),
        Record(
            id="detection-example-1",
            images=["detection-0.png"],
            problem="Detect all objects belonging to the category 'blue_square'.",
            answer="No Objects",
            cot="I do not see any blue square in the image.",
            meta={"category": "blue_square", "image_size": [640, 480]},
        ),
    )

    def request(self, record: Record) -> str:
        """The seeds' detection request for the record's category."""
        category = record.meta.get("category")
        if category is None:
            return record.problem.strip()
        coords = "between 0 and 1000, integer" if self.box_format == "norm1000" else "in pixels of the image, integer"
        return (
            f"Detect all objects belonging to the category '{category}' in the image, and "
            f"provide the bounding boxes ({coords}) and confidence (between 0 and 1, with two "
            f"decimal places). If no object belonging to the category '{category}' is in the "
            "image, return 'No Objects'."
        )

    def question(self, record: Record) -> str:
        return f"{self.request(record)} The answer is a list like {ANSWER_FORMAT}."

    def rl_prompt(self, record: Record) -> str:
        # As the seeds: the request, the think/answer instruction, then the format example.
        return f"{self.request(record)} {think_instruction('')} The output answer format should be: <think> ... </think> <answer>{ANSWER_FORMAT}</answer>"

    def parse_answer(self, completion: str) -> str | None:
        """The answer text (tolerating a cut-off list), None if it is no readable box list."""
        return None if parse_detections(completion) is None else _answer_text(completion)

    def evaluate(
        self,
        completions: Sequence[str],
        records: Sequence[Record],
        box_format: Any = None,
        image_size: Any = None,
        classes: Sequence[str] | None = None,
        **_: Any,
    ) -> EvalResult:
        """COCO mAP over `classes` (default: the records' categories, in order of appearance).

        `box_format`/`image_size`: as the box rewards take them (see `box_frames`).
        """
        check_aligned(completions, records)
        frames = box_frames(records, self.box_format, box_format, image_size)
        detections = [predicted_detections(c, fmt, size) for c, (fmt, size) in zip(completions, frames)]
        truths = [_truth(r) for r in records]
        parsed = [None if d is None else _answer_text(c) for c, d in zip(completions, detections)]
        per_item = [0.0 if d is None else iou_of(d, t) for d, t in zip(detections, truths)]
        class_list = list(classes) if classes is not None else _categories(records)
        score, per_class = coco_map(records, truths, [d or [] for d in detections], class_list)
        return EvalResult(
            score=score,
            n=len(records),
            n_unparsed=sum(p is None for p in parsed),
            per_item=per_item,
            parsed=parsed,
            subsets=_class_subsets(records, parsed, per_class),
        )


def _answer_text(completion: str) -> str:
    span = open_answer_span(completion)
    return (completion if span is None else span).strip()


def _categories(records: Sequence[Record]) -> list[str]:
    names = (r.meta.get("category") for r in records)
    return list(dict.fromkeys(str(n) for n in names if n is not None))


def _class_subsets(records: Sequence[Record], parsed: list[str | None], per_class: dict[str, float]) -> dict[str, dict[str, float]]:
    out = {}
    for name, ap in per_class.items():
        idx = [i for i, r in enumerate(records) if str(r.meta.get("category")) == name]
        out[name] = {"score": ap, "n": len(idx), "n_unparsed": sum(parsed[i] is None for i in idx)}
    return out


def _pixels(box: Box, size: tuple[float, float]) -> list[float]:
    """A 0–1000 box as COCO's [x, y, w, h] in pixels of the original image."""
    w, h = size
    x1, y1, x2, y2 = (box[0] * w / 1000, box[1] * h / 1000, box[2] * w / 1000, box[3] * h / 1000)
    return [x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)]


def coco_map(
    records: Sequence[Record],
    truths: Sequence[list[Box]],
    predictions: Sequence[list[Detection]],
    classes: Sequence[str],
) -> tuple[float, dict[str, float]]:
    """COCO bbox mAP x100 and AP x100 per class with ground truth (pycocotools COCOeval).

    `truths` and `predictions` are each record's boxes in the 0–1000 frame; the record's
    `meta["image_size"]` (default 1000 x 1000) takes them to pixels.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat_ids = {name: k + 1 for k, name in enumerate(classes)}
    images: dict[tuple[str, ...], dict[str, Any]] = {}
    gt_anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for record, truth, preds in zip(records, truths, predictions):
        category = cat_ids.get(str(record.meta.get("category")))
        if category is None:
            continue
        size = tuple(record.meta.get("image_size") or (1000, 1000))
        image = images.setdefault(tuple(record.images), {"id": len(images) + 1, "width": size[0], "height": size[1]})
        for box in truth:
            bbox = _pixels(box, size)
            gt_anns.append(
                {"id": len(gt_anns) + 1, "image_id": image["id"], "category_id": category,
                 "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0}
            )  # fmt: skip
        for det in preds:
            dets.append(
                {"image_id": image["id"], "category_id": category,
                 "bbox": _pixels(det.box, size), "score": det.confidence}
            )  # fmt: skip
    if not gt_anns:
        return 0.0, {}
    gt = COCO()
    gt.dataset = {
        "images": list(images.values()),
        "annotations": gt_anns,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            with_gt = {a["category_id"] for a in gt_anns}
            return 0.0, {n: 0.0 for n, i in cat_ids.items() if i in with_gt}
        evaluator = COCOeval(gt, gt.loadRes(dets), "bbox")
        evaluator.params.catIds = list(cat_ids.values())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # precision: [iou thresholds, recall points, categories, area ranges, max detections]
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, name in enumerate(cat_ids):
        values = precision[:, :, k]
        values = values[values > -1]
        if values.size:
            per_class[name] = 100.0 * float(values.mean())
    return 100.0 * max(0.0, float(evaluator.stats[0])), per_class


def _truth(record: Record) -> list[Box]:
    boxes = truth_boxes(record.answer)
    if boxes is None:
        raise ValueError(f"record {record.id!r}: unreadable detection answer {record.answer!r}")
    return boxes
