"""`make gpu-check` (`python -m rft.bench.gpu_check`): run the GPU paths once and print one table.

The CPU machines this project is developed on cannot run the GPU code paths: bf16 learners on
CUDA, vLLM's CUDA build, weight sync over NCCL and CUDA IPC, colocated engines that sleep while
the learners update. On a machine with NVIDIA GPUs and the `.[gpu]` install, this script runs
each of them as a real `python -m rft.launch` (or pytest) and checks what the run wrote:

| check              | what runs                                                               |
|--------------------|-------------------------------------------------------------------------|
| cuda-tests         | the `tests/` that need CUDA (log-prob math on GPU vs CPU, memory)         |
| ipc-colocated      | 2 GRPO steps, learner and vLLM on one GPU, sleep/wake, weight_sync=ipc   |
| nccl               | 2 GRPO steps, learner and vLLM on separate GPUs, weight_sync=nccl (>=2)  |
| bf16-real-arch     | 2 GRPO steps of the Qwen2-VL-2B architecture (random weights), bf16      |
| rl-step            | 4 GRPO steps of the ~44 M bench model: step-time breakdown on GPU        |

A step counts as passed when the run finished, every step has a non-zero gradient norm and the
engine's log-probs of the sampled tokens match the learner's (`rollout/logprob_gap`, the
mean absolute gap per token, below `GAP_TOLERANCE`: bf16 on both sides). The table and a JSON
file (`--out`, default `gpu_check/`) give per check the status, wall time, median step
breakdown and the largest gap. Budget: about 8 minutes on one modern GPU; each check has its
own time limit, and a failing check does not stop the others.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rft.bench import runs

GAP_TOLERANCE = 5e-2  # bf16 engine vs bf16 learner: per-token log-prob gaps of ~1e-2 are normal
STEP_KEYS = ("timing/generate_s", "timing/logprob_s", "timing/update_s", "timing/sync_s", "timing/step_s")
# Settings every GPU launch shares: length reward (the random model can move it, so the
# gradients are non-zero), a learning rate that moves the weights, eager vLLM (no graph capture
# in a 2-step run), small engine memory so that a colocated learner fits beside it.
COMMON = [
    "stage=rl",
    "task=counting",
    "learner=gpu",
    "rollout=gpu",
    "learner.num_workers=1",
    "rollout.num_workers=1",
    "+reward.weights.length=1.0",
    "algo.lr=1e-4",
    "algo.num_generations=4",
    "trainer.prompts_per_step=4",
    "trainer.eval_every=0",
    "rollout.max_tokens=32",
    "rollout.enforce_eager=true",
    "rollout.gpu_memory_utilization=0.3",
]


@dataclass
class Check:
    name: str
    overrides: list[str]
    min_gpus: int = 1
    timeout_s: float = 150.0


@dataclass
class Outcome:
    name: str
    status: str  # passed | failed | skipped
    wall_s: float = 0.0
    steps: int = 0
    max_gap: float = float("nan")
    medians: dict[str, float] = field(default_factory=dict)
    reason: str = ""


# Colocated on one GPU: the shared bundle holds both halves (rft.placement.workers adds them up).
COLOCATED = ["cluster.colocate=true", "learner.gpus_per_worker=0.5", "rollout.gpus_per_worker=0.5"]


def checks() -> list[Check]:
    return [
        Check("ipc-colocated", COMMON + ["model=tiny_qwen2vl", *COLOCATED, "rollout.weight_sync=ipc", "trainer.max_steps=2"]),
        Check("nccl", COMMON + ["model=tiny_qwen2vl", "cluster.colocate=false", "rollout.weight_sync=nccl", "trainer.max_steps=2"], min_gpus=2),
        Check(
            "bf16-real-arch",
            COMMON + ["model=qwen2vl_2b", "model.path=arch:qwen2vl_2b", "model.dtype=bfloat16", *COLOCATED, "trainer.max_steps=2"],
            timeout_s=240,
        ),
        Check("rl-step", COMMON + ["model=tiny_qwen2vl", "model.path=tiny:qwen2vl:bench", "cluster.colocate=false", "trainer.max_steps=4"], min_gpus=2),
    ]


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def judge(rows: list[dict[str, Any]], expected_steps: int) -> tuple[bool, str, float]:
    """(passed, reason, largest log-prob gap) from a run's step rows."""
    gaps = [float(r["rollout/logprob_gap"]) for r in rows if runs.finite(r.get("rollout/logprob_gap"))]
    largest = max(gaps) if gaps else float("nan")
    if len(rows) < expected_steps:
        return False, f"{len(rows)} of {expected_steps} steps logged", largest
    if not all(float(r.get("grad_norm", 0.0)) > 0 for r in rows):
        return False, "a step had grad_norm 0: the update moved nothing", largest
    if gaps and largest > GAP_TOLERANCE:
        return False, f"engine and learner log-probs differ by {largest:.3g} > {GAP_TOLERANCE}", largest
    return True, "", largest


def run_launch(check: Check, out: Path) -> Outcome:
    steps = int(next(o.split("=")[1] for o in check.overrides if o.startswith("trainer.max_steps=")))
    launch = runs.launch(out / check.name, check.overrides, timeout_s=check.timeout_s)
    outcome = Outcome(check.name, "failed", wall_s=launch.wall_s)
    if not launch.ok:
        outcome.reason = (launch.log_tail or ["no output"])[-1][:160]
        return outcome
    rows = runs.read_metrics(Path(launch.run_dir))
    passed, reason, gap = judge(rows, steps)
    outcome.status, outcome.reason, outcome.max_gap, outcome.steps = ("passed" if passed else "failed"), reason, gap, len(rows)
    outcome.medians = {key.split("/")[-1]: round(runs.median_after_warmup(rows, key), 3) for key in STEP_KEYS}
    return outcome


def run_cuda_tests(timeout_s: float = 120.0) -> Outcome:
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/algo/test_algo_cuda.py"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Outcome("cuda-tests", "failed", wall_s=timeout_s, reason=f"over {timeout_s:.0f} s")
    last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    return Outcome("cuda-tests", "passed" if proc.returncode == 0 else "failed", wall_s=round(time.perf_counter() - start, 1), reason=last[:160])


def print_table(outcomes: list[Outcome], gpus: int) -> None:
    print(f"\nrft gpu-check ({gpus} GPU{'s' if gpus != 1 else ''})")
    header = f"{'check':16} {'status':8} {'wall s':>7} {'steps':>5} {'gap':>8} {'gen s':>7} {'lp s':>7} {'upd s':>7} {'sync s':>7} {'step s':>7}  note"
    print(header)
    print("-" * len(header))
    for o in outcomes:
        m = o.medians
        cells = " ".join(f"{m.get(k.split('/')[-1], float('nan')):7.3f}" for k in STEP_KEYS)
        print(f"{o.name:16} {o.status:8} {o.wall_s:7.1f} {o.steps:5d} {o.max_gap:8.2g} {cells}  {o.reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rft.bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check", help="folder for the runs and gpu_check.json")
    parser.add_argument("--only", nargs="*", default=None, help="run only these checks")
    args = parser.parse_args(argv)
    gpus = gpu_count()
    if gpus == 0:
        print("rft gpu-check: no CUDA device visible (torch.cuda.is_available() is False); nothing to check", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    wanted = set(args.only) if args.only else None
    outcomes: list[Outcome] = []
    if wanted is None or "cuda-tests" in wanted:
        outcomes.append(run_cuda_tests())
    for check in checks():
        if wanted is not None and check.name not in wanted:
            continue
        if gpus < check.min_gpus:
            outcomes.append(Outcome(check.name, "skipped", reason=f"needs {check.min_gpus} GPUs, {gpus} visible"))
            continue
        outcomes.append(run_launch(check, out))
    print_table(outcomes, gpus)
    runs.write_json(out / "gpu_check.json", {"gpus": gpus, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "checks": [asdict(o) for o in outcomes]})
    return 0 if all(o.status != "failed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
