"""Referring-expression grounding (Visual-RFT's LISA setting): box the described object.

Scenes hold `min_objects`–`max_objects` shapes (shape, colour, small/large). The target gets the
shortest description that picks it out alone: "the blue square", else "the small blue square",
else a relation to a uniquely named anchor: "the small blue square left of the red circle"
(relations: left of, right of, above, below). With probability `relation_fraction` the scene gets
a twin of the target, so only a relation can single it out. test_ood scenes are larger
(`ood_min_objects`–`ood_max_objects`), always need a relation, and use `ood_shapes` and
`ood_colors` as well.

Problem: the description. Answer: `(x1,y1),(x2,y2)` in Qwen2-VL's 0–1000 integer coordinates.
`meta["image_size"]` = [w, h].

    python -m rft.data.synth grounding --out DIR --n 400 --seed 0 --image-size 224
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rft.data.synth import draw as D
from rft.data.synth.core import Example

SPLITS = ("train", "test_id", "test_ood")
DEFAULTS: dict[str, Any] = {
    "min_objects": 3,
    "max_objects": 5,
    "ood_min_objects": 5,
    "ood_max_objects": 7,
    "shapes": ["circle", "square", "triangle"],
    "colors": ["red", "green", "blue", "yellow", "purple"],
    "ood_shapes": ["star", "diamond"],
    "ood_colors": ["orange", "cyan"],
    "relation_fraction": 0.4,
    "sizes": {"small": 0.07, "large": 0.11},
    "background": [238, 238, 238],
}
_RELATIONS = ("left of", "right of", "above", "below")
_TRIES = 100


def make(rng: np.random.Generator, split: str, index: int, image_size: int, opts: dict[str, Any]) -> Example:
    ood = split == "test_ood"
    for _ in range(_TRIES):
        objects = _scene(rng, image_size, opts, ood)
        if objects is None:
            continue
        target = 0  # attributes and places are random, so the first object is as good as any
        description = _describe(objects, target, image_size, need_relation=ood)
        if description is not None:
            break
    else:
        raise ValueError("cannot build a describable grounding scene; adjust the object counts")
    image, canvas = D.new_canvas(image_size, tuple(opts["background"]))
    for shape, color, _size, cx, cy, r in objects:
        rgb = D.COLORS[color]
        D.draw_shape(canvas, shape, cx, cy, r, fill=rgb, outline=D.darker(rgb))
    shape, color, size, cx, cy, r = objects[target]
    x1, y1, x2, y2 = D.norm_box(D.shape_bbox(shape, cx, cy, r), image_size, image_size)
    answer = f"({x1},{y1}),({x2},{y2})"
    where = D.region_phrase(D.region_name(cx, cy, image_size, image_size))
    cot = f"The object described as {description} is the {size} {color} {shape} {where}. Its bounding box is {answer}."
    return Example([image], description, answer, cot, {"image_size": [image_size, image_size]})


def _scene(rng, image_size: int, opts, ood: bool):
    """[(shape, color, size, cx, cy, r)], the target first; None if placement failed."""
    lo, hi = (opts["ood_min_objects"], opts["ood_max_objects"]) if ood else (opts["min_objects"], opts["max_objects"])
    shapes = opts["shapes"] + (opts["ood_shapes"] if ood else [])
    colors = opts["colors"] + (opts["ood_colors"] if ood else [])
    sizes = sorted(opts["sizes"])
    n = int(rng.integers(lo, hi + 1))
    attrs = [(D.pick(rng, shapes), D.pick(rng, colors), D.pick(rng, sizes)) for _ in range(n)]
    if ood or rng.random() < opts["relation_fraction"]:
        attrs[1] = attrs[0]  # a twin: attributes alone cannot tell them apart
    radii = [image_size * opts["sizes"][size] for _, _, size in attrs]
    centres = D.place_discs(rng, radii, image_size, image_size, margin=2, gap=3)
    if centres is None:
        return None
    return [(*a, cx, cy, r) for a, (cx, cy), r in zip(attrs, centres, radii)]


def _describe(objects, target: int, image_size: int, need_relation: bool) -> str | None:
    shape, color, size = objects[target][:3]
    if not need_relation:
        if _count(objects, shape=shape, color=color) == 1:
            return f"the {color} {shape}"
        if _count(objects, shape=shape, color=color, size=size) == 1:
            return f"the {size} {color} {shape}"
    return _relational(objects, target, image_size)


def _count(objects, **attrs) -> int:
    keys = ("shape", "color", "size")
    return sum(all(dict(zip(keys, o[:3]))[k] == v for k, v in attrs.items()) for o in objects)


def _relational(objects, target: int, image_size: int) -> str | None:
    """'the {size} {color} {shape} {relation} the {color} {shape}', unique, or None."""
    shape, color, size = objects[target][:3]
    twins = [i for i, o in enumerate(objects) if o[:3] == (shape, color, size)]
    margin = image_size * 0.05
    for a, anchor in enumerate(objects):
        if a in twins or _count(objects, shape=anchor[0], color=anchor[1]) != 1:
            continue
        for relation in _RELATIONS:
            holding = [i for i in twins if _holds(objects[i], anchor, relation, margin)]
            if holding == [target]:
                return f"the {size} {color} {shape} {relation} the {anchor[1]} {anchor[0]}"
    return None


def _holds(obj, anchor, relation: str, margin: float) -> bool:
    dx, dy = obj[3] - anchor[3], obj[4] - anchor[4]
    if relation == "left of":
        return dx < -margin and abs(dy) < abs(dx)
    if relation == "right of":
        return dx > margin and abs(dy) < abs(dx)
    if relation == "above":
        return dy < -margin and abs(dx) < abs(dy)
    return dy > margin and abs(dx) < abs(dy)
