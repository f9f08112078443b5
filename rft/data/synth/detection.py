"""Open-vocabulary detection (Visual-RFT's COCO/LVIS setting): box every object of one category.

Scenes hold `min_objects`–`max_objects` non-overlapping shapes of random colours. Categories are
shape names: train and test_id use `base_categories` only; test_ood scenes mix base and
`novel_categories` and always ask for a novel one, so it measures transfer to unseen classes.
With probability `absent_fraction` the asked category is absent from the image.

Problem: the category name ("circle"; the task's prompt template wraps it). Answer: the boxes in
Qwen2-VL's 0–1000 integer coordinates, sorted by (x1, y1), as
`[{'Position': [x1, y1, x2, y2], 'Confidence': 1}, ...]`, or `No Objects` when there are none.
`meta`: `category`, `image_size` [w, h] (for absolute-pixel models), `categories` (the split's
vocabulary) and `all_boxes` (every object's category and 0–1000 box, for COCO-style mAP).

    python -m rft.data.synth detection --out DIR --n 400 --seed 0 --image-size 224
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rft.data.synth import draw as D
from rft.data.synth.core import Example

SPLITS = ("train", "test_id", "test_ood")
NO_OBJECTS = "No Objects"
DEFAULTS: dict[str, Any] = {
    "base_categories": ["circle", "square", "triangle"],
    "novel_categories": ["star", "cross", "hexagon"],
    "colors": ["red", "green", "blue", "yellow", "purple", "orange"],
    "min_objects": 1,
    "max_objects": 4,
    "absent_fraction": 0.15,
    "min_radius": 0.07,  # as fractions of the image side
    "max_radius": 0.14,
    "background": [240, 240, 240],
}
_TRIES = 50


def make(rng: np.random.Generator, split: str, index: int, image_size: int, opts: dict[str, Any]) -> Example:
    ood = split == "test_ood"
    vocabulary = opts["base_categories"] + (opts["novel_categories"] if ood else [])
    askable = opts["novel_categories"] if ood else opts["base_categories"]
    asked = D.pick(rng, askable)
    absent = rng.random() < opts["absent_fraction"]
    objects = _scene(rng, vocabulary, asked, absent, image_size, opts)
    image, canvas = D.new_canvas(image_size, tuple(opts["background"]))
    for shape, color, cx, cy, r, rot in objects:
        rgb = D.COLORS[color]
        D.draw_shape(canvas, shape, cx, cy, r, fill=rgb, outline=D.darker(rgb), rotation=rot)
    boxes = [(shape, color, cx, cy, D.norm_box(D.shape_bbox(shape, cx, cy, r, rot), image_size, image_size)) for shape, color, cx, cy, r, rot in objects]
    hits = sorted((b for b in boxes if b[0] == asked), key=lambda b: (b[4][0], b[4][1]))
    answer = format_boxes([b[4] for b in hits])
    meta = {"category": asked, "image_size": [image_size, image_size], "categories": vocabulary, "all_boxes": [{"category": b[0], "box": b[4]} for b in boxes]}
    return Example([image], asked, answer, _cot(asked, hits, image_size), meta)


def format_boxes(boxes: list[list[int]]) -> str:
    if not boxes:
        return NO_OBJECTS
    return "[" + ", ".join(f"{{'Position': {b}, 'Confidence': 1}}" for b in boxes) + "]"


def _scene(rng, vocabulary, asked, absent, image_size, opts):
    """[(shape, color, cx, cy, r, rotation)] with `asked` present unless `absent`."""
    others = [c for c in vocabulary if c != asked]
    for _ in range(_TRIES):
        n = int(rng.integers(opts["min_objects"], opts["max_objects"] + 1))
        pool = others if absent else vocabulary
        shapes = [D.pick(rng, pool) for _ in range(n)]
        if not absent and asked not in shapes:
            shapes[int(rng.integers(n))] = asked
        radii = [image_size * float(rng.uniform(opts["min_radius"], opts["max_radius"])) for _ in range(n)]
        centres = D.place_discs(rng, radii, image_size, image_size, margin=1, gap=3)
        if centres is None:
            continue
        return [(s, D.pick(rng, opts["colors"]), cx, cy, r, _rotation(rng, s)) for s, (cx, cy), r in zip(shapes, centres, radii)]
    raise ValueError("cannot place the detection scene; lower max_objects or the radii")


def _rotation(rng, shape: str) -> float:
    # Only small tilts: the category names must stay true (a tilted square is still a square).
    return 0.0 if shape == "circle" else float(rng.uniform(-0.2, 0.2)) * math.pi / 4


def _cot(asked: str, hits, image_size: int) -> str:
    if not hits:
        return f"I look for every {asked} in the image. There is none, so the answer is No Objects."
    parts = [f"I look for every {asked} in the image."]
    for shape, color, cx, cy, box in hits:
        where = D.region_phrase(D.region_name(cx, cy, image_size, image_size))
        parts.append(f"There is a {color} {shape} {where} with box {box}.")
    n = len(hits)
    parts.append(f"That is {n} {asked}{'s' if n != 1 else ''}, each with confidence 1.")
    return " ".join(parts)
