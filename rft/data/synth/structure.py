"""Structure perception (Geometry3K style): read labelled measurements off a figure and compute.

Figures are drawn to scale with their measurements written beside them ("?" marks the unknown).
ID kinds (`kinds`): a rectangle (area or perimeter) and a right triangle (hypotenuse or area).
OOD kinds (`ood_kinds`): a trapezoid (area) and a triangle with two angles given (the third).

`meta["subset"]` is "choice" (the problem ends with four options, one a line: "A. 24", …; the
answer is the letter) or "non_choice" (the answer is the number: "12" or "7.5"); `choice_fraction`
sets the mix. `meta["kind"]` names the figure. The cot states the measurements and the computation.

    python -m rft.data.synth structure --out DIR --n 400 --seed 0 --image-size 160
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from rft.data.synth import draw as D
from rft.data.synth.core import Example

SPLITS = ("train", "test_id", "test_ood")
DEFAULTS: dict[str, Any] = {
    "kinds": ["rectangle", "right_triangle"],
    "ood_kinds": ["trapezoid", "angle_triangle"],
    "choice_fraction": 0.5,
    "max_side": 12,
}
LETTERS = "ABCD"
_TRIPLES = [(3, 4, 5), (6, 8, 10), (5, 12, 13), (9, 12, 15), (8, 15, 17), (12, 16, 20)]
_INK, _PAPER, _LABEL = (30, 30, 30), (255, 255, 255), (20, 60, 170)


def make(rng: np.random.Generator, split: str, index: int, image_size: int, opts: dict[str, Any]) -> Example:
    kinds = opts["ood_kinds"] if split == "test_ood" else opts["kinds"]
    kind = D.pick(rng, kinds)
    image, canvas = D.new_canvas(image_size, _PAPER)
    question, value, steps, wrong = _FIGURES[kind](rng, canvas, image_size, opts)
    answer = fmt_num(value)
    if rng.random() < opts["choice_fraction"]:
        options = _options(rng, value, wrong)
        letter = LETTERS[options.index(value)]
        lines = [f"{LETTERS[i]}. {fmt_num(v)}" for i, v in enumerate(options)]
        problem = "\n".join([question] + lines)
        cot = f"{steps} The answer {answer} is option {letter}."
        return Example([image], problem, letter, cot, {"subset": "choice", "kind": kind})
    return Example([image], question, answer, steps, {"subset": "non_choice", "kind": kind})


def fmt_num(value: Fraction) -> str:
    """ "12", "7.5", "2.25": exact decimals, no trailing zeros."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    if Fraction(text) != value:
        raise ValueError(f"{value} has no short exact decimal")
    return text


def _options(rng, value: Fraction, wrong: list[Fraction]) -> list[Fraction]:
    """The answer and three distinct positive distractors, shuffled."""
    pool = [w for w in dict.fromkeys(wrong) if w > 0 and w != value]
    step = max(1, int(value) // 5)
    k = 1
    while len(pool) < 3:  # near misses when the figure offers too few plausible wrong answers
        for cand in (value + k * step, value - k * step):
            if cand > 0 and cand != value and cand not in pool and len(pool) < 3:
                pool.append(cand)
        k += 1
    chosen = D.shuffled(rng, pool)[:3]
    return D.shuffled(rng, chosen + [value])


def _scale_to_fit(width: float, height: float, image_size: int) -> tuple[float, float]:
    """Pixels per unit and the margin that keeps a width x height figure and its labels inside."""
    margin = image_size * 0.2
    scale = min((image_size - 2 * margin) / width, (image_size - 2 * margin) / height)
    return scale, margin


def _font_scale(image_size: int) -> int:
    return max(1, image_size // 112)


def _label(canvas, x: float, y: float, text: str, image_size: int) -> None:
    D.draw_text_centered(canvas, x, y, text, _LABEL, _font_scale(image_size), background=_PAPER)


def _rectangle(rng, canvas, size: int, opts):
    w = int(rng.integers(2, opts["max_side"] + 1))
    h = int(rng.integers(2, opts["max_side"] + 1))
    scale, _ = _scale_to_fit(w, h, size)
    pw, ph = w * scale, h * scale
    x0, y0 = (size - pw) / 2, (size - ph) / 2
    canvas.rectangle((x0, y0, x0 + pw, y0 + ph), outline=_INK, width=2)
    gap = size * 0.07
    _label(canvas, x0 + pw / 2, y0 + ph + gap, str(w), size)
    _label(canvas, x0 - gap, y0 + ph / 2, str(h), size)
    area, perimeter = Fraction(w * h), Fraction(2 * (w + h))
    facts = f"The rectangle has width {w} and height {h}."
    if rng.random() < 0.5:
        steps = f"{facts} Its area is width times height: {w} * {h} = {w * h}."
        return "Find the area of the rectangle.", area, steps, [perimeter, Fraction(w + h), area + w, area - h]
    steps = f"{facts} Its perimeter is 2 * ({w} + {h}) = {2 * (w + h)}."
    return "Find the perimeter of the rectangle.", perimeter, steps, [area, Fraction(w + h), perimeter + 2]


def _right_triangle(rng, canvas, size: int, opts):
    if rng.random() < 0.5:
        a, b, c = D.pick(rng, _TRIPLES)
        if rng.random() < 0.5:
            a, b = b, a
        ask = "hypotenuse"
    else:
        a = int(rng.integers(2, opts["max_side"] + 1))
        b = int(rng.integers(2, opts["max_side"] + 1))
        c, ask = None, "area"
    scale, _ = _scale_to_fit(a, b, size)
    pa, pb = a * scale, b * scale
    x0, y0 = (size - pa) / 2, (size + pb) / 2  # the right angle, bottom left
    corner, right, top = (x0, y0), (x0 + pa, y0), (x0, y0 - pb)
    canvas.polygon([corner, right, top], outline=_INK, width=2)
    m = size * 0.06
    canvas.line([(x0 + m, y0), (x0 + m, y0 - m), (x0, y0 - m)], fill=_INK, width=1)
    gap = size * 0.07
    _label(canvas, x0 + pa / 2, y0 + gap, str(a), size)
    _label(canvas, x0 - gap, y0 - pb / 2, str(b), size)
    facts = f"The right triangle has legs {a} and {b}."
    if ask == "hypotenuse":
        _label(canvas, x0 + pa / 2 + gap * 0.7, y0 - pb / 2 - gap * 0.7, "?", size)
        steps = f"{facts} By the Pythagorean theorem the hypotenuse is sqrt({a}^2 + {b}^2) = sqrt({a * a + b * b}) = {c}."
        wrong = [Fraction(a + b), Fraction(abs(b - a)), Fraction(a * b, 2), Fraction(c + 1)]
        return "Find the length of the hypotenuse.", Fraction(c), steps, wrong
    area = Fraction(a * b, 2)
    steps = f"{facts} Its area is half the product of the legs: {a} * {b} / 2 = {fmt_num(area)}."
    wrong = [Fraction(a * b), Fraction(a + b), area + 1, Fraction(a * b, 4)]
    return "Find the area of the right triangle.", area, steps, wrong


def _trapezoid(rng, canvas, size: int, opts):
    top = int(rng.integers(2, opts["max_side"]))
    bottom = int(rng.integers(top + 1, opts["max_side"] + 2))
    h = int(rng.integers(2, opts["max_side"] + 1))
    scale, _ = _scale_to_fit(bottom, h, size)
    pb, pt, ph = bottom * scale, top * scale, h * scale
    x0, y0 = (size - pb) / 2, (size + ph) / 2
    inset = (pb - pt) / 2
    pts = [(x0, y0), (x0 + pb, y0), (x0 + inset + pt, y0 - ph), (x0 + inset, y0 - ph)]
    canvas.polygon(pts, outline=_INK, width=2)
    hx = x0 + inset + pt / 2
    for yy in range(int(y0 - ph), int(y0), 4):  # the height as a dashed line
        canvas.line([(hx, yy), (hx, min(yy + 2, y0))], fill=_INK, width=1)
    gap = size * 0.07
    _label(canvas, x0 + pb / 2, y0 + gap, str(bottom), size)
    _label(canvas, x0 + pb / 2, y0 - ph - gap, str(top), size)
    _label(canvas, hx + gap, y0 - ph / 2, str(h), size)
    area = Fraction((top + bottom) * h, 2)
    steps = f"The trapezoid has parallel sides {top} and {bottom} and height {h}. Its area is ({top} + {bottom}) * {h} / 2 = {fmt_num(area)}."
    wrong = [Fraction((top + bottom) * h), Fraction(top * h), Fraction(bottom * h), area + 1]
    return "Find the area of the trapezoid.", area, steps, wrong


def _angle_triangle(rng, canvas, size: int, opts):
    alpha = 5 * int(rng.integers(6, 17))  # 30°–80°
    beta = 5 * int(rng.integers(6, min(16, 30 - alpha // 5) + 1))  # acute, third angle ≥ 30°
    gamma = 180 - alpha - beta
    base = size * 0.6
    ta, tb = math.tan(math.radians(alpha)), math.tan(math.radians(beta))
    apex_x = base * tb / (ta + tb)
    apex_h = apex_x * ta
    if apex_h > size * 0.6:  # keep tall triangles inside: shrink the base instead
        base, apex_x, apex_h = (v * size * 0.6 / apex_h for v in (base, apex_x, apex_h))
    x0, y0 = (size - base) / 2, size / 2 + apex_h / 2
    A, B, C = (x0, y0), (x0 + base, y0), (x0 + apex_x, y0 - apex_h)
    canvas.polygon([A, B, C], outline=_INK, width=2)
    arc = size * 0.07  # marks which angle each label belongs to
    canvas.arc((A[0] - arc, A[1] - arc, A[0] + arc, A[1] + arc), -alpha, 0, fill=_LABEL)
    canvas.arc((B[0] - arc, B[1] - arc, B[0] + arc, B[1] + arc), 180, 180 + beta, fill=_LABEL)
    gap = size * 0.08
    _label(canvas, A[0], A[1] + gap, f"{alpha}°", size)
    _label(canvas, B[0], B[1] + gap, f"{beta}°", size)
    _label(canvas, C[0], C[1] - gap, "?", size)
    steps = f"Two angles of the triangle are {alpha} and {beta} degrees. The angles of a triangle sum to 180, so the third is 180 - {alpha} - {beta} = {gamma}."
    wrong = [Fraction(180 - alpha), Fraction(180 - beta), Fraction(alpha + beta), Fraction(abs(alpha - beta))]
    return "Find the unknown angle in degrees.", Fraction(gamma), steps, wrong


_FIGURES: dict[str, Callable] = {
    "rectangle": _rectangle,
    "right_triangle": _right_triangle,
    "trapezoid": _trapezoid,
    "angle_triangle": _angle_triangle,
}
