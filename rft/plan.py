"""`python -m rft.plan [--gpu-mem 80GiB --gpus-per-node 8 --nodes 1 --host-mem 512GiB] [overrides]`

Prints the predicted memory of every actor of the run that `python -m rft.launch <overrides>`
would start (learner ranks, rollout engines, driver), where each one runs, whether the placement
fits, and the single settings changes that would make it fit. Nothing is loaded or started: the
model's shape comes from its config.json (`rft.placement.memory_plan`).

Without `--gpu-mem` the hardware is this machine (its RAM, and its GPUs when the run asks for
GPUs). Exit status: 0 when it fits, 1 when it does not, 2 for a bad configuration.
`--table` prints the README's "what fits where" table (GRPO on the four real models, 1x24 GB,
1x80 GB and 8x80 GB GPUs, full fine-tuning and LoRA), all predicted.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from rft.errors import UserError, user_errors_as_one_line
from rft.placement.memory_plan import Hardware, format_plan, model_config, plan_memory, shape_of, this_machine

_SIZE = re.compile(r"^\s*([0-9.]+)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*$", re.IGNORECASE)
_UNITS = {"gib": 1 << 30, "g": 1 << 30, "gb": 10**9, "mib": 1 << 20, "m": 1 << 20, "mb": 10**6, "tib": 1 << 40, "t": 1 << 40, "tb": 10**12}


def parse_size(text: str) -> int:
    """Bytes of `80GiB`, `80GB`, `80G` or a plain number (GiB)."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 80GiB or 24GB")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "gib").lower()])


def compose_config(overrides: Sequence[str]):
    """The run configuration for `overrides`, composed and validated as `rft.launch` does."""
    from hydra import compose, initialize_config_dir

    from rft.config import register_schemas, validate
    from rft.paths import CONF_DIR

    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="plan"):
        cfg = compose(config_name="config", overrides=list(overrides))
    validate(cfg)
    return cfg


def hardware_of(args: argparse.Namespace, cfg) -> Hardware:
    if args.gpu_mem is None and args.host_mem is None:
        return this_machine(cfg.learner.gpus_per_worker > 0 or cfg.rollout.gpus_per_worker > 0)
    per_node = args.gpus_per_node if args.gpu_mem else 0
    return Hardware(gpu_mem=args.gpu_mem, gpus_per_node=per_node, nodes=args.nodes, host_mem=args.host_mem)


# The README's "what fits where" table: GRPO (stage=rl, defaults otherwise) per model and GPU set.
TABLE_MODELS = ("qwen2vl_2b", "qwen25vl_3b", "qwen2vl_7b", "qwen25vl_7b")
ONE_GPU = ["learner.num_workers=1", "cluster.colocate=true", "learner.gpus_per_worker=0.5", "rollout.gpus_per_worker=0.5", "rollout.gpu_memory_utilization=0.3"]
TABLE_HARDWARE = {
    "1x24 GB": (Hardware(gpu_mem=24 * 10**9, gpus_per_node=1), ONE_GPU),
    "1x80 GB": (Hardware(gpu_mem=80 * 10**9, gpus_per_node=1), ONE_GPU),
    "8x80 GB": (Hardware(gpu_mem=80 * 10**9, gpus_per_node=8), []),  # 7 ZeRO-3 learners + 1 vLLM (learner=gpu, rollout=gpu)
}
LORA_RANK = 16


def fits_cell(plan) -> str:
    worst = plan.worst()
    peak = f"{worst.used / 10**9:.0f} GB" if worst else "?"
    return f"fits ({peak})" if plan.fits else f"no ({peak})"


def what_fits_table() -> str:
    """Markdown: for each model and GPU set, full fine-tuning and LoRA (predicted)."""
    from dataclasses import replace

    header = ["model"] + [f"{hw} {kind}" for hw in TABLE_HARDWARE for kind in ("full", f"LoRA r={LORA_RANK}")]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in TABLE_MODELS:
        cells = [model]
        for hardware, extra in TABLE_HARDWARE.values():
            cfg = compose_config(["stage=rl", f"model={model}", "learner=gpu", "rollout=gpu", *extra])
            shape = shape_of(model_config(str(cfg.model.path)))
            full = plan_memory(cfg, shape, hardware, model=model, advise=False)
            lora = plan_memory(replace(full.setup, lora_rank=LORA_RANK), shape, hardware, model=model, advise=False)
            cells += [fits_cell(full), fits_cell(lora)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m rft.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-mem", type=parse_size, default=None, help="memory of each GPU, e.g. 80GiB")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--host-mem", type=parse_size, default=None, help="RAM of each node (CPU runs), e.g. 24GiB")
    parser.add_argument("--table", action="store_true", help="print the README's what-fits-where table and exit")
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    with user_errors_as_one_line():
        if args.table:
            print(what_fits_table())
            return 0
        cfg = compose_config(overrides)
        config = model_config(str(cfg.model.path))
        if config is None:
            raise UserError(
                f"model.path={cfg.model.path}: no config.json to read (not a local folder, a tiny:/arch: build, a known hub id or in the Hugging Face cache)"
            )
        plan = plan_memory(cfg, shape_of(config), hardware_of(args, cfg), model=str(cfg.model.name))
        print(format_plan(plan))
        return 0 if plan.fits else 1


if __name__ == "__main__":
    sys.exit(main())
