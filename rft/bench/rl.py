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
  vLLM's weight-transfer API; the HF engine takes folders only);
- each actor's peak resident memory (rft.bench.memory: rollout, learner, driver+ray);
- the learner's achieved FLOP/s (6 x trainable parameters x learner tokens/s) and its MFU
  against a matmul peak measured on this machine (rft.bench.mfu);
- the vLLM engine alone (rft.bench.engine_alone: the run's rollout worker, cores and batch shape,
  in a process of its own after the run) and the run's rollout tokens/s as a share of it;
- the orchestration share of a step: step time minus generate, reward, log-prob, update and
  sync (what the controller, Ray calls and data shipping cost), over step time; with
  `--overrides trainer.off_policy_steps=1` the generation overlaps the update, so the overlap
  (`timing/overlap_s`, its own column) is added back.

`--overrides` appends Hydra overrides to every rft run (e.g. `trainer.off_policy_steps=1`).

With `--peer trl` it also runs TRL's `GRPOTrainer` (rft.bench.peer_trl, extra `bench`) on the
same model, prompts and images, G, new tokens, beta and reward, once per size, and prints rft's
speed-up (TRL's median step time / rft's) for every rft run.

The random-weight models rarely stop early, so almost every completion runs to
`rollout.max_tokens`: every run generates the same number of tokens per step.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rft.bench import engine_alone, runs

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
    "overlap s": "timing/overlap_s",
    "step s": "timing/step_s",
}
RATES = {
    "rollout tok/s": "rollout/tokens_per_s",
    "learner tok/s": "learner/tokens_per_s",
    "sync MB/s": "sync/mb_per_s",
}
# column label -> metrics.jsonl key (the largest value of the run: a process's peak only grows)
PEAKS = {"learner RSS GB": "memory/learner_peak_rss_gb"}
# column label -> role in LaunchResult.peak_rss_gb (sampled from /proc, rft.bench.memory)
ACTOR_PEAKS = {"rollout RSS GB": "RolloutWorker", "reference RSS GB": "ReferenceWorker", "driver RSS GB": "driver+ray"}
PEERS = ("trl",)
# the comparison table: rft's step and derived columns beside the peer's
COMPARISON = ["step s", "peer step s", "speed-up x", "orchestration %", "learner GFLOP/s", "MFU %", "rollout RSS GB", "learner RSS GB", "peer RSS GB"]


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
    for label, role in ACTOR_PEAKS.items():
        row[label] = launch.peak_rss_gb.get(role, float("nan"))
    row["orchestration %"] = 100 * orchestration_share(rows)
    row["response length"] = runs.median_after_warmup(rows, "response_length/mean")
    row["wall s"] = launch.wall_s
    row["cpu s"] = launch.cpu_s if launch.cpu_s is not None else float("nan")
    row["load"] = f"{launch.load_before:.0f}-{launch.load_after:.0f}"
    return row


def orchestration_share(rows: list[dict[str, Any]]) -> float:
    """Median over the steps after warm-up of (step - generate - reward - logprob - update - sync) / step."""
    from rft.bench import mfu

    phases = [key for key in TIMINGS.values() if key not in ("timing/step_s", "timing/overlap_s")]

    def busy(r: dict[str, Any]) -> list[float]:  # time that ran alongside other phases counts once
        return [float(r.get(k, float("nan"))) for k in phases] + [-float(r.get("timing/overlap_s", 0.0))]

    shares = [{"share": mfu.share(mfu.orchestration_s(float(r["timing/step_s"]), busy(r)), float(r["timing/step_s"]))} for r in rows if "timing/step_s" in r]
    return runs.median_after_warmup(shares, "share")


def add_compute(summary: dict[str, Any], trainable: int | None, peak_flops: float) -> None:
    """The learner's achieved FLOP/s and MFU (rft.bench.mfu) into a row."""
    from rft.bench import mfu

    achieved = mfu.learner_flops(trainable, summary["learner tok/s"])
    summary["learner GFLOP/s"] = achieved / 1e9
    summary["MFU %"] = 100 * mfu.mfu(achieved, peak_flops)


def add_speedup(summary: dict[str, Any], peer: dict[str, Any] | None) -> None:
    """The peer's median step of the same size beside rft's, and rft's speed-up over it."""
    from rft.bench import mfu

    peer_step = peer["summary"]["step s"] if peer else float("nan")
    summary["peer step s"] = peer_step
    summary["peer RSS GB"] = peer["summary"]["peak RSS GB"] if peer else float("nan")
    summary["speed-up x"] = mfu.speedup(peer_step, summary["step s"])


def run_peer(out: Path, size: str, args, trainable: int | None, peak_flops: float) -> dict[str, Any]:
    """TRL's GRPOTrainer on this size's run, in its own process (rft.bench.peer_trl)."""
    from rft.bench import peer_trl

    run_dir = (out / "runs" / f"{size}-peer-{args.peer}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"[rft.bench rl] {size} / peer {args.peer}: {run_dir}", flush=True)
    load_before = runs.load_average()
    with open(run_dir / runs.LOG_NAME, "w") as log:
        returncode, cpu_s, _ = runs.run_command(
            peer_trl.peer_command(size, args.steps, args.prompts, args.max_tokens, run_dir), log, args.timeout, args.verbose
        )
    result_path = run_dir / peer_trl.RESULT_NAME
    result = json.loads(result_path.read_text()) if returncode == 0 and result_path.exists() else {}
    if not result:
        print(f"[rft.bench rl] {size} / peer {args.peer} failed (exit {returncode}); see {run_dir / runs.LOG_NAME}", flush=True)
    summary = summarize_peer(size, args.peer, result, tokens_per_step=args.prompts * GENERATIONS)
    summary["cpu s"] = cpu_s if cpu_s is not None else float("nan")
    summary["load"] = f"{load_before:.0f}-{runs.load_average():.0f}"
    add_compute(summary, trainable, peak_flops)
    return {
        "summary": summary,
        "result": result,
        "returncode": returncode,
        "note": "the peer's update s is its step minus generate+score (includes TRL's bookkeeping)",
    }


def summarize_peer(size: str, peer: str, result: dict[str, Any], tokens_per_step: int) -> dict[str, Any]:
    """The peer's table row: medians after the warm-up step; its update is the rest of its step
    after generate+score, its learner tokens/s the completion tokens over that."""
    steps = peer_steps(result)
    summary: dict[str, Any] = {"size": size, "engine": f"peer: {peer}", "sync": "-", "ok": bool(result), "steps": len(steps)}
    summary["step s"] = runs.median_after_warmup(steps, "step_s")
    summary["generate+score s"] = runs.median_after_warmup(steps, "generate_score_s")
    summary["update s"] = summary["step s"] - summary["generate+score s"]  # the rest of TRL's step
    tokens = tokens_per_step * _completion_length(result)
    summary["learner tok/s"] = tokens / summary["update s"] if summary["update s"] > 0 else float("nan")
    summary["peak RSS GB"] = result.get("peak_rss_gb", float("nan"))
    return summary


def peer_steps(result: dict[str, Any]) -> list[dict[str, float]]:
    """The peer's steps as rows: step_s, and generate_score_s where TRL's phase was timed."""
    generate = result.get("generate_score_s") or []
    return [{"step_s": step, **({"generate_score_s": generate[i]} if i < len(generate) else {})} for i, step in enumerate(result.get("step_s", []))]


def _completion_length(result: dict[str, Any]) -> float:
    """Median logged completion length of the peer's steps after the first (NaN if none)."""
    rows = [row for row in result.get("logs", []) if "completions/mean_length" in row]
    return runs.median_after_warmup(rows, "completions/mean_length")


def run_point(out: Path, size: str, engine: str, sync: str, args, variant: str = "") -> dict[str, Any]:
    """One rft launch; `variant` holds extra overrides (space-separated) for this point only."""
    name = " / ".join([size, engine, sync] + ([variant] if variant else []))
    run_dir = out / "runs" / "-".join([size, engine, sync] + ([variant_slug(variant)] if variant else []))
    overrides = run_overrides(size, engine, args.steps, args.prompts, args.max_tokens, sync) + list(args.overrides) + variant.split()
    print(f"[rft.bench rl] {name}: {run_dir}", flush=True)
    launch = runs.launch(run_dir, overrides, timeout_s=args.timeout, echo=args.verbose)
    if not launch.ok:
        print(f"[rft.bench rl] {name} failed (exit {launch.returncode}); last lines:\n  " + "\n  ".join(launch.log_tail), flush=True)
    rows = runs.read_metrics(run_dir)
    summary = summarize(size, engine, launch, rows, sync)
    summary["variant"] = variant
    alone = engine_alone.measure_in_subprocess(overrides) if engine == "vllm" and args.engine_alone else {}
    add_engine_alone(summary, alone)
    return {"summary": summary, "launch": launch.to_dict(), "steps": rows, "engine_alone": alone}


def add_engine_alone(summary: dict[str, Any], alone: dict[str, Any]) -> None:
    """The engine's tokens/s measured alone (`rft.bench.engine_alone`) and the run's share of it."""
    summary["alone tok/s"] = alone.get("tokens_per_s", float("nan"))
    summary["in-run / alone %"] = 100 * summary["rollout tok/s"] / summary["alone tok/s"]


def variant_slug(variant: str) -> str:
    """A folder-name form of a variant's overrides: `trainer.off_policy_steps=1` -> `off_policy_steps1`."""
    return "_".join(part.rsplit(".", 1)[-1].replace("=", "") for part in variant.split())


def bench_points(args) -> list[tuple[str, str, str, str]]:
    """(size, engine, sync, variant) for every run; the HF engine only reloads folders."""
    syncs = lambda engine: args.syncs if engine == "vllm" else ["folder"]
    return [(size, engine, sync, variant) for size in args.sizes for engine in args.engines for sync in syncs(engine) for variant in args.variants]


def print_table(points: list[dict[str, Any]], params: dict[str, int | None]) -> None:
    """Two tables (rates, then the step-time breakdown), each narrow enough for a terminal."""
    from rich.console import Console

    console = Console()
    rates = ["params", *RATES, "alone tok/s", "in-run / alone %", "learner GFLOP/s", "MFU %", "wall s", "cpu s", "load"]
    console.print(_table(f"Throughput at G = {GENERATIONS} (medians after the warm-up step)", points, rates, params))
    console.print(_table("Step time in seconds (medians after the warm-up step)", points, [*TIMINGS, "orchestration %"], params))
    console.print(_table("Peak resident memory per actor, GB", points, [*PEAKS, *ACTOR_PEAKS], params))


FORMULAS = {
    "learner GFLOP/s": "6 x trainable parameters x learner tokens/s (completion tokens x PPO epochs / update s); prompt, image and attention FLOPs left out",
    "MFU %": "learner FLOP/s / matmul_peak.flops",
    "orchestration %": "median over steps after warm-up of (step - generate - reward - logprob - update - sync) / step",
    "speed-up x": "peer's median step s / rft's median step s, same size",
    "rollout RSS GB": "largest 1 s sample of the summed VmRSS of the RolloutWorker actor and its children (vLLM engine)",
    "reference RSS GB": "the same for the separate reference actor (learner.separate_reference; NaN without one)",
    "learner RSS GB": "getrusage peak of the learner actor (memory/learner_peak_rss_gb)",
    "peer RSS GB": "getrusage peak of the peer's one process",
    "alone tok/s": "the run's rollout worker alone (rft.bench.engine_alone): same engine, cores and batch shape, outside the run; median of 3 rounds after a warm-up",
    "in-run / alone %": "rollout tok/s / alone tok/s",
}


def print_comparison(points: list[dict[str, Any]], peers: list[dict[str, Any]], params: dict[str, int | None], peer: str) -> None:
    """rft beside the peer: step times, speed-up, orchestration, MFU and memory."""
    from rich.console import Console

    console = Console()
    title = f"rft vs {peer} (medians after the warm-up step; speed-up = peer step / rft step)"
    console.print(_table(title, points, ["params", *COMPARISON], params))
    columns = ["params", "step s", "generate+score s", "update s", "learner GFLOP/s", "MFU %", "peak RSS GB", "cpu s", "load"]
    console.print(_table(f"The peer: {peer} GRPOTrainer, one process", peers, columns, params))


def _table(title: str, points: list[dict[str, Any]], columns: list[str], params: dict[str, int | None]):
    from rich.table import Table

    table = Table(title=title)
    keys = ["size", "engine", "sync"] + (["variant"] if any(p["summary"].get("variant") for p in points) else [])
    for name in [*keys, *columns]:
        table.add_column(name, justify="left" if name in (*keys, "load") else "right")
    for point in points:
        s = point["summary"]
        cells = [_millions(params.get(s["size"])) if name == "params" else s[name] if name == "load" else _num(s[name]) for name in columns]
        table.add_row(*(str(s.get(key, "")) for key in keys), *cells, style=None if s["ok"] else "red")
    return table


def _num(value: Any) -> str:
    if not isinstance(value, (int, float)) or value != value:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 50 else f"{value:.2f}"


def _millions(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} M"


def trainable_count(size: str) -> int | None:
    """Weights the learner trains for `size` (vision tower frozen, as model=tiny_qwen2vl has it)."""
    from rft.bench.mfu import trainable_parameters
    from rft.models.loading import resolve_model_path

    return trainable_parameters(resolve_model_path(SIZES[size], "qwen2vl"), freeze_vision=True)


def measure_peak() -> dict[str, Any]:
    from rft.bench import mfu

    dtype = mfu.learner_compute_dtype()
    load = runs.load_average()
    return {"dtype": dtype, "flops": mfu.matmul_peak_flops(dtype), "load": load, "how": "best of 5 timed 2048^3 matmuls, torch's default threads"}


def main(args) -> int:
    out = Path(args.out).resolve()
    params = {size: parameter_count(size) for size in args.sizes}
    trainable = {size: trainable_count(size) for size in args.sizes}
    peak = measure_peak()
    print(f"[rft.bench rl] matmul peak ({peak['dtype']}): {peak['flops'] / 1e9:,.0f} GFLOP/s", flush=True)
    points = [run_point(out, size, engine, sync, args, variant) for size, engine, sync, variant in bench_points(args)]
    peers = {size: run_peer(out, size, args, trainable[size], peak["flops"]) for size in args.sizes} if args.peer else {}
    for point in points:
        add_compute(point["summary"], trainable[point["summary"]["size"]], peak["flops"])
        add_speedup(point["summary"], peers.get(point["summary"]["size"]))
    print_table(points, params)
    if peers:
        print_comparison(points, list(peers.values()), params, args.peer)
    payload = {
        "benchmark": "rl",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "generations": GENERATIONS,
            "steps": args.steps,
            "prompts_per_step": args.prompts,
            "max_tokens": args.max_tokens,
            "peer": args.peer,
            "overrides": list(args.overrides),
            "variants": list(args.variants),
        },
        "parameters": params,
        "trainable_parameters": trainable,
        "matmul_peak": peak,
        "formulas": FORMULAS,
        "results": points,
        "peers": list(peers.values()),
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
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides added to every rft run, e.g. trainer.off_policy_steps=1")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[""],
        help="one rft run per variant and size, each adding its overrides (space-separated in one argument), "
        "e.g. --variants trainer.off_policy_steps=0 trainer.off_policy_steps=1",
    )
    parser.add_argument(
        "--no-engine-alone", dest="engine_alone", action="store_false", help="skip measuring each vLLM point's engine alone (rft.bench.engine_alone)"
    )
    parser.add_argument("--peer", choices=PEERS, default=None, help="also run this peer (TRL's GRPOTrainer; extra `bench`) per size and print rft's speed-up")
