"""`python -m rft.bench scale`: two GRPO steps of a real-architecture 2B model with LoRA on this CPU.

One `python -m rft.launch` of `stage=rl` on `model.path=arch:qwen2vl_2b` (the published
Qwen2-VL-2B-Instruct shapes, random weights: rft.models.arch), `learner.lora.rank=8`, small
images, 2 prompts x 2 samples x 16 tokens, one vLLM actor and one learner rank. Reported: each
actor's peak resident memory (sampled from /proc, rft.bench.memory), the step-time breakdown of
every step, and the adapter sync (seconds and bytes the engine received). The point is that a
model of real size fits and runs in 24 GiB on 2 cores, not speed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rft.bench import runs

STEP_KEYS = {
    "generate s": "timing/generate_s",
    "reward s": "timing/reward_s",
    "logprob s": "timing/logprob_s",
    "update s": "timing/update_s",
    "sync s": "timing/sync_s",
    "step s": "timing/step_s",
    "learner RSS GB": "memory/learner_peak_rss_gb",
}


def scale_overrides(model: str, rank: int, steps: int) -> list[str]:
    return [
        "stage=rl",
        "task=counting",
        f"model={model}",
        f"model.path=arch:{model}",
        "model.min_pixels=3136",
        "model.max_pixels=12544",  # a 112 x 112 image: 16 vision tokens after merging
        "data.synth_image_size=112",
        "data.synth_n_train=8",
        "data.synth_n_test=2",
        f"learner.lora.rank={rank}",
        "learner.num_workers=1",
        "rollout.num_workers=1",
        "rollout.engine=vllm",
        "rollout.max_tokens=16",
        "rollout.max_model_len=512",
        "algo.num_generations=2",
        "trainer.prompts_per_step=2",
        f"trainer.max_steps={steps}",
        f"trainer.save_every={steps}",
        "tracking.sinks=[jsonl]",
        "trainer.progress=false",
    ]


def summarize(launch: runs.LaunchResult, rows: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [{"step": r["step"], **{label: r.get(key, float("nan")) for label, key in STEP_KEYS.items()}} for r in rows if "timing/step_s" in r]
    for step, row in zip(steps, (r for r in rows if "timing/step_s" in r)):
        step["sync MB"] = row.get("sync/mb_per_s", float("nan")) * row.get("timing/sync_s", float("nan"))
    return {"ok": launch.ok, "wall s": launch.wall_s, "peak RSS GB": dict(launch.peak_rss_gb), "steps": steps}


def print_summary(summary: dict[str, Any]) -> None:
    print("| actor | peak RSS GB |\n|---|---|")
    for role, gb in sorted(summary["peak RSS GB"].items()):
        print(f"| {role} | {gb:.2f} |")
    if not summary["steps"]:
        return
    columns = list(summary["steps"][0])
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for step in summary["steps"]:
        print("| " + " | ".join(f"{step[c]:.3g}" if isinstance(step[c], float) else str(step[c]) for c in columns) + " |")


def main(args) -> int:
    out = Path(args.out).resolve()
    run_dir = out / "runs" / f"scale-{args.model}-lora{args.rank}"
    print(f"[rft.bench scale] {run_dir}", flush=True)
    launch = runs.launch(run_dir, scale_overrides(args.model, args.rank, args.steps) + list(args.overrides), timeout_s=args.timeout, echo=args.verbose)
    if not launch.ok:
        print(f"[rft.bench scale] failed (exit {launch.returncode}); last lines:\n  " + "\n  ".join(launch.log_tail), flush=True)
    summary = summarize(launch, runs.read_metrics(run_dir))
    print_summary(summary)
    payload = {
        "benchmark": "scale",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "model": args.model,
        "lora_rank": args.rank,
        "summary": summary,
        "launch": launch.to_dict(),
    }
    print(f"[rft.bench scale] wrote {runs.write_json(out / 'scale.json', payload)}")
    return 0 if launch.ok else 1


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="qwen2vl_2b", help="a real-architecture build (rft.models.arch)")
    parser.add_argument("--rank", type=int, default=8, help="learner.lora.rank")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3000, help="seconds before the run is stopped")
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides added to the run")
