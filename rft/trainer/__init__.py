"""Stage runners: `run(cfg, run_dir)` dispatches on `stage.name` and returns the final metric.

- `ans_sft` / `cot_sft`: SFT on the training records.
- `rl` / `zero`: GRPO from `model.path` (an SFT checkpoint for `rl`, the base model for `zero`).
- `reason_rft`: stage 1 COT-SFT on the first `stage.sft_samples` records (`<run>/stage1_sft`),
  then stage 2 GRPO from its HF checkpoint (`<run>/stage2_rl`) on the rest (or on all with
  `stage.rl_data=all`); mlflow records the two as children of one parent run.

Each run writes `<run>/result.json` (final metrics; sweeps read it) and a report of its curves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rft.data.splits import DataSplits, load_data
from rft.models.loading import resolve_model_path
from rft.tasks import PromptStyle

log = logging.getLogger("rft")
RESULT_FILE = "result.json"


def print_summary(cfg: DictConfig, model_path: str, data: DataSplits, run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rft run", show_header=False)
    for key, value in [
        ("stage", cfg.stage.name),
        ("task", cfg.task.name),
        ("model", f"{cfg.model.name} ({model_path})"),
        ("data", f"{len(data.train)} train / {len(data.test_id)} ID / {len(data.test_ood)} OOD from {data.source}"),
        ("rollout", f"{cfg.rollout.engine} x{cfg.rollout.num_workers}"),
        ("learner", f"DeepSpeed ZeRO-{cfg.learner.zero_stage} x{cfg.learner.num_workers}"),
        ("run dir", str(run_dir)),
    ]:
        table.add_row(key, str(value))
    Console().print(table)


def run(cfg: DictConfig, run_dir: Path) -> float | None:
    """Run the configured stage in `run_dir`; return its final metric (for sweepers)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_path = str(resolve_model_path(cfg.model.path))
    data = load_data(cfg)
    print_summary(cfg, model_path, data, run_dir)
    stage = cfg.stage.name
    if stage in ("ans_sft", "cot_sft"):
        result = run_sft(cfg, run_dir, model_path, data.train, PromptStyle(stage))
    elif stage in ("rl", "zero"):
        result = run_rl(cfg, run_dir, model_path, data)
    else:
        from rft.trainer.reason_rft import run_reason_rft

        result = run_reason_rft(cfg, run_dir, model_path, data)
    write_result(run_dir, result)
    print(f"run folder: {run_dir}")
    return result.get("final_metric")


def run_sft(cfg: DictConfig, run_dir: Path, model_path: str, records, style: PromptStyle, parent_run_id: str | None = None) -> dict[str, Any]:
    from rft.trainer.sft import SFTTrainer

    trainer = SFTTrainer(cfg, run_dir, model_path, records, style, run_name=f"{style}", parent_run_id=parent_run_id)
    status = "FAILED"
    try:
        trainer.setup()
        metrics = trainer.train()
        status = "FINISHED"
    finally:
        trainer.cleanup(status)
    _write_report(run_dir)
    final = _final_checkpoint(run_dir)
    return {"stage": style, "metrics": metrics, "checkpoint": str(final), "final_metric": metrics.get("eval/loss", metrics.get("loss"))}


def run_rl(cfg: DictConfig, run_dir: Path, model_path: str, data: DataSplits, parent_run_id: str | None = None, eval_at_start: bool = False) -> dict[str, Any]:
    from rft.trainer.rl import RLTrainer

    trainer = RLTrainer(cfg, run_dir, model_path, data, run_name="rl", parent_run_id=parent_run_id)
    status = "FAILED"
    before = after = None
    try:
        trainer.setup()
        if eval_at_start and trainer.step == 0:
            before = trainer.evaluate()
            trainer.tracker.log(0, before)
        metrics = trainer.train()
        if eval_at_start:
            after = trainer.evaluate()
            trainer.tracker.log(trainer.step, after)
        status = "FINISHED"
    finally:
        trainer.cleanup(status)
    _write_report(run_dir)
    result: dict[str, Any] = {"stage": "rl", "metrics": metrics, "checkpoint": str(_final_checkpoint(run_dir)), "final_metric": metrics.get("reward/mean")}
    if before is not None:
        result["eval_before"] = before
    if after is not None:
        result["eval_after"] = after
    return result


def _final_checkpoint(run_dir: Path) -> Path:
    from rft.trainer import checkpoint as ckpt

    final = ckpt.latest(run_dir)
    if final is None:
        raise RuntimeError(f"no checkpoint was written under {run_dir / 'checkpoints'}")
    return final


def _write_report(run_dir: Path) -> None:
    from rft.tracking.report import write_report

    try:
        write_report(run_dir)
    except Exception as err:  # a report must never fail a finished run
        log.warning("could not write the report for %s: %s", run_dir, err)


def write_result(run_dir: Path, result: dict[str, Any]) -> Path:
    path = run_dir / RESULT_FILE
    path.write_text(json.dumps(result, indent=1, default=float))
    return path
