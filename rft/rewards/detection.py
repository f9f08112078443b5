"""Detection rewards (Visual-RFT): IoU and confidence, both computed from one greedy matching.

Predictions with a duplicate `Position` are dropped (first kept), then sorted by confidence,
descending (stable). Each prediction in turn takes the still-unmatched ground-truth box of highest
IoU, and counts as matched only if that IoU is > 0.5.

- `iou`: sum of matched IoUs / max(|GT|, |Pred|), capped at 1.
- `confidence`: mean over predictions of c if matched, else 1 - c.

Conventions the seeds leave open: `No Objects` (or an empty list) against an empty ground truth
scores 1 on both; an unreadable answer scores 0 on both. Visual-RFT's code first ran math-verify
on the whole completion and gave 1.0 on any match (box lists share numbers spuriously); that step
is not reproduced. Both rewards lie in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rft.rewards.boxes import Box, Detection, iou, parse_detections, to_norm1000

MATCH_IOU = 0.5


def dedupe(detections: list[Detection]) -> list[Detection]:
    seen: set[Box] = set()
    out = []
    for det in detections:
        if det.box not in seen:
            seen.add(det.box)
            out.append(det)
    return out


def match(predictions: list[Detection], truth: list[Box]) -> list[tuple[Detection, float | None]]:
    """Each (deduplicated, confidence-sorted) prediction with its matched IoU, or None."""
    ordered = sorted(dedupe(predictions), key=lambda d: -d.confidence)
    free = list(range(len(truth)))
    out: list[tuple[Detection, float | None]] = []
    for det in ordered:
        best, best_iou = None, 0.0
        for j in free:
            value = iou(det.box, truth[j])
            if value > best_iou:
                best, best_iou = j, value
        if best is not None and best_iou > MATCH_IOU:
            free.remove(best)
            out.append((det, best_iou))
        else:
            out.append((det, None))
    return out


def predicted_detections(completion: str, box_format: str = "norm1000", image_size: Sequence[float] | None = None) -> list[Detection] | None:
    """A completion's detections in the 0–1000 frame, or None if unreadable."""
    predictions = parse_detections(completion)
    if predictions is None:
        return None
    return [Detection(to_norm1000(d.box, box_format, image_size), d.confidence) for d in predictions]


def truth_boxes(solution: str) -> list[Box] | None:
    """A solution's distinct boxes ([] for `No Objects`), or None if unreadable."""
    truth = parse_detections(solution)
    return None if truth is None else [d.box for d in dedupe(truth)]


def iou_of(predictions: list[Detection], truth: list[Box]) -> float:
    matched = match(predictions, truth)
    if not matched and not truth:
        return 1.0
    total = sum(value for _, value in matched if value is not None)
    return min(1.0, total / max(len(truth), len(matched)))


def confidence_of(predictions: list[Detection], truth: list[Box]) -> float:
    matched = match(predictions, truth)
    if not matched:
        return 0.0 if truth else 1.0
    total = sum(d.confidence if value is not None else 1.0 - d.confidence for d, value in matched)
    return total / len(matched)


def iou_reward(
    completion: str,
    solution: str,
    box_format: str = "norm1000",
    image_size: Sequence[float] | None = None,
    **_: object,
) -> float:
    return _score(iou_of, completion, solution, box_format, image_size)


def confidence_reward(
    completion: str,
    solution: str,
    box_format: str = "norm1000",
    image_size: Sequence[float] | None = None,
    **_: object,
) -> float:
    return _score(confidence_of, completion, solution, box_format, image_size)


def _score(
    score: Callable[[list[Detection], list[Box]], float],
    completion: str,
    solution: str,
    box_format: str,
    image_size: Sequence[float] | None,
) -> float:
    predictions = predicted_detections(completion, box_format, image_size)
    truth = truth_boxes(solution)
    if predictions is None or truth is None:
        return 0.0
    return score(predictions, truth)
