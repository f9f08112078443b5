"""Boxes: parsing detection lists and grounding corners, coordinate conventions, IoU and GIoU.

Boxes are `(x1, y1, x2, y2)` tuples of floats. Solutions are in the Qwen2-VL convention,
normalised to 0–1000. Predictions come in `box_format` "norm1000" (Qwen2-VL, the default) or
"abs" (Qwen2.5-VL: pixels of the resized image the model saw, whose `(w, h)` is `image_size`);
`to_norm1000` brings them to the solutions' frame before any overlap is measured.

Detection answers are the seeds' list `[{'Position': [x1, y1, x2, y2], 'Confidence': c}, …]` or
`No Objects`; `parse_detections` repairs them as the seeds do (`[[`/`]]`, single quotes, a list
cut off after its last complete `},`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

from rft.rewards.common import RewardConfigError, finite_float, open_answer_span

Box = tuple[float, float, float, float]
BOX_FORMATS = ("norm1000", "abs")


class Detection(NamedTuple):
    box: Box
    confidence: float


def is_no_objects(text: str) -> bool:
    return text.strip().strip("'\"").strip().rstrip(".").strip().lower() == "no objects"


def parse_detections(text: str) -> list[Detection] | None:
    """The detections of an answer ([] for `No Objects`), or None if it cannot be read.

    Reads the `<answer>` span (to the end of the text if `</answer>` is missing, i.e. the
    completion was cut off), else the whole text. Entries without a 4-number `Position` or a
    numeric `Confidence` are dropped; confidences are clipped to [0, 1].
    """
    span = open_answer_span(text)
    content = (text if span is None else span).strip()
    if is_no_objects(content):
        return []
    content = content.replace("[[", "[").replace("]]", "]")
    if not content.endswith("]"):
        cut = content.rfind("},")
        if cut < 0:
            return None
        content = content[: cut + 1] + "]"
    try:
        entries = json.loads(content.replace("'", '"'))
    except (ValueError, RecursionError):
        return None
    if not isinstance(entries, list):
        return None
    return [d for d in map(_detection, entries) if d is not None]


def _detection(entry: object) -> Detection | None:
    if not isinstance(entry, dict):
        return None
    box = as_box(entry.get("Position"))
    confidence = finite_float(entry.get("Confidence"))
    if box is None or confidence is None:
        return None
    return Detection(box, min(1.0, max(0.0, confidence)))


def as_box(value: object) -> Box | None:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    coords = [finite_float(v) for v in value]
    if any(c is None for c in coords):
        return None
    return tuple(coords)  # type: ignore[return-value]


_NUM = r"(-?+\d++(?:\.\d++)?+)"
_CORNERS = re.compile(rf"\(\s*+{_NUM}\s*+,\s*+{_NUM}\s*+\)\s*+,\s*+\(\s*+{_NUM}\s*+,\s*+{_NUM}\s*+\)")


def parse_corners(text: str) -> Box | None:
    """The first `(x1,y1),(x2,y2)` in `text` as a box with ordered corners, or None."""
    match = _CORNERS.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = (float(g) for g in match.groups())
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def to_norm1000(box: Box, box_format: str = "norm1000", image_size: Sequence[float] | None = None) -> Box:
    """`box` in the 0–1000 frame; "abs" boxes need the `(w, h)` of the image the model saw."""
    if box_format == "norm1000":
        return box
    if box_format != "abs":
        raise RewardConfigError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}")
    if image_size is None or len(image_size) != 2 or min(image_size) <= 0:
        raise RewardConfigError(f"box_format='abs' needs image_size=(w, h) > 0, got {image_size!r}")
    sx, sy = 1000.0 / image_size[0], 1000.0 / image_size[1]
    x1, y1, x2, y2 = box
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Box, b: Box) -> float:
    """Intersection over union in [0, 1]; 0 for empty or inverted boxes."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    value = inter / union if union > 0 else 0.0
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def giou(a: Box, b: Box) -> float:
    """Generalised IoU in [-1, 1] of two boxes with ordered corners."""
    if a == b:
        return 1.0
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if not (hull > 0 and math.isfinite(hull)):
        return -1.0
    union = area(a) + area(b) - intersection(a, b)
    value = iou(a, b) - (hull - union) / hull
    return min(1.0, max(-1.0, value)) if math.isfinite(value) else -1.0
