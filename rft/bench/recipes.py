"""`python -m rft.bench recipes`: the papers' method rows on the synthetic tasks, over seeds.

    python -m rft.bench recipes --tasks counting,structure --seeds 3 [--extra] [--out DIR] [-- overrides]

Prints a table that reads like Reason-RFT's results table (rows = methods, columns = ID/OOD
accuracy and format rate per task, mean ± std over seeds), the stage-2 gain per task (Reason-RFT
minus COT-SFT, paired by seed), and writes `recipes.json` and `recipes.png` (bar chart) into the
output folder, with the wall time.

Every method × task × seed point is a Ray Job started by the project's own sweep launcher: one
`python -m rft.launch -m hydra/launcher=ray_jobs ...` multirun per recipe, gridded over
`task=` and `trainer.seed=` (with `data.synth_seed=${trainer.seed}`, so images and order change
with the seed), each point in `<out>/points/<recipe>/<task>_seed<seed>`. The sweeps use the
launcher's cluster (`hydra.launcher.address`, `cluster.address`, `RAY_ADDRESS`, else the local head
rft starts on loopback with 4 logical CPUs, so one point runs at a time, and leaves running for
later sweeps: `ray stop` ends it; see sweeps/README.md). Results are read from
each point's `result.json` (`rft.tracking.result`): a Reason-RFT run's stage 2 evaluates before
its first update and after its last, which gives two rows per run:

| recipe | overrides | rows |
|---|---|---|
| `from_base` | `stage=reason_rft sft.lr=0 sft.max_steps=1 stage.rl_data=all` | zero-shot (before), RL only (after) |
| `ans_sft` | `stage=ans_sft` | ANS-SFT (its final checkpoint, evaluated by `rft.eval`) |
| `reason_rft` | `stage=reason_rft` | COT-SFT (before), Reason-RFT (after) |
| `dr_grpo`, `dapo` (`--extra`) | `stage=reason_rft algo=...` | Reason-RFT with that algorithm (after) |

`from_base` makes stage 1 a no-op (learning rate 0 for one step), so stage 2 is GRPO from the
untouched model on all the training records: its "before" is the model before training (the
zero-shot row) and its "after" is RL only. It uses the RL prompt (the same one every row is
evaluated with) rather than `stage=zero`'s zero-shot wording. COT-SFT is stage 1 of the
Reason-RFT run of the same seed, so the stage-2 gain is a paired difference. rft.launch evaluates
no ID/OOD split after an SFT-only stage, so once the `ans_sft` sweep is done each of its points'
final checkpoints is evaluated by `python -m rft.eval` with the point's own overrides (so the same
synthetic test splits, and the ANS prompt it was trained on) into `<point>/final_eval`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rft.bench import runs
from rft.tracking.result import RunResult, read_result

SEED_OVERRIDE = "data.synth_seed=${trainer.seed}"
SUBDIR_OVERRIDE = "hydra.sweep.subdir=${task.name}_seed${trainer.seed}"
CELLS = {"id accuracy": "eval/id/score", "id format": "eval/id/format", "ood accuracy": "eval/ood/score", "ood format": "eval/ood/format"}
BEFORE, AFTER = "eval_before", "eval_after"
FINAL = "final_eval"  # an SFT-only point's final checkpoint, evaluated after its sweep (rft.eval)


@dataclass(frozen=True)
class Recipe:
    """One family of sweep points: its overrides and which evaluation of its result gives which row."""

    name: str
    overrides: tuple[str, ...]
    rows: tuple[tuple[str, str], ...]  # (method row, BEFORE | AFTER | FINAL)
    evaluate: bool = False  # an SFT-only point: evaluate its final checkpoint after the sweep


ANS_SFT = Recipe("ans_sft", ("stage=ans_sft",), (("ANS-SFT", FINAL),), evaluate=True)
RECIPES: tuple[Recipe, ...] = (
    Recipe("from_base", ("stage=reason_rft", "sft.lr=0", "sft.max_steps=1", "stage.rl_data=all"), (("zero-shot", BEFORE), ("RL only (GRPO)", AFTER))),
    ANS_SFT,
    Recipe("reason_rft", ("stage=reason_rft",), (("COT-SFT", BEFORE), ("Reason-RFT (GRPO)", AFTER))),
)
EXTRA_RECIPES: tuple[Recipe, ...] = (
    Recipe("dr_grpo", ("stage=reason_rft", "algo=dr_grpo"), (("Reason-RFT (Dr.GRPO)", AFTER),)),
    Recipe("dapo", ("stage=reason_rft", "algo=dapo"), (("Reason-RFT (DAPO)", AFTER),)),
)
METHOD_ORDER = ("zero-shot", "ANS-SFT", "COT-SFT", "RL only (GRPO)", "Reason-RFT (GRPO)", "Reason-RFT (Dr.GRPO)", "Reason-RFT (DAPO)")


def recipes(extra: bool) -> tuple[Recipe, ...]:
    return RECIPES + (EXTRA_RECIPES if extra else ())


def point_overrides(recipe: Recipe, task: str, seed: int, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The overrides of one method × task × seed point, as the launcher composes it."""
    return [*recipe.overrides, f"task={task}", f"trainer.seed={seed}", SEED_OVERRIDE, *extra]


def sweep_command(recipe: Recipe, tasks: list[str], seeds: list[int], out: Path, extra: list[str] | tuple[str, ...] = (), dry_run: bool = False) -> list[str]:
    """One multirun over tasks × seeds for `recipe`, every point a Ray Job (`hydra/launcher=ray_jobs`)."""
    grid = [f"task={','.join(tasks)}", f"trainer.seed={','.join(str(s) for s in seeds)}", SEED_OVERRIDE]
    hydra = ["hydra/launcher=ray_jobs", f"hydra.sweep.dir={point_root(out, recipe)}", SUBDIR_OVERRIDE]
    if dry_run:
        hydra.append("hydra.launcher.dry_run=true")
    return [sys.executable, "-m", "rft.launch", "-m", *hydra, *recipe.overrides, *grid, *extra]


def point_root(out: Path, recipe: Recipe) -> Path:
    return Path(out).resolve() / "points" / recipe.name


def point_dir(out: Path, recipe: Recipe, task: str, seed: int) -> Path:
    """Where the launcher puts a point (`hydra.sweep.dir` / `hydra.sweep.subdir`)."""
    return point_root(out, recipe) / f"{task}_seed{seed}"


def eval_command(point: Path, recipe: Recipe, task: str, seed: int, extra: list[str] | tuple[str, ...] = ()) -> list[str] | None:
    """`python -m rft.eval` of a finished SFT-only point's final checkpoint, composed with the
    point's own overrides (same test splits; `eval.prompt=auto` gives the stage's own prompt),
    into `<point>/final_eval`; None while the point has no finished result."""
    result = read_result(point)
    if result is None or not result.checkpoint:
        return None
    model = Path(result.checkpoint) / "hf"
    return [sys.executable, "-m", "rft.eval", *point_overrides(recipe, task, seed, extra), f"model.path={model}", f"hydra.run.dir={point / FINAL}"]


def final_eval(point: Path) -> dict[str, float]:
    """`eval/<split>/score|format` of the last checkpoint in `<point>/final_eval` (rft.eval's results.json)."""
    from rft.eval.report import RESULTS_JSON
    from rft.eval.runner import ALL

    path = Path(point) / FINAL / "eval" / RESULTS_JSON
    if not path.exists():
        return {}
    rows = [r for r in json.loads(path.read_text()) if r["subset"] == ALL]
    last = rows[-1]["checkpoint"] if rows else None
    out = {}
    for row in (r for r in rows if r["checkpoint"] == last):
        out[f"eval/{row['split']}/score"], out[f"eval/{row['split']}/format"] = float(row["score"]), float(row["format"])
    return out


def evaluations(result: RunResult | None, point: Path | None = None) -> dict[str, dict[str, float]]:
    """A result's evaluations before and after RL (a Reason-RFT run's stage 2) and, with `point`,
    the final evaluation written there by `eval_command`; empty when none."""
    found = {FINAL: final_eval(point)} if point is not None else {}
    if result is not None:
        source = result.stage2 or result
        found.update({BEFORE: source.eval_before, AFTER: source.eval_after})
    return {key: value for key, value in found.items() if value}


def read_cells(out: Path, chosen: tuple[Recipe, ...], tasks: list[str], seeds: list[int]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """method -> task -> cell ("id accuracy", ...) -> the value per seed (NaN for a missing point)."""
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for recipe in chosen:
        for task in tasks:
            for seed in seeds:
                point = point_dir(out, recipe, task, seed)
                evals = evaluations(read_result(point), point)
                for method, which in recipe.rows:
                    metrics = evals.get(which, {})
                    cells = table.setdefault(method, {}).setdefault(task, {c: [] for c in CELLS})
                    for cell, key in CELLS.items():
                        cells[cell].append(float(metrics.get(key, float("nan"))))
    return {m: table[m] for m in METHOD_ORDER if m in table}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (std 0 for one value, NaN for none)."""
    finite = [v for v in values if runs.finite(v)]
    if not finite:
        return float("nan"), float("nan")
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def stage2_gain(table: dict, task: str, split: str = "ood") -> dict[str, Any]:
    """Reason-RFT minus COT-SFT accuracy on `split`, paired by seed: per seed, mean, std and
    whether the mean exceeds twice the std (the issue's bar for a visible gain)."""
    after = table.get("Reason-RFT (GRPO)", {}).get(task, {}).get(f"{split} accuracy", [])
    before = table.get("COT-SFT", {}).get(task, {}).get(f"{split} accuracy", [])
    diffs = [a - b for a, b in zip(after, before) if runs.finite(a) and runs.finite(b)]
    mean, std = mean_std(diffs)
    return {"per_seed": diffs, "mean": mean, "std": std, "clear": bool(diffs) and mean >= 5.0 and mean > 2 * std}


def summary(table: dict) -> dict[str, dict[str, dict[str, list[float]]]]:
    """method -> task -> cell -> [mean, std]."""
    return {m: {t: {c: list(mean_std(v)) for c, v in cells.items()} for t, cells in tasks.items()} for m, tasks in table.items()}


def print_table(table: dict, tasks: list[str], seeds: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"Method rows on synthetic tasks: accuracy and format rate in %, mean ± std over {len(seeds)} seeds")
    out.add_column("method")
    for task in tasks:
        for cell in ("id accuracy", "ood accuracy", "id format", "ood format"):
            out.add_column(f"{task}\n{cell.replace('accuracy', 'acc').replace('format', 'fmt')}", justify="right")
    for method, by_task in table.items():
        cells = []
        for task in tasks:
            for cell in ("id accuracy", "ood accuracy", "id format", "ood format"):
                mean, std = mean_std(by_task.get(task, {}).get(cell, []))
                cells.append(f"{mean:.1f} ± {std:.1f}" if runs.finite(mean) else "—")
        out.add_row(method, *cells)
    Console().print(out)


def write_chart(table: dict, tasks: list[str], path: Path) -> Path:
    """Bars of ID and OOD accuracy per method (mean, std as error bars), one panel per task."""
    from rft.tracking.report import figure

    fig, canvas = figure(1, len(tasks), width=6.0, height=4.0)
    methods = list(table)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for offset, split in ((-0.2, "id"), (0.2, "ood")):
            stats = [mean_std(table[m].get(task, {}).get(f"{split} accuracy", [])) for m in methods]
            xs = [j + offset for j in range(len(methods))]
            ax.bar(xs, [s[0] for s in stats], width=0.4, yerr=[s[1] for s in stats], capsize=3, label=split.upper())
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize="small")
        ax.set_title(task)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.print_png(str(path))
    return path


def run_sweeps(
    out: Path, chosen: tuple[Recipe, ...], tasks: list[str], seeds: list[int], extra: list[str], timeout_s: float, dry_run: bool, echo: bool
) -> dict[str, int]:
    """Each recipe's multirun, one after the other (the points inside one run as Ray allows); its
    console output goes to `<out>/<recipe>.log`. Returns the exit status per recipe."""
    status = {}
    for recipe in chosen:
        command = sweep_command(recipe, tasks, seeds, out, extra, dry_run=dry_run)
        print(f"[rft.bench recipes] {recipe.name}: {' '.join(command[1:])}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"{recipe.name}.log", "w") as log:
            status[recipe.name], _, _ = runs.run_command(command, log, timeout_s, echo)
        if status[recipe.name] != 0:
            print(f"[rft.bench recipes] {recipe.name} exited {status[recipe.name]}: see {out / f'{recipe.name}.log'}", flush=True)
        if recipe.evaluate and not dry_run:
            status[f"{recipe.name} eval"] = evaluate_points(out, recipe, tasks, seeds, extra, timeout_s, echo)
    return status


def evaluate_points(out: Path, recipe: Recipe, tasks: list[str], seeds: list[int], extra: list[str], timeout_s: float, echo: bool) -> int:
    """`eval_command` for every finished point of `recipe` (output in `<out>/<recipe>_eval.log`);
    the worst exit status, 1 when a point has no result to evaluate."""
    worst = 0
    with open(out / f"{recipe.name}_eval.log", "w") as log:
        for task in tasks:
            for seed in seeds:
                command = eval_command(point_dir(out, recipe, task, seed), recipe, task, seed, extra)
                code = 1 if command is None else runs.run_command(command, log, timeout_s, echo)[0]
                worst = max(worst, code)
    return worst


def report(out: Path, chosen: tuple[Recipe, ...], tasks: list[str], seeds: list[int], wall_s: float, extra: dict[str, Any]) -> dict[str, Any]:
    """Read every point back, print the table and the stage-2 gain, write JSON and the chart."""
    table = read_cells(out, chosen, tasks, seeds)
    print_table(table, tasks, seeds)
    gains = {task: stage2_gain(table, task) for task in tasks}
    for task, gain in gains.items():
        print(
            f"[rft.bench recipes] {task}: Reason-RFT - COT-SFT OOD accuracy {gain['mean']:+.1f} ± {gain['std']:.1f} (per seed {[round(d, 1) for d in gain['per_seed']]})"
        )
    payload = {
        "benchmark": "recipes",
        "tasks": tasks,
        "seeds": seeds,
        "wall_s": round(wall_s, 1),
        "per_seed": table,
        "summary": summary(table),
        "stage2_gain_ood": gains,
        **extra,
    }
    runs.write_json(out / "recipes.json", payload)
    chart = write_chart(table, tasks, out / "recipes.png")
    print(f"[rft.bench recipes] wrote {out / 'recipes.json'} and {chart}; wall time {wall_s / 60:.1f} min")
    return payload


def main(args) -> int:
    out = Path(args.out).resolve()
    tasks = [t for t in args.tasks.split(",") if t]
    seeds = list(range(args.seeds))
    chosen = recipes(args.extra)
    start = time.perf_counter()
    status = {}
    if args.dry_run:
        status = run_sweeps(out, chosen, tasks, seeds, list(args.overrides), args.timeout, True, args.verbose)
    elif not args.read_only:
        status = run_sweeps(out, chosen, tasks, seeds, list(args.overrides), args.timeout, False, args.verbose)
    if args.dry_run:
        return max(status.values(), default=0)
    extra = {"overrides": list(args.overrides), "sweep_status": status, "load_average": runs.load_average()}
    report(out, chosen, tasks, seeds, time.perf_counter() - start, extra)
    return 0 if all(code == 0 for code in status.values()) else 1


def add_arguments(parser) -> None:
    parser.add_argument("--tasks", default="counting,structure", help="comma-separated task names")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--extra", action="store_true", help="also Reason-RFT with Dr.GRPO and with DAPO")
    parser.add_argument("--out", default="bench_results/recipes", help="folder for the points, recipes.json and recipes.png")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before one recipe's sweep is stopped")
    parser.add_argument("--dry-run", action="store_true", help="compose every point and print its entrypoint; run nothing")
    parser.add_argument("--read-only", action="store_true", help="only read finished points in --out back into the table")
    parser.add_argument("--verbose", action="store_true", help="echo the sweeps' output")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every point (after --)")
