"""Verifiable rewards of Visual-RFT and Reason-RFT, by name.

    from rft.rewards import get_reward, score_batch
    get_reward("accuracy")(["<think>…</think><answer>3</answer>"], ["3"])  # [1.0]
    score_batch(completions, solutions, {"format": 1, "iou": 1, "confidence": 1})
    # {"format": [...], "iou": [...], "confidence": [...], "total": [...]}

Names and ranges: `REWARD_NAMES`, `REWARD_RANGES`. Formulas: the module docstrings
(`format`, `accuracy`, `spatial`, `detection`, `classification`, `grounding`).
"""

from rft.rewards.common import RewardConfigError
from rft.rewards.registry import REWARD_NAMES, REWARD_RANGES, RewardFn, get_reward
from rft.rewards.weighted import TOTAL, WeightedReward, score_batch

__all__ = [
    "REWARD_NAMES",
    "REWARD_RANGES",
    "TOTAL",
    "RewardConfigError",
    "RewardFn",
    "WeightedReward",
    "get_reward",
    "score_batch",
]
