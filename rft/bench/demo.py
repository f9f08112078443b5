"""`python -m rft.bench demo`: does the embedded default learn? The same run over several seeds.

Each seed `s` launches `python -m rft.launch` with no arguments other than `trainer.seed=s`,
`data.synth_seed=s` (so the training order, the sampling and the synthetic images all change)
and its own `hydra.run.dir`; seed 0 is exactly the default run. From each run's `result.json`
it reads the evaluation before the first RL update ("after SFT") and after the last ("after
RL") and prints, per seed and as a mean: format rate (% of answers in the
`<think>…</think><answer>…</answer>` format) and accuracy on the ID and OOD splits, beside the
chance level of each split (1 / the number of possible counts) and the run's wall time.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from rft.bench import runs
from rft.tracking.result import RunResult

BUDGET_MIN = 15.0  # the embedded default must finish within this on 2 cores
PHASES = ("sft", "rl")
CELLS = ("id format", "id accuracy", "ood format", "ood accuracy")
_HEADERS = {"id format": "ID fmt", "id accuracy": "ID acc", "ood format": "OOD fmt", "ood accuracy": "OOD acc"}
_KEYS = {"id format": "eval/id/format", "id accuracy": "eval/id/score", "ood format": "eval/ood/format", "ood accuracy": "eval/ood/score"}


def seed_overrides(seed: int) -> list[str]:
    return [f"trainer.seed={seed}", f"data.synth_seed={seed}"]


def chance_levels(run_dir: Path) -> dict[str, float]:
    """1 / the number of possible counts on the ID and OOD splits of the run's counting data."""
    from omegaconf import OmegaConf

    from rft.data.synth.counting import DEFAULTS

    config = Path(run_dir) / ".hydra" / "config.yaml"
    if not config.exists():
        return {}
    cfg = OmegaConf.load(config)
    if cfg.task.name != "counting":
        return {}
    opts = {**DEFAULTS, **OmegaConf.to_container(cfg.task.synth)}
    return {
        "id": 100.0 / (opts["max_objects"] - opts["min_objects"] + 1),
        "ood": 100.0 / (opts["ood_max_objects"] - opts["ood_min_objects"] + 1),
    }


def seed_row(seed: int, launch: runs.LaunchResult) -> dict[str, Any]:
    """Evaluation after SFT and after RL, the final SFT loss and the wall time of one seed."""
    result = runs.read_result(Path(launch.run_dir))
    stage1 = (result.stage1 if result else None) or RunResult("cot_sft")
    stage2 = (result.stage2 if result else None) or RunResult("rl")
    cpu_min = launch.cpu_s / 60 if launch.cpu_s is not None else float("nan")
    row: dict[str, Any] = {"seed": seed, "ok": launch.ok, "wall_min": round(launch.wall_s / 60, 2), "cpu_min": round(cpu_min, 2)}
    for phase, metrics in (("sft", stage2.eval_before or {}), ("rl", stage2.eval_after or {})):
        for cell in CELLS:
            row[f"{phase} {cell}"] = float(metrics.get(_KEYS[cell], float("nan")))
    row["sft loss"] = float(stage1.metrics.get("loss", float("nan")))
    row["rl reward (last step)"] = float(stage2.metrics.get("reward/mean", float("nan")))
    return row


def mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if r["ok"]]
    mean: dict[str, Any] = {"seed": "mean", "ok": bool(done)}
    for key in rows[0] if rows else []:
        if key in ("seed", "ok"):
            continue
        values = [r[key] for r in done if r[key] == r[key]]
        mean[key] = statistics.fmean(values) if values else float("nan")
    return mean


def print_table(rows: list[dict[str, Any]], chance: dict[str, float]) -> None:
    """Two lines per seed (after SFT, after RL) and two for the mean; narrow enough for 80 columns."""
    from rich.console import Console
    from rich.table import Table

    caption = f"chance: ID {chance.get('id', float('nan')):.1f}%, OOD {chance.get('ood', float('nan')):.1f}%; " if chance else ""
    caption += f"budget {BUDGET_MIN:.0f} min on 2 cores; wall time depends on the machine's load"
    table = Table(title="Embedded default (reason_rft): format and accuracy in %", caption=caption)
    for name in ("seed", "after", *(_HEADERS[c] for c in CELLS), "SFT loss", "wall min", "CPU min"):
        table.add_column(name, justify="left" if name in ("seed", "after") else "right")
    for row in rows:
        style = "bold" if row["seed"] == "mean" else (None if row["ok"] else "red")
        for phase, label in (("sft", "SFT"), ("rl", "RL")):
            first = phase == "sft"
            extra = [f"{row['sft loss']:.3f}", f"{row['wall_min']:.1f}", f"{row['cpu_min']:.1f}"] if first else ["", "", ""]
            cells = [f"{row[f'{phase} {c}']:.1f}" for c in CELLS]
            table.add_row(str(row["seed"]) if first else "", label, *cells, *extra, style=style, end_section=not first)
    Console().print(table)


def main(args) -> int:
    out = Path(args.out).resolve()
    rows, launches = [], []
    for seed in args.seeds:
        run_dir = out / "runs" / f"seed{seed}"
        print(f"[rft.bench demo] seed {seed}: {run_dir}", flush=True)
        launch = runs.launch(run_dir, seed_overrides(seed) + list(args.overrides), timeout_s=args.timeout, echo=args.verbose)
        if not launch.ok:
            print(f"[rft.bench demo] seed {seed} failed (exit {launch.returncode}); last lines:\n  " + "\n  ".join(launch.log_tail), flush=True)
        launches.append(launch.to_dict())
        rows.append(seed_row(seed, launch))
    chance = chance_levels(out / "runs" / f"seed{args.seeds[0]}")
    table_rows = rows + [mean_row(rows)]
    print_table(table_rows, chance)
    payload = {
        "benchmark": "demo",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "extra_overrides": list(args.overrides),
        "chance": chance,
        "budget_min": BUDGET_MIN,
        "rows": table_rows,
        "launches": launches,
        "note": "wall times are on a possibly shared machine; see each launch's load average",
    }
    path = runs.write_json(out / "demo.json", payload)
    print(f"[rft.bench demo] wrote {path}")
    return 0 if all(r["ok"] for r in rows) else 1


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="bench_results/demo", help="folder for demo.json and the run folders")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a run is stopped")
    parser.add_argument("--verbose", action="store_true", help="echo every run's output")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
