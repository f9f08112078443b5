"""`python -m rft.bench {rl,learner,demo,recipes,scale} ...`: see rft.bench."""

from __future__ import annotations

import argparse
import sys

from rft.bench import demo, learner, recipes, rl, scale


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m rft.bench", description="rft benchmarks (each run is a real `python -m rft.launch`)")
    sub = root.add_subparsers(dest="command", required=True)
    rl.add_arguments(sub.add_parser("rl", help="rollout tokens/s (vLLM vs HF), step-time breakdown, weight-sync MB/s"))
    learner.add_arguments(sub.add_parser("learner", help="the learner alone in one process: reference pass and update of variants side by side"))
    demo.add_arguments(sub.add_parser("demo", help="the embedded default over several seeds: format and accuracy after SFT and RL"))
    recipes.add_arguments(sub.add_parser("recipes", help="the papers' method rows (zero-shot, COT-SFT, RL only, Reason-RFT) over tasks and seeds, as Ray Jobs"))
    scale.add_arguments(sub.add_parser("scale", help="2 GRPO steps of the real-architecture 2B model with LoRA: peak memory per actor, step breakdown, sync"))
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return {"rl": rl.main, "learner": learner.main, "demo": demo.main, "recipes": recipes.main, "scale": scale.main}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
