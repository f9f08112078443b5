"""Reason-RFT in one launch: COT-SFT on a small slice, then GRPO from its checkpoint.

Stage 1 trains on the first `stage.sft_samples` records in `<run>/stage1_sft`; stage 2 starts
from stage 1's `hf/` checkpoint in `<run>/stage2_rl` on the remaining records (or all of them
with `stage.rl_data=all`), evaluating on the ID and OOD splits before its first update (the
"after SFT" numbers) and after its last. A finished stage 1 (its `result.json`) is not redone
when the launch is resumed. mlflow holds a parent run with the two stages as children.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig

from rft.data.splits import DataSplits
from rft.models.adapter import checkpoint_model
from rft.tasks import PromptStyle
from rft.tracking import make_tracker
from rft.tracking.result import RESULT_FILE, RunResult, read_result
from rft.trainer import run_rl, run_sft
from rft.trainer.stage import optimized_target, run_stage


class StageOneMissing(FileNotFoundError):
    """Stage 2 cannot start: stage 1 left no usable checkpoint."""


def split_for_stages(records: list, sft_samples: int, rl_data: str) -> tuple[list, list]:
    stage1 = records[:sft_samples]
    stage2 = records if rl_data == "all" else records[sft_samples:]
    if not stage1:
        raise ValueError("stage.sft_samples: stage 1 (COT-SFT) got no records")
    if not stage2:
        raise ValueError(f"stage.sft_samples={sft_samples} leaves no records for stage 2 out of {len(records)}; lower it or set stage.rl_data=all")
    return stage1, stage2


def stage_one_model(stage1_dir: Path) -> Path:
    result = read_result(stage1_dir)
    if result is None or not result.checkpoint:
        raise StageOneMissing(f"stage 1 has not finished: {stage1_dir / RESULT_FILE} does not exist or names no checkpoint")
    hf = checkpoint_model(result.checkpoint) or Path(result.checkpoint) / "hf"  # LoRA: merged once
    if not (hf / "config.json").exists():
        raise StageOneMissing(f"stage 1's model folder {hf} is missing or holds no config.json")
    return hf


class ReasonRFTChain:
    """The two stages as one `Stage`: setup opens the parent run, train runs stage 1 (unless its
    result.json exists) and stage 2, each through `run_stage`; cleanup closes the parent run."""

    name = "reason_rft"

    def __init__(self, cfg: DictConfig, run_dir: Path, model_path: str, data: DataSplits):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.model_path = model_path
        self.data = data
        self.stage1_records, self.stage2_records = split_for_stages(data.train, cfg.stage.sft_samples, cfg.stage.rl_data)
        self.parent = None
        self.stage2: RunResult | None = None

    def setup(self) -> None:
        self.parent = make_tracker(self.cfg, self.run_dir, "reason_rft")

    def train(self) -> RunResult:
        stage1_dir = self.run_dir / "stage1_sft"
        stage1 = read_result(stage1_dir)
        if stage1 is None:
            stage1 = run_sft(self.cfg, stage1_dir, self.model_path, self.stage1_records, PromptStyle.cot_sft, parent_run_id=self.parent.mlflow_run_id)
        sft_model = stage_one_model(stage1_dir)
        stage2_data = dataclasses.replace(self.data, train=self.stage2_records)
        self.stage2 = run_rl(self.cfg, self.run_dir / "stage2_rl", str(sft_model), stage2_data, parent_run_id=self.parent.mlflow_run_id, eval_around=True)
        self._summarize(self.stage2)
        return RunResult(self.name, metrics=dict(self.stage2.metrics), stage1=stage1, stage2=self.stage2)

    def save(self) -> Path:
        return Path(self.stage2.checkpoint)

    def cleanup(self, status: str) -> None:
        if self.parent is not None:
            self.parent.close(str(status))

    def _summarize(self, stage2: RunResult) -> None:
        table = comparison_table(stage2.eval_before or {}, stage2.eval_after or {})
        (self.run_dir / "summary.md").write_text(table + "\n\n" + rl_signal(self.run_dir / "stage2_rl") + "\n")
        print(table)
        for stage_dir in ("stage1_sft", "stage2_rl"):
            print(f"report: {self.run_dir / stage_dir / 'report.html'}")


def run_reason_rft(cfg: DictConfig, run_dir: Path, model_path: str, data: DataSplits) -> RunResult:
    return run_stage(ReasonRFTChain(cfg, run_dir, model_path, data), optimized_target(cfg, "reason_rft"))


def rl_signal(stage2_dir: Path) -> str:
    """Stage 2's share of informative groups per step and evaluation per checkpoint (Markdown)."""
    from rft.tracking.report import read_metrics, signal_markdown

    metrics = Path(stage2_dir) / "metrics.jsonl"
    return signal_markdown(read_metrics(metrics)) if metrics.exists() else ""


def comparison_table(after_sft: dict[str, float], after_rl: dict[str, float]) -> str:
    """Markdown: format rate and accuracy on each split after SFT and after RL."""
    splits = sorted({key.split("/")[1] for key in {**after_sft, **after_rl} if key.startswith("eval/")})
    lines = ["| | " + " | ".join(f"{s} format | {s} accuracy" for s in splits) + " |", "|---|" + "---|---|" * len(splits)]
    for label, metrics in (("after SFT", after_sft), ("after RL", after_rl)):
        cells = []
        for split in splits:
            cells.append(f"{metrics.get(f'eval/{split}/format', float('nan')):.1f}")
            cells.append(f"{metrics.get(f'eval/{split}/score', float('nan')):.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
