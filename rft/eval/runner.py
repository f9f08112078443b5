"""Scoring a model on the task's ID and OOD splits with rollout actors (vLLM or HF).

One completion per record with the evaluation sampling (the seeds': temperature 0.1, top-p 0.9,
top-k 50, 768 new tokens; or greedy), scored with the task's evaluation score, overall and per
subset. The helpers here are shared by the `python -m rft.eval` command (rft.eval.cli) and by
`evaluate_splits`, which the RL trainer calls every `trainer.eval_every` steps: it writes
`results.json` and `predictions.jsonl` under `out_dir` and returns flat metrics
`eval/<split>/score`, `eval/<split>/format`, `eval/<split>/n_unparsed`.

Result rows (`results.json`, one per split and subset; `subset` is `all` for the whole split):
task, model, checkpoint, step, split, subset, score (0-100), n, n_unparsed, format (% of
completions in the `<think>…</think><answer>…</answer>` format).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rft.data.records import Record
from rft.types import PromptItem, SamplingSettings

ALL = "all"  # the subset label of a whole split
RESULT_KEYS = ("task", "model", "checkpoint", "step", "split", "subset", "score", "n", "n_unparsed", "format")


def eval_sampling(cfg: DictConfig, seed: int) -> SamplingSettings:
    e = cfg.eval
    return SamplingSettings(n=1, temperature=e.temperature, top_p=e.top_p, top_k=e.top_k, max_tokens=e.max_tokens, seed=seed, greedy=e.greedy)


def split_records(data, split: str) -> list[Record]:
    return {"id": data.test_id, "ood": data.test_ood, "train": data.train}[split]


def limited(cfg: DictConfig, records: list[Record]) -> list[Record]:
    return records if cfg.eval.limit is None else records[: cfg.eval.limit]


def format_scores(completions: Sequence[str]) -> list[float]:
    """Per completion: 1.0 when it follows the think/answer format, else 0.0."""
    from rft.rewards import get_reward

    if not completions:
        return []
    return [float(x) for x in get_reward("format")(list(completions), [""] * len(completions))]


def format_rate(completions: list[str]) -> float:
    scores = format_scores(completions)
    return sum(scores) / len(scores) if scores else 0.0


def generate_texts(rollout, items: list[PromptItem], sampling: SamplingSettings) -> list[str]:
    """One completion text per item, in item order (workers return them grouped by slice)."""
    completions, _ = rollout.generate(items, sampling, with_rewards=False)
    by_group = {c.group: c.text for c in completions}
    return [by_group[item.group] for item in items]


def items_kwargs(items: Sequence[PromptItem]) -> dict[str, list[Any]]:
    """The per-item scoring extras (box convention, image size) as aligned lists."""
    keys = {k for item in items for k in item.reward_kwargs}
    return {key: [item.reward_kwargs.get(key) for item in items] for key in keys}


def records_kwargs(task, records: Sequence[Record], model_cfg: DictConfig) -> dict[str, list[Any]]:
    """`items_kwargs` without building prompts (no processor needed)."""
    from rft.tasks.prompting import reward_kwargs_for

    per_record = [reward_kwargs_for(task, r, model_cfg) for r in records]
    keys = {k for extras in per_record for k in extras}
    return {key: [extras.get(key) for extras in per_record] for key in keys}


def result_rows(task, records: Sequence[Record], texts: Sequence[str], kwargs: dict[str, list[Any]], label: dict[str, Any]):
    """Score `texts` against `records`: (the task's EvalResult, result rows for the split and
    each subset). `label` holds task, model, checkpoint, step and split."""
    result = task.evaluate(list(texts), list(records), **kwargs)
    fmt = format_scores(texts)
    rows = [_row(label, ALL, result.score, result.n, result.n_unparsed, fmt)]
    for name, sub in result.subsets.items():
        sub_fmt = [fmt[i] for i in subset_members(task, records, name)]
        rows.append(_row(label, name, sub["score"], int(sub["n"]), int(sub["n_unparsed"]), sub_fmt))
    return result, rows


def subset_members(task, records: Sequence[Record], name: str) -> list[int]:
    """Indices of the records in subset `name`: the task's `subset_of`, else (detection, whose
    subsets are its classes) the record's category."""
    members = [i for i, r in enumerate(records) if task.subset_of(r) == name]
    return members or [i for i, r in enumerate(records) if str(r.meta.get("category")) == name]


def _row(label: dict[str, Any], subset: str, score: float, n: int, n_unparsed: int, fmt: list[float]) -> dict[str, Any]:
    row = {**label, "subset": subset, "score": float(score), "n": int(n), "n_unparsed": int(n_unparsed)}
    row["format"] = 100.0 * sum(fmt) / len(fmt) if fmt else 0.0
    return {key: row[key] for key in RESULT_KEYS}


def prediction_rows(records: Sequence[Record], items: Sequence[PromptItem], texts: Sequence[str], result, label: dict[str, Any]) -> list[dict[str, Any]]:
    """One journal row per record: id, prompt, completion, parsed answer, reference, score."""
    return [
        {**label, "id": r.id, "prompt": item.prompt_text, "completion": text, "parsed": parsed, "reference": r.answer, "score": float(score)}
        for r, item, text, parsed, score in zip(records, items, texts, result.parsed, result.per_item)
    ]


def split_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Flat metrics of result rows: eval/<split>/score|format|n_unparsed, and per subset."""
    metrics: dict[str, float] = {}
    for row in rows:
        prefix = f"eval/{row['split']}" if row["subset"] == ALL else f"eval/{row['split']}/{row['subset']}"
        metrics[f"{prefix}/score"] = row["score"]
        metrics[f"{prefix}/format"] = row["format"]
        metrics[f"{prefix}/n_unparsed"] = float(row["n_unparsed"])
    return metrics


# ---- during training ----------------------------------------------------------------------


def evaluate_records(cfg: DictConfig, task, processor, rollout, records: list, split: str, seed: int = 0, label: dict[str, Any] | None = None):
    """Generate and score one split: (result rows, prediction rows)."""
    from rft.tasks.prompting import Purpose, prompt_items, prompt_style

    label = {**(label or {}), "split": split}
    items = prompt_items(task, processor, records, prompt_style(cfg.stage.name, Purpose.eval, cfg), cfg.model)
    texts = generate_texts(rollout, items, eval_sampling(cfg, seed))
    result, rows = result_rows(task, records, texts, items_kwargs(items), label)
    return rows, prediction_rows(records, items, texts, result, label)


def evaluate_splits(cfg: DictConfig, task, processor, rollout, data, out_dir: Path) -> dict[str, float]:
    """Evaluate the rollout actors' current weights on `eval.splits`; files under `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = {"task": cfg.task.name, "model": str(cfg.model.path), "checkpoint": out_dir.name, "step": _step_of(out_dir.name)}
    all_rows, metrics = [], {}
    with open(out_dir / "predictions.jsonl", "w") as pred_file:
        for split in cfg.eval.splits:
            records = limited(cfg, split_records(data, split))
            if not records:
                continue
            rows, predictions = evaluate_records(cfg, task, processor, rollout, records, split, seed=cfg.trainer.seed, label=label)
            all_rows += rows
            for row in predictions:
                pred_file.write(json.dumps(row) + "\n")
            metrics.update({k: v for k, v in split_metrics(rows[:1]).items()})
    (out_dir / "results.json").write_text(json.dumps(all_rows, indent=1))
    return metrics


def _step_of(name: str) -> int | None:
    return int(name[5:]) if name.startswith("step_") and name[5:].isdigit() else None
