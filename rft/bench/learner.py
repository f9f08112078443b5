"""The learner of a bench point measured in one process: a real `LearnerWorker` (DeepSpeed, one
gloo rank, outside Ray) on the run's model, prompts and batch shape (`trainer.prompts_per_step` x
`algo.num_generations` completions of `rollout.max_tokens` tokens, drawn at random from the text
vocabulary), timing the reference pass and the update as `python -m rft.bench rl` would see them,
without generation or Ray around them. Variants (Hydra overrides) are built side by side in the
same process and timed in turn, round after round, so that their ratio is measured under the
same load.

    python -m rft.bench learner --size bench --rounds 5 --variants "" learner.shared_prefix=false
    python -m rft.bench learner --profile        # torch profiler's top ops of one update

Prints a table and writes JSON (medians of the rounds after the first, which is warm-up). Peak
RSS is the process's, so with several variants it covers all of them: compare memory one variant
at a time.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rft.bench.rl import SIZES, run_overrides


@dataclass
class Variant:
    name: str
    worker: Any
    samples: list
    loss: Any
    times: dict[str, list[float]]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _samples(cfg, model_path: str, seed: int) -> list:
    """The run's first prompts, each with G random completions of `rollout.max_tokens` tokens."""
    from rft.bench.engine_alone import training_prompts
    from rft.types import TrainSample

    processor, items = training_prompts(cfg, model_path, cfg.trainer.prompts_per_step)
    special = set(processor.tokenizer.all_special_ids)
    vocab = [i for i in range(len(processor.tokenizer)) if i not in special]
    rng = random.Random(seed)
    return [
        TrainSample(item, [rng.choice(vocab) for _ in range(cfg.rollout.max_tokens)], advantage=rng.gauss(0.0, 1.0))
        for item in items
        for _ in range(cfg.algo.num_generations)
    ]


def build(name: str, overrides: list[str], seed: int = 0) -> Variant:
    from rft.algo.config import AlgoSettings
    from rft.config import compose_checked
    from rft.learner.worker import LearnerWorker
    from rft.models.loading import resolve_model_path
    from rft.placement.workers import learner_settings

    cfg = compose_checked(overrides)
    path = resolve_model_path(cfg.model.path, cfg.model.arch)
    algo = AlgoSettings.from_config(cfg.algo, max_completion_len=cfg.rollout.max_tokens)
    settings = learner_settings(cfg, path, sft=False, total_steps=1000, need_reference=algo.needs_reference)
    worker = LearnerWorker(0, 1, settings)
    worker.setup("127.0.0.1", int(os.environ.get("MASTER_PORT") or _free_port()))
    return Variant(name, worker, _samples(cfg, path, seed), algo.loss, {"logprob_s": [], "update_s": []})


def one_round(variant: Variant) -> None:
    samples = variant.samples
    start = time.perf_counter()
    if variant.worker.ref_engine is not None:
        for sample, ref in zip(samples, variant.worker.logprobs(samples, "ref")):
            sample.ref_logprobs = ref
    middle = time.perf_counter()
    totals = {"tokens": float(sum(len(s.completion_ids) for s in samples)), "seqs": float(len(samples))}
    variant.worker.train_rl(samples, variant.loss, totals)
    end = time.perf_counter()
    variant.times["logprob_s"].append(middle - start)
    variant.times["update_s"].append(end - middle)


def summary(variant: Variant) -> dict[str, Any]:
    tokens = sum(len(s.completion_ids) for s in variant.samples)
    out: dict[str, Any] = {"variant": variant.name, "rounds": variant.times}
    for key, values in variant.times.items():
        out[key] = statistics.median(values[1:] or values)
    out["learner_tok_s"] = tokens / out["update_s"]
    return out


def profile_update(variant: Variant, rows: int = 25) -> str:
    import torch

    one_round(variant)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        one_round(variant)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from rft.host import peak_rss_gb

    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    base = run_overrides(args.size, "vllm", 1, args.prompts, args.max_tokens)
    variants = [build(v or "default", base + (v.split() if v else [])) for v in args.variants]
    if args.profile:
        print(profile_update(variants[0]))
        return 0
    for _ in range(args.rounds):
        for variant in variants:
            one_round(variant)
    results = [summary(v) for v in variants]
    table = Table(title=f"learner alone: {args.size}, {args.prompts} prompts x G x {args.max_tokens} tokens (medians of rounds 2-{args.rounds})")
    for column in ("variant", "logprob s", "update s", "learner tok/s", "vs first"):
        table.add_column(column)
    first = results[0]["logprob_s"] + results[0]["update_s"]
    for r in results:
        ratio = first / (r["logprob_s"] + r["update_s"])
        table.add_row(r["variant"], f"{r['logprob_s']:.3f}", f"{r['update_s']:.3f}", f"{r['learner_tok_s']:.0f}", f"{ratio:.2f}x")
    Console().print(table)
    out = {"args": vars(args), "peak_rss_gb": peak_rss_gb(), "load": os.getloadavg(), "variants": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"peak RSS {out['peak_rss_gb']:.2f} GB (the whole process); JSON: {args.out}")
    return 0


def add_arguments(parser) -> None:
    parser.add_argument("--size", choices=sorted(SIZES), default="bench")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=[""], help='Hydra overrides per variant, space-separated in one argument ("" = defaults)')
    parser.add_argument("--profile", action="store_true", help="print torch profiler's top ops of one round of the first variant")
    parser.add_argument("--out", default="outputs/bench/learner.json")
