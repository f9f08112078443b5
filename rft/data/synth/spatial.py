"""Spatial transformation (TRANCE style): which changes turn the first scene into the second?

Each record has two images, the initial and the final state of a few objects on a ground plane,
after 1–4 transformations (`min_steps`–`max_steps`), each one of:
change_size {small, medium, large}, change_color {yellow, gray, cyan, blue, brown, green, red,
purple}, change_material {glass, metal, rubber}, change_shape {cube, sphere, cylinder},
change_position {front, behind, left, right, front_left, front_right, behind_left, behind_right}.

Rendering: a cube is a square, a sphere a circle, a cylinder a tall box with an elliptic top;
rubber is a flat fill, metal a fill with light stripes, glass a pale fill with a strong outline.
Seen from the "center" view, behind is up the image and front down it; far objects are a little
smaller. OOD splits show the same kind of scenes from other views: the ground plane turned by
`view_angle` degrees to one side (test_ood, "left") or the other (test_ood_right, "right"), so
"left" in the answer no longer means left in the image.

Problem: "Initial objects: ('0', 'cube', 'small', 'red', 'metal'), …\\nWhat transformations turn
the first image into the second?". Answer: calls sorted by object id then function (size, color,
material, shape, position), joined by ", ": "change_color(1, 'red'), change_position(0, 'front')".
A function is applied at most once per object, so the answer is unique.

    python -m rft.data.synth spatial --out DIR --n 600 --seed 0 --image-size 160
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from rft.data.synth import draw as D
from rft.data.synth.core import Example

SPLITS = ("train", "test_id", "test_ood", "test_ood_right")
QUESTION = "What transformations turn the first image into the second?"
FUNCTIONS = ("change_size", "change_color", "change_material", "change_shape", "change_position")
VALUES = {
    "change_size": ("small", "medium", "large"),
    "change_color": ("yellow", "gray", "cyan", "blue", "brown", "green", "red", "purple"),
    "change_material": ("glass", "metal", "rubber"),
    "change_shape": ("cube", "sphere", "cylinder"),
    "change_position": ("front", "behind", "left", "right", "front_left", "front_right", "behind_left", "behind_right"),
}
_ATTR = {"change_size": "size", "change_color": "color", "change_material": "material", "change_shape": "shape"}
_DIRECTIONS = {  # (dx, dz) on the ground plane: x to the right, z towards the viewer (front)
    "front": (0, 1),
    "behind": (0, -1),
    "left": (-1, 0),
    "right": (1, 0),
    "front_left": (-1, 1),
    "front_right": (1, 1),
    "behind_left": (-1, -1),
    "behind_right": (1, -1),
}
_RADIUS = {"small": 0.065, "medium": 0.09, "large": 0.115}  # ground units (plane radius 0.5)
_VIEWS = {"train": "center", "test_id": "center", "test_ood": "left", "test_ood_right": "right"}
DEFAULTS: dict[str, Any] = {
    "min_objects": 2,
    "max_objects": 4,
    "min_steps": 1,
    "max_steps": 4,
    "step": 0.22,  # how far change_position moves an object, per axis
    "view_angle": 35,
    "background": [200, 200, 195],
}
_PLANE_RADIUS = 0.42  # objects stay inside this disc, so every view keeps them in the image
_SPAN = 0.8  # image sides per ground unit
_TRIES = 100


def make(rng: np.random.Generator, split: str, index: int, image_size: int, opts: dict[str, Any]) -> Example:
    view = _VIEWS[split]
    for _ in range(_TRIES):
        objects = _initial_scene(rng, opts)
        if objects is None:
            continue
        result = _transform(rng, objects, opts)
        if result is not None:
            break
    else:
        raise ValueError("cannot build a spatial scene; lower max_objects or step")
    final, calls = result
    images = [_render(objs, view, image_size, opts) for objs in (objects, final)]
    problem = "Initial objects: " + ", ".join(_tuple_text(i, o) for i, o in enumerate(objects))
    answer = ", ".join(f"{f}({i}, '{v}')" for i, f, v in calls)
    cot = _cot(objects, calls)
    return Example(images, f"{problem}\n{QUESTION}", answer, cot, {"view": view})


def _tuple_text(index: int, obj: dict) -> str:
    return f"('{index}', '{obj['shape']}', '{obj['size']}', '{obj['color']}', '{obj['material']}')"


def _initial_scene(rng, opts) -> list[dict] | None:
    n = int(rng.integers(opts["min_objects"], opts["max_objects"] + 1))
    objects: list[dict] = []
    seen: set[tuple] = set()
    for _ in range(n):
        obj = {attr: D.pick(rng, VALUES[func]) for func, attr in _ATTR.items()}
        key = tuple(obj.values())
        if key in seen:  # identical twins would make "which object changed" ambiguous
            return None
        seen.add(key)
        for _ in range(_TRIES):
            angle, radius = rng.uniform(0, 2 * math.pi), _PLANE_RADIUS * math.sqrt(rng.random())
            obj["x"], obj["z"] = radius * math.cos(angle), radius * math.sin(angle)
            if _fits(obj, objects):
                break
        else:
            return None
        objects.append(obj)
    return objects


def _fits(obj: dict, others: list[dict], gap: float = 0.03) -> bool:
    if math.hypot(obj["x"], obj["z"]) + _RADIUS[obj["size"]] > _PLANE_RADIUS + 0.06:
        return False
    return all(math.hypot(obj["x"] - o["x"], obj["z"] - o["z"]) >= _RADIUS[obj["size"]] + _RADIUS[o["size"]] + gap for o in others)


def _transform(rng, objects: list[dict], opts):
    """(final objects, sorted calls): distinct (object, function) changes; None if stuck."""
    n_steps = int(rng.integers(opts["min_steps"], opts["max_steps"] + 1))
    pairs = [(i, f) for i in range(len(objects)) for f in FUNCTIONS]
    chosen = D.shuffled(rng, pairs)[:n_steps]
    final = [dict(o) for o in objects]
    calls = []
    for index, func in chosen:
        value = _apply(rng, final, index, func, opts)
        if value is None:
            return None
        calls.append((index, func, value))
    calls.sort(key=lambda c: (c[0], FUNCTIONS.index(c[1])))
    return final, calls


def _apply(rng, objects: list[dict], index: int, func: str, opts) -> str | None:
    """Change object `index` in place by `func` to a new value that keeps the scene valid."""
    obj, others = objects[index], objects[:index] + objects[index + 1 :]
    for value in D.shuffled(rng, VALUES[func]):
        trial = dict(obj)
        if func == "change_position":
            dx, dz = _DIRECTIONS[value]
            trial["x"], trial["z"] = obj["x"] + dx * opts["step"], obj["z"] + dz * opts["step"]
        elif obj[_ATTR[func]] == value:
            continue
        else:
            trial[_ATTR[func]] = value
        if _fits(trial, others):
            objects[index] = trial
            return value
    return None


def _cot(objects: list[dict], calls) -> str:
    lines = ["Compare the initial and the final image object by object."]
    for index, func, value in calls:
        o = objects[index]
        name = f"Object {index} ({o['size']} {o['color']} {o['material']} {o['shape']})"
        if func == "change_position":
            lines.append(f"{name} moved {value.replace('_', ' ')}.")
        else:
            attr = _ATTR[func]
            lines.append(f"{name} changed {attr} from {o[attr]} to {value}.")
    lines.append("The other objects did not change.")
    answer = ", ".join(f"{f}({i}, '{v}')" for i, f, v in calls)
    lines.append(f"So the transformations are: {answer}.")
    return " ".join(lines)


# ---------------------------------------------------------------------------------------------
# Rendering


def _project(x: float, z: float, view: str, image_size: int, angle_deg: float):
    """Ground (x, z) to image (u, v, scale): the view turns the plane, then depth maps to v."""
    turn = {"center": 0.0, "left": angle_deg, "right": -angle_deg}[view]
    t = math.radians(turn)
    xr, zr = x * math.cos(t) - z * math.sin(t), x * math.sin(t) + z * math.cos(t)
    depth = 0.85 + 0.3 * (zr + 0.5)  # nearer (front, larger z) is drawn larger
    span = image_size * _SPAN
    return image_size / 2 + xr * span, image_size / 2 + zr * span * 0.8, depth


def _render(objects: list[dict], view: str, image_size: int, opts) -> Image.Image:
    image, canvas = D.new_canvas(image_size, tuple(opts["background"]))
    placed = []
    for obj in objects:
        u, v, depth = _project(obj["x"], obj["z"], view, image_size, opts["view_angle"])
        placed.append((v, u, depth, obj))
    for v, u, depth, obj in sorted(placed, key=lambda p: p[0]):  # far first, near on top
        r = _RADIUS[obj["size"]] * image_size * _SPAN * depth
        _draw_object(image, canvas, obj, u, v, r)
    return image


def _draw_object(image: Image.Image, canvas: ImageDraw.ImageDraw, obj: dict, u: float, v: float, r: float) -> None:
    color = D.COLORS[obj["color"]]
    fill = {"rubber": color, "metal": color, "glass": D.mix(color, (235, 235, 235), 0.35)}
    width = 2 if obj["material"] == "glass" else 1
    outline = color if obj["material"] == "glass" else D.darker(color)
    mask = Image.new("L", image.size, 0)
    mask_draw = ImageDraw.Draw(mask)
    for target, ink in ((canvas, None), (mask_draw, 255)):
        body = fill[obj["material"]] if ink is None else ink
        edge = outline if ink is None else ink
        _draw_body(target, obj["shape"], u, v, r, body, edge, width)
    if obj["material"] == "metal":
        stripes = Image.new("RGB", image.size, D.mix(color, (255, 255, 255), 0.45))
        pattern = Image.new("L", image.size, 0)
        pattern_draw = ImageDraw.Draw(pattern)
        for k in range(-image.size[0], image.size[0], 4):  # diagonal highlight lines
            pattern_draw.line([(k, 0), (k + image.size[1], image.size[1])], fill=255, width=1)
        image.paste(stripes, (0, 0), ImageChops.multiply(mask, pattern))
        _draw_body(canvas, obj["shape"], u, v, r, None, outline, width)


def _draw_body(draw: ImageDraw.ImageDraw, shape: str, u: float, v: float, r: float, fill, outline, width: int) -> None:
    if shape == "sphere":
        draw.ellipse((u - r, v - r, u + r, v + r), fill=fill, outline=outline, width=width)
    elif shape == "cube":
        s = r * 0.85
        draw.rectangle((u - s, v - s, u + s, v + s), fill=fill, outline=outline, width=width)
    else:  # cylinder: a taller, narrower body with an elliptic top
        w, h, cap = r * 0.7, r, r * 0.3
        draw.rectangle((u - w, v - h + cap, u + w, v + h), fill=fill, outline=outline, width=width)
        top = (u - w, v - h, u + w, v - h + 2 * cap)
        draw.ellipse(top, fill=fill, outline=outline, width=width)
