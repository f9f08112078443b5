"""Scoring a model on the task's ID and OOD splits with rollout actors (vLLM or HF).

`evaluate_splits` generates one completion per record with the evaluation sampling (the seeds':
temperature 0.1, top-p 0.9, top-k 50, 768 new tokens; or greedy), scores it with the task's
evaluation score, and writes `results.json` and `predictions.jsonl` under `out_dir`. It returns
flat metrics `eval/<split>/score`, `eval/<split>/format`, `eval/<split>/n_unparsed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rft.rollout.types import SamplingSettings

# eval.prompt -> the task's prompt style; `auto` follows the stage's training format.
PROMPT_STYLE = {"zero_shot": "zero_shot", "cot": "rl", "ans": "ans_sft"}


def prompt_style(cfg: DictConfig) -> str:
    choice = cfg.eval.prompt.value if hasattr(cfg.eval.prompt, "value") else str(cfg.eval.prompt)
    if choice != "auto":
        return PROMPT_STYLE[choice]
    stage = cfg.stage.name.value if hasattr(cfg.stage.name, "value") else str(cfg.stage.name)
    return "ans_sft" if stage == "ans_sft" else "rl"


def eval_sampling(cfg: DictConfig, seed: int) -> SamplingSettings:
    e = cfg.eval
    return SamplingSettings(n=1, temperature=e.temperature, top_p=e.top_p, top_k=e.top_k, max_tokens=e.max_tokens, seed=seed, greedy=e.greedy)


def split_records(data, split: str) -> list:
    return {"id": data.test_id, "ood": data.test_ood, "train": data.train}[split]


def format_rate(completions: list[str]) -> float:
    from rft.rewards import get_reward

    if not completions:
        return 0.0
    return sum(get_reward("format")(completions, [""] * len(completions))) / len(completions)


def evaluate_records(cfg: DictConfig, task, processor, rollout, records: list, split: str, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from rft.trainer.common import prompt_items

    style = prompt_style(cfg)
    items = prompt_items(task, processor, records, style, cfg.model)
    completions, _ = rollout.generate(items, eval_sampling(cfg, seed), with_rewards=False)
    texts = [c.text for c in sorted(completions, key=lambda c: c.group)]
    result = task.evaluate(texts, records, **_score_kwargs(items))
    summary = {
        "task": cfg.task.name,
        "split": split,
        "score": result.score,
        "n": result.n,
        "n_unparsed": result.n_unparsed,
        "format": 100.0 * format_rate(texts),
        "subsets": result.subsets,
    }
    predictions = [
        {"id": r.id, "split": split, "prompt": item.prompt_text, "completion": text, "parsed": parsed, "reference": r.answer, "score": score}
        for r, item, text, parsed, score in zip(records, items, texts, result.parsed, result.per_item)
    ]
    return summary, predictions


def _score_kwargs(items) -> dict[str, Any]:
    keys = {k for item in items for k in item.reward_kwargs}
    return {key: [item.reward_kwargs.get(key) for item in items] for key in keys}


def evaluate_splits(cfg: DictConfig, task, processor, rollout, data, out_dir: Path) -> dict[str, float]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries, metrics = [], {}
    with open(out_dir / "predictions.jsonl", "w") as pred_file:
        for split in cfg.eval.splits:
            records = split_records(data, split)
            if cfg.eval.limit is not None:
                records = records[: cfg.eval.limit]
            if not records:
                continue
            summary, predictions = evaluate_records(cfg, task, processor, rollout, records, split, seed=cfg.trainer.seed)
            summaries.append(summary)
            for row in predictions:
                pred_file.write(json.dumps(row) + "\n")
            metrics[f"eval/{split}/score"] = summary["score"]
            metrics[f"eval/{split}/format"] = summary["format"]
            metrics[f"eval/{split}/n_unparsed"] = float(summary["n_unparsed"])
    (out_dir / "results.json").write_text(json.dumps(summaries, indent=1))
    return metrics
