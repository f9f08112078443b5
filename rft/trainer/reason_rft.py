"""Reason-RFT in one launch: COT-SFT on a small slice, then GRPO from its checkpoint.

Stage 1 trains on the first `stage.sft_samples` records in `<run>/stage1_sft`; stage 2 starts
from stage 1's `hf/` checkpoint in `<run>/stage2_rl` on the remaining records (or all of them
with `stage.rl_data=all`), evaluating on the ID and OOD splits before its first update (the
"after SFT" numbers) and after its last. A finished stage 1 (its `result.json`) is not redone
when the launch is resumed. mlflow holds a parent run with the two stages as children.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rft.trainer import RESULT_FILE, run_rl, run_sft, write_result
from rft.data.splits import DataSplits
from rft.tasks import PromptStyle
from rft.tracking import make_tracker


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
    result_file = stage1_dir / RESULT_FILE
    if not result_file.exists():
        raise StageOneMissing(f"stage 1 has not finished: {result_file} does not exist")
    hf = Path(json.loads(result_file.read_text())["checkpoint"]) / "hf"
    if not (hf / "config.json").exists():
        raise StageOneMissing(f"stage 1's model folder {hf} is missing or holds no config.json")
    return hf


def run_reason_rft(cfg: DictConfig, run_dir: Path, model_path: str, data: DataSplits) -> dict[str, Any]:
    stage1_records, stage2_records = split_for_stages(data.train, cfg.stage.sft_samples, cfg.stage.rl_data)
    parent = make_tracker(cfg, run_dir, "reason_rft")
    status = "FAILED"
    try:
        stage1_dir = run_dir / "stage1_sft"
        if (stage1_dir / RESULT_FILE).exists():
            stage1 = json.loads((stage1_dir / RESULT_FILE).read_text())
        else:
            stage1 = run_sft(cfg, stage1_dir, model_path, stage1_records, PromptStyle.cot_sft, parent_run_id=parent.mlflow_run_id)
            write_result(stage1_dir, stage1)
        sft_model = stage_one_model(stage1_dir)
        stage2_data = dataclasses.replace(data, train=stage2_records)
        stage2 = run_rl(cfg, run_dir / "stage2_rl", str(sft_model), stage2_data, parent_run_id=parent.mlflow_run_id, eval_at_start=True)
        status = "FINISHED"
    finally:
        parent.close(status)
    table = comparison_table(stage2.get("eval_before", {}), stage2.get("eval_after", {}))
    (run_dir / "summary.md").write_text(table + "\n")
    print(table)
    for stage_dir in ("stage1_sft", "stage2_rl"):
        print(f"report: {run_dir / stage_dir / 'report.html'}")
    return {
        "stage": "reason_rft",
        "stage1": stage1,
        "stage2": stage2,
        "checkpoint": stage2["checkpoint"],
        "final_metric": stage2.get("eval_after", {}).get("eval/id/score", stage2.get("final_metric")),
    }


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
