"""Command line for the synthetic data sets.

    python -m rft.data.synth <task> --out DIR --n N_TRAIN [--n-test M] --seed S \\
        [--image-size PX] [--opt key=value ...]

`--opt` sets a task option (see the task module's DEFAULTS); values are read as JSON when they
parse (`max_objects=4`, `shapes='["circle","square"]'`) and as plain strings otherwise.
Without `--out`, the set is built in (or found in) the cache and its folder printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rft.data.synth.core import DEFAULT_IMAGE_SIZE, TASKS, ensure_synth, synth_dataset


def parse_opt(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rft.data.synth", description=__doc__.split("\n")[0])
    p.add_argument("task", choices=TASKS)
    p.add_argument("--out", help="output folder (default: the cache, rft.paths.data_cache())")
    p.add_argument("--n", type=int, required=True, help="training examples")
    p.add_argument("--n-test", type=int, help="examples per test split (default: n // 4, ≥ 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    p.add_argument("--opt", type=parse_opt, action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    n_test = args.n_test if args.n_test is not None else max(1, args.n // 4)
    opts = dict(args.opt)
    try:
        if args.out:
            paths = synth_dataset(args.task, args.out, args.n, n_test, args.seed, args.image_size, **opts)
            print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
        else:
            print(ensure_synth(args.task, n_train=args.n, n_test=n_test, seed=args.seed, image_size=args.image_size, **opts))
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
