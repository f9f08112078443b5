"""The classification reward (Visual-RFT fine-grained classification) and its evaluation check.

Both answers (the `<answer>` span, else the whole text) are lower-cased with spaces and
underscores removed; the reward is 1 when either contains the other. The seed gave 1 to an empty
answer (the empty string is contained in every class name); here an answer that is empty after
normalisation scores 0, the one deliberate fix. Range: {0, 1}.
"""

from __future__ import annotations

from rft.rewards.common import extract_answer


def normalize_class(text: str) -> str:
    return text.lower().replace(" ", "").replace("_", "")


def class_matches(prediction: str, truth: str) -> bool:
    pred, gt = normalize_class(prediction), normalize_class(truth)
    return bool(pred) and bool(gt) and (gt in pred or pred in gt)


def classification_reward(completion: str, solution: str, **_: object) -> float:
    return 1.0 if class_matches(extract_answer(completion), extract_answer(solution)) else 0.0
