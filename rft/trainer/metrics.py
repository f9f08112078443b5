"""The one place a training step's metrics row is built (what `metrics.jsonl`, mlflow and the
reports show), for RL and SFT.

The learner's statistics arrive already merged over micro-batches and ranks
(`rft.tracking.stats`); here they are renamed for the row and given their value for a step where
the learner did not report them (NaN where "not measured" must not read as zero). Times are
`timing/<phase>_s`; counts (dynamic-sampling rounds, kept groups) travel in their own dict,
never among the times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rft.types import Completion

NAN = float("nan")

# row name -> (learner statistic, value when the learner did not report it)
RL_UPDATE_COLUMNS: dict[str, tuple[str, float]] = {
    "kl": ("kl", 0.0),
    "entropy": ("entropy", NAN),
    "clip_frac": ("clip_frac", 0.0),
    "grad_norm": ("grad_norm", NAN),
    "lr": ("lr", NAN),
    "loss": ("loss", NAN),
    "skipped_update": ("skipped_update", 0.0),
    "rollout/logprob_gap": ("rollout_logprob_gap", NAN),
    "memory/learner_peak_rss_gb": ("peak_rss_gb", NAN),
    "learner/threads": ("threads", NAN),
}
SFT_UPDATE_COLUMNS: dict[str, tuple[str, float]] = {
    "loss": ("loss", NAN),
    "grad_norm": ("grad_norm", NAN),
    "lr": ("lr", NAN),
    "skipped_update": ("skipped_update", 0.0),
}


@dataclass
class StepTimes:
    """Wall seconds of one RL step's phases (`timing/<name>` in the row)."""

    generate_s: float = 0.0
    reward_s: float = 0.0
    logprob_s: float = 0.0
    update_s: float = 0.0
    sync_s: float = 0.0
    step_s: float = 0.0
    # with trainer.off_policy_steps=1: how long the next batch's generation ran while the learners
    # worked on this one (log-probs and update); 0 in the synchronous loop
    overlap_s: float = 0.0


@dataclass
class RolloutCounts:
    """What one RL step generated and trained on."""

    generated_tokens: int = 0
    learner_tokens: int = 0
    samples: int = 0
    dynamic_sampling: dict[str, float] = field(default_factory=dict)  # rounds, kept groups


def primary_reward(weights: dict[str, float]) -> str | None:
    """The task-score reward reported as `accuracy/mean` (the first one that is not `format`)."""
    return next((name for name in weights if name != "format"), None)


def informative_group_fraction(completions: list[Completion], tol: float = 1e-6) -> float:
    """The share of prompt groups whose total rewards are not all equal: only those give non-zero
    GRPO advantages, so this is the share of the batch RL can learn from (NaN for no completions)."""
    by_group: dict[int, list[float]] = {}
    for completion in completions:
        by_group.setdefault(completion.group, []).append(completion.rewards.get("total", 0.0))
    if not by_group:
        return NAN
    return sum(max(r) - min(r) > tol for r in by_group.values()) / len(by_group)


def rollout_metrics(completions: list[Completion], max_tokens: int, weights: dict[str, float]) -> dict[str, float]:
    totals = np.array([c.rewards.get("total", 0.0) for c in completions])
    lengths = np.array([len(c.token_ids) for c in completions])
    out = {
        "reward/mean": float(totals.mean()),
        "reward/std": float(totals.std()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "response_length/clip_rate": float(np.mean([c.finish_reason == "length" for c in completions])),
        "adv/informative_groups": informative_group_fraction(completions),
    }
    for name in weights:
        out[f"reward/{name}/mean"] = float(np.mean([c.rewards.get(name, 0.0) for c in completions]))
    main = primary_reward(weights)
    out["accuracy/mean"] = out[f"reward/{main}/mean"] if main else NAN
    out["format/mean"] = out.get("reward/format/mean", NAN)
    return out


def update_columns(update: dict[str, float], columns: dict[str, tuple[str, float]]) -> dict[str, float]:
    """The learner's statistics under their row names, with the default for a missing one."""
    return {row: float(update.get(stat, default)) for row, (stat, default) in columns.items()}


def per_second(amount: float, seconds: float) -> float:
    return amount / max(seconds, 1e-9)


def rl_step_row(
    rollout: dict[str, float],
    update: dict[str, float],
    times: StepTimes,
    counts: RolloutCounts,
    *,
    sync_bytes: float,
    ppo_epochs: int,
    weight_version: int,
    staleness: int = 0,
) -> dict[str, Any]:
    """One RL step's row: rollout statistics, the learner's, times, throughputs and counts.
    `staleness`: the learners' weight version before the update minus the oldest version that
    generated the batch (0 on-policy, 1 with `trainer.off_policy_steps=1`); computed by the
    controller, so no learner `Reduce` kind applies."""
    row: dict[str, Any] = dict(rollout)
    row.update(update_columns(update, RL_UPDATE_COLUMNS))
    row.update({f"timing/{name}": value for name, value in vars(times).items()})
    row.update(
        {
            "rollout/tokens_per_s": per_second(counts.generated_tokens, times.generate_s),
            "learner/tokens_per_s": per_second(counts.learner_tokens * ppo_epochs, times.update_s),
            "sync/mb_per_s": per_second(sync_bytes / 1e6, times.sync_s),
            "weight_version": float(weight_version),
            "rollout/staleness": float(staleness),
            "samples": float(counts.samples),
        }
    )
    row.update({f"dapo/{name}": float(value) for name, value in counts.dynamic_sampling.items()})
    return row


def sft_step_row(update: dict[str, float], step_s: float, epoch: int) -> dict[str, float]:
    """One SFT step's row: the learner's statistics, times, throughput and the data epoch."""
    row = update_columns(update, SFT_UPDATE_COLUMNS)
    row.update(
        {
            "timing/update_s": float(update.get("update_s", NAN)),
            "timing/step_s": step_s,
            "learner/tokens_per_s": per_second(update.get("tokens", 0.0), update.get("update_s", 0.0)),
            "epoch": float(epoch),
        }
    )
    return row
