"""`python -m rft.bench rl`: throughput of the GRPO loop, per model size and rollout engine.

For each size (`tiny`: the ~0.8 M test model; `bench`: the ~44 M `tiny:qwen2vl:bench` build, big
enough that the engines rather than their overheads are measured) and each engine (`vllm`, `hf`)
it launches a short `stage=rl` run at G = 8 on synthetic counting and reads its `metrics.jsonl`.
Reported per run, as medians over the steps after the first (warm-up) step:

- rollout tokens/s (generated tokens / generate time) and learner tokens/s;
- the learner's peak resident memory (largest over the run, from the learner actor's getrusage);
- the step-time breakdown: generate / reward / logprob (reference) / update / sync / step;
- weight-sync MB/s (bytes exported by the learner / time until the rollout engine has them),
  per `rollout.weight_sync` asked for with `--syncs` (`folder`, or `gloo`: streamed through
  vLLM's weight-transfer API; the HF engine takes folders only).

The random-weight models rarely stop early, so almost every completion runs to
`rollout.max_tokens`: every run generates the same number of tokens per step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rft.bench import runs

SIZES = {"tiny": "tiny:qwen2vl", "small": "tiny:qwen2vl:small", "bench": "tiny:qwen2vl:bench"}
ENGINES = ("vllm", "hf")
SYNCS = ("folder", "gloo")
GENERATIONS = 8
# column label -> metrics.jsonl key (medians after the warm-up step)
TIMINGS = {
    "generate s": "timing/generate_s",
    "reward s": "timing/reward_s",
    "logprob s": "timing/logprob_s",
    "update s": "timing/update_s",
    "sync s": "timing/sync_s",
    "step s": "timing/step_s",
}
RATES = {
    "rollout tok/s": "rollout/tokens_per_s",
    "learner tok/s": "learner/tokens_per_s",
    "sync MB/s": "sync/mb_per_s",
}
# column label -> metrics.jsonl key (the largest value of the run: a process's peak only grows)
PEAKS = {"learner RSS GB": "memory/learner_peak_rss_gb"}


def run_overrides(size: str, engine: str, steps: int, prompts: int, max_tokens: int, sync: str = "folder") -> list[str]:
    """The launch of one benchmark point: a short GRPO run, no evaluation, one checkpoint."""
    return [
        f"rollout.weight_sync={sync}",
        "stage=rl",
        "task=counting",
        "model=tiny_qwen2vl",
        f"model.path={SIZES[size]}",
        f"rollout.engine={engine}",
        f"algo.num_generations={GENERATIONS}",
        f"trainer.max_steps={steps}",
        f"trainer.prompts_per_step={prompts}",
        f"trainer.save_every={steps}",
        f"rollout.max_tokens={max_tokens}",
        "rollout.max_model_len=1024",
        "data.synth_n_train=64",
        "data.synth_n_test=8",
        "tracking.sinks=[jsonl]",
        "trainer.progress=false",
    ]


def parameter_count(size: str) -> int | None:
    """Parameters of the cached build of `size` (built now if missing)."""
    import json

    from rft.models.tiny import BUILD_INFO, ensure_tiny_model

    arch_size = SIZES[size].split(":")
    folder = ensure_tiny_model(arch_size[1], arch_size[2] if len(arch_size) > 2 else "tiny")
    return json.loads((folder / BUILD_INFO).read_text()).get("parameters")


def summarize(size: str, engine: str, launch: runs.LaunchResult, rows: list[dict[str, Any]], sync: str = "folder") -> dict[str, Any]:
    """One table row: medians of the rates and timings after the warm-up step."""
    row: dict[str, Any] = {"size": size, "engine": engine, "sync": sync, "ok": launch.ok, "steps": len(rows)}
    row["warmup_skipped"] = len(rows) > 1
    for label, key in {**RATES, **TIMINGS}.items():
        row[label] = runs.median_after_warmup(rows, key)
    for label, key in PEAKS.items():
        row[label] = max((float(r[key]) for r in rows if key in r and runs.finite(r[key])), default=float("nan"))
    row["response length"] = runs.median_after_warmup(rows, "response_length/mean")
    row["wall s"] = launch.wall_s
    row["cpu s"] = launch.cpu_s if launch.cpu_s is not None else float("nan")
    row["load"] = f"{launch.load_before:.0f}-{launch.load_after:.0f}"
    return row


def run_point(out: Path, size: str, engine: str, sync: str, args) -> dict[str, Any]:
    name = f"{size} / {engine} / {sync}"
    run_dir = out / "runs" / f"{size}-{engine}-{sync}"
    overrides = run_overrides(size, engine, args.steps, args.prompts, args.max_tokens, sync)
    print(f"[rft.bench rl] {name}: {run_dir}", flush=True)
    launch = runs.launch(run_dir, overrides, timeout_s=args.timeout, echo=args.verbose)
    if not launch.ok:
        print(f"[rft.bench rl] {name} failed (exit {launch.returncode}); last lines:\n  " + "\n  ".join(launch.log_tail), flush=True)
    rows = runs.read_metrics(run_dir)
    return {"summary": summarize(size, engine, launch, rows, sync), "launch": launch.to_dict(), "steps": rows}


def bench_points(args) -> list[tuple[str, str, str]]:
    """(size, engine, sync) for every run; the HF engine only reloads folders."""
    return [
        (size, engine, sync)
        for size in args.sizes
        for engine in args.engines
        for sync in (args.syncs if engine == "vllm" else ["folder"])
    ]


def print_table(points: list[dict[str, Any]], params: dict[str, int | None]) -> None:
    """Two tables (rates, then the step-time breakdown), each narrow enough for a terminal."""
    from rich.console import Console

    console = Console()
    rates = ["params", *RATES, *PEAKS, "wall s", "cpu s", "load"]
    console.print(_table(f"Throughput at G = {GENERATIONS} (medians after the warm-up step)", points, rates, params))
    console.print(_table("Step time in seconds (medians after the warm-up step)", points, list(TIMINGS), params))


def _table(title: str, points: list[dict[str, Any]], columns: list[str], params: dict[str, int | None]):
    from rich.table import Table

    table = Table(title=title)
    for name in ["size", "engine", "sync", *columns]:
        table.add_column(name, justify="left" if name in ("size", "engine", "sync", "load") else "right")
    for point in points:
        s = point["summary"]
        cells = [_millions(params.get(s["size"])) if name == "params" else s[name] if name == "load" else _num(s[name]) for name in columns]
        table.add_row(s["size"], s["engine"], s["sync"], *cells, style=None if s["ok"] else "red")
    return table


def _num(value: Any) -> str:
    if not isinstance(value, (int, float)) or value != value:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 50 else f"{value:.2f}"


def _millions(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} M"


def main(args) -> int:
    out = Path(args.out).resolve()
    params = {size: parameter_count(size) for size in args.sizes}
    points = [run_point(out, size, engine, sync, args) for size, engine, sync in bench_points(args)]
    print_table(points, params)
    payload = {
        "benchmark": "rl",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"generations": GENERATIONS, "steps": args.steps, "prompts_per_step": args.prompts, "max_tokens": args.max_tokens},
        "parameters": params,
        "results": points,
        "note": "timings are wall-clock on a possibly shared machine; see each run's load average",
    }
    path = runs.write_json(out / "rl.json", payload)
    print(f"[rft.bench rl] wrote {path}")
    return 0 if all(p["summary"]["ok"] for p in points) else 1


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["tiny", "bench"])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--syncs", nargs="+", choices=SYNCS, default=["folder"], help="rollout.weight_sync for vLLM runs")
    parser.add_argument("--steps", type=int, default=4, help="RL steps per run (the first is warm-up)")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (x G = 8 completions each)")
    parser.add_argument("--max-tokens", type=int, default=64, help="rollout.max_tokens")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is stopped")
    parser.add_argument("--out", default="bench_results", help="folder for rl.json and the run folders")
    parser.add_argument("--verbose", action="store_true", help="echo every run's output")
