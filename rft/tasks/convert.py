"""Turn a Reason-RFT meta-JSON into the training files of each stage, and split it for Reason-RFT.

    python -m rft.tasks.convert --to ans_sft|cot_sft|rl --in META.json --out OUT.json [--task T]
    python -m rft.tasks.convert --in META.json --split-first 1600 \\
        --stage1-out stage1_cot_sft.json --stage2-out stage2_rl.json --task counting [--stage2-all]

- `ans_sft`, `cot_sft`: ShareGPT `{id, image, messages: [user, assistant]}`. The user turn is
  `task.user_prompt(record, style)` and the assistant turn `task.sft_target(record, style)` from
  `rft.tasks.get_task(--task)`, so the prompts live with the task, in one place.
- `rl`: `{id, image, problem, solution}` plus the record's meta keys (the task's rewards and
  prompts read them, e.g. a structure question's subset); `--strict` writes the four keys only.
- The split: the first N records (file order, after skipping bad ones) in `--stage1-format`
  (default `cot_sft`) and the rest in `--stage2-format` (default `rl`); `--stage2-all` puts every
  record in stage 2 (what Reason-RFT does for Structure Perception).

`image` is written as in the source: relative to the image root the records were read with
(`--image-root`, default the input's folder); read the outputs with that same image root.
`--paths-relative-to-output` instead writes them relative to each output file's folder (absolute
where an image lies outside it), so the outputs load with the default image root.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rft.data import writers
from rft.data.readers import DataError, load_records
from rft.data.records import Record
from rft.tasks import PromptStyle, get_task

log = logging.getLogger(__name__)

# The prompt styles a training file can be written in.
STYLES = (PromptStyle.ans_sft, PromptStyle.cot_sft, PromptStyle.rl)


def convert_records(
    records: Sequence[Record],
    style: str,
    image_root: str | os.PathLike,
    task: Any = None,
    *,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """Training-format dicts for `records` in `style` (see the module docstring)."""
    if style == "rl":
        return [writers.rl_item(r, image_root, extras=not strict) for r in records]
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if task is None:
        raise ValueError(f"{style} needs a task (its prompt template): pass --task")
    if style == "cot_sft":
        _require_cot(records)
    return [writers.sharegpt_item(r, image_root, task.user_prompt(r, style), task.sft_target(r, style)) for r in records]


def _require_cot(records: Sequence[Record]) -> None:
    missing = [r.id for r in records if not r.cot]
    if missing:
        raise DataError(f"cot_sft needs a cot in every record; {len(missing)} of {len(records)} have none (first: {missing[:5]})")


def split_first(records: Sequence[Record], n: int, stage2_all: bool = False):
    """(stage 1, stage 2): the first `n` records, and the rest (or all with `stage2_all`)."""
    if n <= 0:
        raise ValueError(f"--split-first must be positive, got {n}")
    if n >= len(records) and not stage2_all:
        raise DataError(f"--split-first {n} leaves nothing for stage 2 ({len(records)} records)")
    return list(records[:n]), list(records if stage2_all else records[n:])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rft.tasks.convert", description=__doc__.split("\n")[0])
    p.add_argument("--in", dest="inp", required=True, help="meta-JSON (or any format rft reads)")
    p.add_argument("--to", choices=STYLES, help="format of --out")
    p.add_argument("--out", help="output file (.json, or .jsonl for one record a line)")
    p.add_argument("--task", help="task name for the SFT prompt template (rft.tasks.get_task)")
    p.add_argument("--image-root", help="folder the image paths are relative to (default: --in's)")
    p.add_argument("--split-first", type=int, help="N: first N records for stage 1")
    p.add_argument("--stage1-out")
    p.add_argument("--stage2-out")
    p.add_argument("--stage1-format", choices=STYLES, default="cot_sft")
    p.add_argument("--stage2-format", choices=STYLES, default="rl")
    p.add_argument("--stage2-all", action="store_true", help="stage 2 gets every record")
    p.add_argument("--strict", action="store_true", help="RL: only id, image, problem, solution")
    p.add_argument("--paths-relative-to-output", action="store_true", help="image paths relative to each output's folder, not to the image root")
    p.add_argument("--max-bad-fraction", type=float, default=0.05)
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.out and not args.to:
        p.error("--out needs --to")
    if args.to and not args.out:
        p.error("--to needs --out")
    split_args = (args.split_first, args.stage1_out, args.stage2_out)
    if any(a is not None for a in split_args) and not all(a is not None for a in split_args):
        p.error("--split-first, --stage1-out and --stage2-out go together")
    if not args.out and args.split_first is None:
        p.error("nothing to do: give --to/--out and/or --split-first/--stage1-out/--stage2-out")


def run(args: argparse.Namespace) -> dict[str, Path]:
    """Do what the parsed command line asks; returns {what: written path}."""
    root = Path(args.image_root).absolute() if args.image_root else Path(args.inp).absolute().parent
    records = load_records(args.inp, root, max_bad_fraction=args.max_bad_fraction).records
    styles = [args.to] if args.out else []
    if args.split_first is not None:
        styles += [args.stage1_format, args.stage2_format]
    task = get_task(args.task) if args.task and any(s != "rl" for s in styles) else None
    written: dict[str, Path] = {}

    def emit(name: str, recs: Sequence[Record], style: str, path: str) -> None:
        write_root = Path(path).absolute().parent if args.paths_relative_to_output else root
        items = convert_records(recs, style, write_root, task, strict=args.strict)
        written[name] = writers.write_items(items, path)
        log.info("wrote %d %s records to %s", len(items), style, path)

    if args.out:
        emit("out", records, args.to, args.out)
    if args.split_first is not None:
        stage1, stage2 = split_first(records, args.split_first, args.stage2_all)
        emit("stage1", stage1, args.stage1_format, args.stage1_out)
        emit("stage2", stage2, args.stage2_format, args.stage2_out)
    out_dir = Path(args.out or args.stage1_out).absolute().parent
    if out_dir != root and not args.paths_relative_to_output:
        log.info("image paths are relative to %s: read the outputs with image_root=%s", root, root)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run(args)
    except (DataError, ValueError, ImportError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
