"""Visual counting (CLEVR-Math style): count the shapes in a flat scene.

Scenes hold circles, squares and triangles in a few colours and two sizes, never overlapping.
ID splits (train, test_id) have `min_objects`–`max_objects` objects; test_ood has
`ood_min_objects`–`ood_max_objects` objects and every scene contains at least one object whose
shape (`ood_shapes`) or colour (`ood_colors`) never appears in training.

Answer: the count as a decimal string ("3"). The cot enumerates the objects in reading order
("There is a large red circle at the top left. … In total there are 3 objects.").

    python -m rft.data.synth counting --out DIR --n 1000 --seed 0 --opt max_objects=4
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rft.data.synth import draw as D
from rft.data.synth.core import Example

SPLITS = ("train", "test_id", "test_ood")
QUESTION = "How many objects are there in the image?"
DEFAULTS: dict[str, Any] = {
    "min_objects": 1,
    "max_objects": 6,
    "ood_min_objects": 7,
    "ood_max_objects": 10,
    "shapes": ["circle", "square", "triangle"],
    "colors": ["red", "green", "blue", "yellow", "purple", "gray"],
    "ood_shapes": ["star", "hexagon"],
    "ood_colors": ["orange", "cyan"],
    "sizes": {"small": 0.055, "large": 0.09},  # radius as a fraction of the image side
    "background": [235, 235, 235],
}
_MAX_SCENE_TRIES = 50


def make(rng: np.random.Generator, split: str, index: int, image_size: int, opts: dict[str, Any]) -> Example:
    ood = split == "test_ood"
    lo, hi = (opts["ood_min_objects"], opts["ood_max_objects"]) if ood else (opts["min_objects"], opts["max_objects"])
    n = int(rng.integers(lo, hi + 1))
    objects = _attributes(rng, n, opts, ood)
    objects, centres, radii = _place(rng, objects, image_size, opts)
    image, canvas = D.new_canvas(image_size, tuple(opts["background"]))
    for (shape, color, _), (cx, cy), r in zip(objects, centres, radii):
        rgb = D.COLORS[color]
        D.draw_shape(canvas, shape, cx, cy, r, fill=rgb, outline=D.darker(rgb))
    cot = _cot(objects, centres, image_size)
    return Example([image], QUESTION, str(n), cot, {})


def _attributes(rng, n: int, opts, ood: bool) -> list[tuple[str, str, str]]:
    """(shape, color, size) per object; an OOD scene gets at least one unseen shape or colour."""
    shapes = opts["shapes"] + (opts["ood_shapes"] if ood else [])
    colors = opts["colors"] + (opts["ood_colors"] if ood else [])
    sizes = sorted(opts["sizes"])
    objects = [(D.pick(rng, shapes), D.pick(rng, colors), D.pick(rng, sizes)) for _ in range(n)]
    if ood and not any(s in opts["ood_shapes"] or c in opts["ood_colors"] for s, c, _ in objects):
        shape, color, size = objects[0]
        if opts["ood_colors"] and (not opts["ood_shapes"] or rng.random() < 0.5):
            color = D.pick(rng, opts["ood_colors"])
        else:
            shape = D.pick(rng, opts["ood_shapes"])
        objects[0] = (shape, color, size)
        objects = D.shuffled(rng, objects)
    return objects


def _place(rng, objects, image_size: int, opts):
    """(objects, centres, radii) without overlaps; when a scene will not fit after many tries,
    every object becomes the smallest size (and is described so)."""
    fractions = dict(opts["sizes"])
    smallest = min(fractions, key=fractions.get)
    for attempt in range(_MAX_SCENE_TRIES):
        if attempt == _MAX_SCENE_TRIES // 2:
            objects = [(shape, color, smallest) for shape, color, _ in objects]
        radii = [image_size * fractions[size] for _, _, size in objects]
        centres = D.place_discs(rng, radii, image_size, image_size, margin=2, gap=2)
        if centres is not None:
            return objects, centres, radii
    raise ValueError(f"cannot fit {len(objects)} objects in {image_size}px; lower max_objects or the sizes, or raise image_size")


def _cot(objects, centres, image_size: int) -> str:
    sentences = []
    for i in D.reading_order(centres, image_size):
        shape, color, size = objects[i]
        where = D.region_phrase(D.region_name(*centres[i], image_size, image_size))
        sentences.append(f"There is a {size} {color} {shape} {where}.")
    n = len(objects)
    total = "In total there is 1 object." if n == 1 else f"In total there are {n} objects."
    return " ".join(sentences + [total])
