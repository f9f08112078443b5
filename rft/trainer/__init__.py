"""Stage runners: `run(cfg, run_dir)` dispatches on `stage.name` and returns the final metric.

- `ans_sft` / `cot_sft`: SFT on the training records.
- `rl` / `zero`: GRPO from `model.path` (an SFT checkpoint for `rl`, the base model for `zero`).
- `reason_rft`: stage 1 COT-SFT on the first `stage.sft_samples` records (`<run>/stage1_sft`),
  then stage 2 GRPO from its HF checkpoint (`<run>/stage2_rl`) on the rest (or on all with
  `stage.rl_data=all`); mlflow records the two as children of one parent run.

Every stage runs through `rft.trainer.stage.run_stage` (status, cleanup, report) and writes
`<its run dir>/result.json` (`rft.tracking.result.RunResult`: final metrics, checkpoint, the
optimised metric with its direction; sweeps and jobs read it) and a report of its curves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rft.data.splits import DataSplits, load_data
from rft.models.loading import resolve_model_path
from rft.tasks import PromptStyle
from rft.tracking.result import RESULT_FILE, RunResult, read_result, write_result  # noqa: F401 (re-exported)
from rft.trainer.stage import optimized_target, run_stage

log = logging.getLogger("rft")


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
        (
            "learner",
            f"DeepSpeed ZeRO-{cfg.learner.zero_stage} x{cfg.learner.num_workers}"
            if cfg.learner.num_workers > 1
            else "DeepSpeed x1 (one rank: no ZeRO partitioning)",
        ),
        ("run dir", str(run_dir)),
    ]:
        table.add_row(key, str(value))
    Console().print(table)


def run(cfg: DictConfig, run_dir: Path) -> float | None:
    """Run the configured stage in `run_dir`; return its optimised metric's value (for sweepers;
    result.json records the metric's name and direction)."""
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
    print(f"run folder: {run_dir}")
    return result.final_metric


def run_sft(cfg: DictConfig, run_dir: Path, model_path: str, records, style: PromptStyle, parent_run_id: str | None = None) -> RunResult:
    """SFT on `style`'s target (ans_sft or cot_sft, the stage of the same name)."""
    from rft.trainer.sft import SFTTrainer

    trainer = SFTTrainer(cfg, run_dir, model_path, records, style, run_name=f"{style}", parent_run_id=parent_run_id)
    return run_stage(trainer, optimized_target(cfg, str(style)))


def run_rl(cfg: DictConfig, run_dir: Path, model_path: str, data: DataSplits, parent_run_id: str | None = None, eval_around: bool = False) -> RunResult:
    """GRPO (`rl`, `zero`, or Reason-RFT's stage 2 with `eval_around`)."""
    from rft.trainer.rl import RLTrainer

    trainer = RLTrainer(cfg, run_dir, model_path, data, run_name="rl", parent_run_id=parent_run_id, eval_around=eval_around)
    return run_stage(trainer, optimized_target(cfg, "rl"))
