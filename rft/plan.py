"""`python -m rft.plan [--gpu-mem 80GiB --gpus-per-node 8 --nodes 1 --host-mem 512GiB] [overrides]`

Prints the predicted memory of every actor of the run that `python -m rft.launch <overrides>`
would start (learner ranks, rollout engines, driver), where each one runs, whether the placement
fits, and the single settings changes that would make it fit. Nothing is loaded or started: the
model's shape comes from its config.json (`rft.placement.memory_plan`).

Without `--gpu-mem` the hardware is this machine (its RAM, and its GPUs when the run asks for
GPUs). Exit status: 0 when it fits, 1 when it does not, 2 for a bad configuration.
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


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m rft.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-mem", type=parse_size, default=None, help="memory of each GPU, e.g. 80GiB")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--host-mem", type=parse_size, default=None, help="RAM of each node (CPU runs), e.g. 24GiB")
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    with user_errors_as_one_line():
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
