"""Fine-grained classification (Visual-RFT's few-shot flowers): name the species of a flower glyph.

Species differ by petal count, petal shape and colours (`SPECIES`; the first `n_classes` are
used). No name contains another once lowercased without spaces, so the containment-based reward
cannot confuse two species. Every split cycles through the classes (index mod n_classes),
so `n_train = shots * n_classes` gives exactly `shots` examples a class. Flowers are drawn at a
random rotation on a light, plain background; test_ood keeps the species but changes the
background (dark, striped or checked) and the scale and position of the flower.

Problem: "What species of flower is this? Choose one of: …". Answer: the species name.
`meta = {"kind": "flower", "classes": [...]}`.

    python -m rft.data.synth classification --out DIR --n 16 --n-test 40 --seed 0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import ImageDraw

from rft.data.synth import draw as D
from rft.data.synth.core import Example

SPLITS = ("train", "test_id", "test_ood")
# name: (petals, petal shape, petal colour, centre colour)
SPECIES: dict[str, tuple[int, str, str, str]] = {
    "crimson trillium": (3, "pointed", "red", "yellow"),
    "azure periwinkle": (5, "round", "blue", "white"),
    "golden sunburst": (8, "pointed", "yellow", "brown"),
    "rose clover": (4, "round", "pink", "green"),
    "ivory starwort": (6, "pointed", "white", "orange"),
    "violet bellflower": (5, "pointed", "purple", "yellow"),
}
DEFAULTS: dict[str, Any] = {"n_classes": 4}


def _squash(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "")


assert not any(_squash(a) in _squash(b) for a in SPECIES for b in SPECIES if a != b)


def make(rng: np.random.Generator, split: str, index: int, image_size: int, opts: dict[str, Any]) -> Example:
    classes = _classes(opts)
    name = classes[index % len(classes)]
    ood = split == "test_ood"
    image, canvas = D.new_canvas(image_size, (0, 0, 0))
    _background(rng, canvas, image_size, ood)
    scale = float(rng.uniform(0.45, 0.65)) if ood else float(rng.uniform(0.8, 1.0))
    radius = image_size * 0.42 * scale
    slack = image_size / 2 - radius - 2
    shift = slack if ood else min(slack, image_size * 0.04)
    cx = image_size / 2 + float(rng.uniform(-shift, shift))
    cy = image_size / 2 + float(rng.uniform(-shift, shift))
    _flower(canvas, SPECIES[name], cx, cy, radius, float(rng.uniform(0, 2 * math.pi)))
    petals, shape, petal_color, centre = SPECIES[name]
    problem = f"What species of flower is this? Choose one of: {', '.join(classes)}."
    cot = f"The flower has {petals} {shape} {petal_color} petals around a {centre} centre. That matches the {name}."
    return Example([image], problem, name, cot, {"kind": "flower", "classes": classes})


def _classes(opts) -> list[str]:
    n = opts["n_classes"]
    if not 2 <= n <= len(SPECIES):
        raise ValueError(f"n_classes must be 2–{len(SPECIES)}, got {n}")
    return list(SPECIES)[:n]


def _background(rng, canvas: ImageDraw.ImageDraw, size: int, ood: bool) -> None:
    if not ood:
        tint = [int(v) for v in rng.integers(225, 250, size=3)]
        canvas.rectangle((0, 0, size, size), fill=tuple(tint))
        return
    style = D.pick(rng, ["dark", "stripes", "checks"])
    dark = tuple(int(v) for v in rng.integers(20, 70, size=3))
    canvas.rectangle((0, 0, size, size), fill=dark)
    if style == "dark":
        return
    light = tuple(min(255, c + 60) for c in dark)
    step = max(4, size // 10)
    for k in range(0, size, step * 2):
        if style == "stripes":
            canvas.rectangle((k, 0, k + step - 1, size), fill=light)
        else:
            for j in range(0, size, step):
                off = step if (j // step) % 2 else 0
                canvas.rectangle((k + off, j, k + off + step - 1, j + step - 1), fill=light)


def _flower(canvas: ImageDraw.ImageDraw, species, cx: float, cy: float, radius: float, rotation: float) -> None:
    petals, shape, petal_color, centre_color = species
    rgb = D.COLORS[petal_color]
    for k in range(petals):
        angle = rotation + 2 * math.pi * k / petals
        canvas.polygon(_petal(cx, cy, radius, angle, shape, petals), fill=rgb, outline=D.darker(rgb, 0.75))
    r = radius * 0.24
    canvas.ellipse((cx - r, cy - r, cx + r, cy + r), fill=D.COLORS[centre_color], outline=D.darker(D.COLORS[centre_color], 0.7))


def _petal(cx, cy, radius, angle, shape, petals):
    """Outline of one petal pointing along `angle`: an ellipse ("round") or a kite ("pointed")."""
    length, mid = radius * 0.5, radius * 0.5  # the petal spans 0–radius from the centre
    half_width = min(radius * (0.24 if shape == "round" else 0.2), radius * 1.4 / petals)
    if shape == "round":
        points = [(mid + length * math.cos(t), half_width * math.sin(t)) for t in (2 * math.pi * k / 24 for k in range(24))]
    else:
        points = [(mid - length, 0.0), (mid - 0.2 * length, half_width), (mid + length, 0.0), (mid - 0.2 * length, -half_width)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + a * c - b * s, cy + a * s + b * c) for a, b in points]
