"""Drawing primitives for the synthetic tasks: named colours, shape glyphs, placement, digits.

Everything is plain PIL drawing on RGB images driven by a numpy `Generator`, so a seed gives
the same bytes from run to run with the pinned Pillow and numpy. Text uses the small bitmap
font below (digits and a few signs) instead of a system font, whose availability and rendering
vary between machines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "red": (205, 45, 45),
    "green": (45, 160, 70),
    "blue": (45, 85, 215),
    "yellow": (235, 200, 35),
    "purple": (135, 65, 185),
    "gray": (125, 125, 125),
    "cyan": (40, 190, 205),
    "brown": (135, 85, 40),
    "orange": (245, 140, 25),
    "pink": (240, 125, 185),
    "white": (248, 248, 248),
    "black": (25, 25, 25),
}

SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star", "cross")


def pick(rng: np.random.Generator, seq: Sequence):
    """One element of `seq` (a plain Python value, never a numpy scalar)."""
    return seq[int(rng.integers(len(seq)))]


def shuffled(rng: np.random.Generator, seq: Sequence) -> list:
    order = rng.permutation(len(seq))
    return [seq[int(i)] for i in order]


def darker(color: RGB, factor: float = 0.6) -> RGB:
    return tuple(int(c * factor) for c in color)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """`t` of `a` and `1 - t` of `b`."""
    mixed = (int(round(t * x + (1 - t) * y)) for x, y in zip(a, b))
    return tuple(mixed)  # type: ignore[return-value]


def regular_polygon(cx: float, cy: float, r: float, n: int, rotation: float = 0.0):
    return [(cx + r * math.sin(rotation + 2 * math.pi * k / n), cy - r * math.cos(rotation + 2 * math.pi * k / n)) for k in range(n)]


def shape_points(kind: str, cx: float, cy: float, r: float, rotation: float = 0.0):
    """Polygon vertices of a glyph inside the circle of radius `r` (None for a circle itself).

    Every glyph stays inside that circle, so discs placed apart never overlap as glyphs.
    """
    if kind == "circle":
        return None
    if kind == "square":
        return regular_polygon(cx, cy, r * 0.95, 4, rotation + math.pi / 4)
    if kind == "triangle":
        return regular_polygon(cx, cy, r, 3, rotation)
    if kind == "diamond":
        return regular_polygon(cx, cy, r, 4, rotation)
    if kind == "hexagon":
        return regular_polygon(cx, cy, r, 6, rotation)
    if kind == "star":
        outer = regular_polygon(cx, cy, r, 5, rotation)
        inner = regular_polygon(cx, cy, r * 0.45, 5, rotation + math.pi / 5)
        return [p for pair in zip(outer, inner) for p in pair]
    if kind == "cross":
        a, b = r * 0.35, r * 0.9
        pts = [(a, b), (a, a), (b, a), (b, -a), (a, -a), (a, -b), (-a, -b), (-a, -a), (-b, -a), (-b, a), (-a, a), (-a, b)]
        c, s = math.cos(rotation), math.sin(rotation)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")


def shape_bbox(kind: str, cx: float, cy: float, r: float, rotation: float = 0.0):
    """(x1, y1, x2, y2) in pixels, floats: the glyph's exact extent."""
    pts = shape_points(kind, cx, cy, r, rotation)
    if pts is None:
        return (cx - r, cy - r, cx + r, cy + r)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def draw_shape(
    draw: ImageDraw.ImageDraw,
    kind: str,
    cx: float,
    cy: float,
    r: float,
    fill: RGB | None,
    outline: RGB | None = None,
    width: int = 1,
    rotation: float = 0.0,
) -> None:
    pts = shape_points(kind, cx, cy, r, rotation)
    if pts is None:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=outline, width=width)
    else:
        draw.polygon(pts, fill=fill, outline=outline, width=width)


def place_discs(
    rng: np.random.Generator,
    radii: Sequence[float],
    width: int,
    height: int,
    margin: float = 2.0,
    gap: float = 2.0,
    tries: int = 300,
) -> list[tuple[float, float]] | None:
    """Centres for discs of `radii` inside the canvas, pairwise `gap` apart; None on failure."""
    placed: list[tuple[float, float, float]] = []
    for r in radii:
        lo_x, hi_x = margin + r, width - margin - r
        lo_y, hi_y = margin + r, height - margin - r
        if lo_x > hi_x or lo_y > hi_y:
            return None
        for _ in range(tries):
            x = float(rng.uniform(lo_x, hi_x))
            y = float(rng.uniform(lo_y, hi_y))
            if all(math.hypot(x - px, y - py) >= r + pr + gap for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def region_name(cx: float, cy: float, width: int, height: int) -> str:
    """'top left', 'top', …, 'center', …, 'bottom right' by the image's thirds."""
    col = min(2, int(3 * cx / width))
    row = min(2, int(3 * cy / height))
    vertical = ("top", "", "bottom")[row]
    horizontal = ("left", "", "right")[col]
    return " ".join(w for w in (vertical, horizontal) if w) or "center"


def region_phrase(region: str) -> str:
    """'at the top left', 'on the left', 'in the center'."""
    if region == "center":
        return "in the center"
    if region in ("left", "right"):
        return f"on the {region}"
    return f"at the {region}"


def reading_order(centres: Sequence[tuple[float, float]], height: int) -> list[int]:
    """Indices sorted row by row (image thirds), left to right within a row."""
    return sorted(range(len(centres)), key=lambda i: (min(2, int(3 * centres[i][1] / height)), centres[i][0]))


def norm_box(box: Sequence[float], width: int, height: int) -> list[int]:
    """A pixel box as integers in 0–1000 (Qwen2-VL's normalised coordinates), clipped."""
    x1, y1, x2, y2 = box
    scale = (width, height, width, height)
    return [int(min(1000, max(0, round(1000 * v / s)))) for v, s in zip((x1, y1, x2, y2), scale)]


def new_canvas(size: int, color: RGB) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (size, size), color)
    return image, ImageDraw.Draw(image)


# ---------------------------------------------------------------------------------------------
# A 5x7 bitmap font: digits, '.', '?', and a small degree ring.

_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    ".": ("..", "..", "..", "..", "..", "##", "##"),
    "?": (".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."),
    "°": (".#.", "#.#", ".#.", "...", "...", "...", "..."),
}
_GLYPH_HEIGHT = 7


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    widths = [len(_GLYPHS[ch][0]) for ch in text]
    return (sum(widths) + max(0, len(text) - 1)) * scale, _GLYPH_HEIGHT * scale


def draw_text(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, color: RGB, scale: int = 1) -> None:
    """Draw `text` with its top-left corner at (x, y)."""
    x0, y0 = int(round(x)), int(round(y))
    for ch in text:
        glyph = _GLYPHS[ch]
        for row, bits in enumerate(glyph):
            for col, bit in enumerate(bits):
                if bit == "#":
                    px, py = x0 + col * scale, y0 + row * scale
                    draw.rectangle((px, py, px + scale - 1, py + scale - 1), fill=color)
        x0 += (len(glyph[0]) + 1) * scale


def draw_text_centered(draw: ImageDraw.ImageDraw, cx: float, cy: float, text: str, color: RGB, scale: int = 1, background: RGB | None = None) -> None:
    w, h = text_size(text, scale)
    x, y = cx - w / 2, cy - h / 2
    if background is not None:
        box = (x - scale, y - scale, x + w + scale - 1, y + h + scale - 1)
        draw.rectangle(box, fill=background)
    draw_text(draw, x, y, text, color, scale)
