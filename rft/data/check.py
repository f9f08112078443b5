"""Check a data file from the shell: load it as training would and report what was skipped.

    python -m rft.data.check PATH [--image-root DIR] [--fmt auto] [--split train]
        [--max-bad-fraction 0.05] [--check-images full|verify|exists|none]

Prints `{"records": N, "skipped": {reason: count}}` and exits 0, or prints the `DataError`
(the file, the counts per reason, the first offenders) and exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rft.data.fields import IMAGE_CHECKS
from rft.data.readers import FORMATS, DataError, load_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rft.data.check", description="Load a data file and report what was skipped.")
    parser.add_argument("path", help="a JSON/JSONL file, or a saved HF dataset (folder[:split])")
    parser.add_argument("--image-root", default=None)
    parser.add_argument("--fmt", default="auto", choices=FORMATS)
    parser.add_argument("--split", default=None)
    parser.add_argument("--max-bad-fraction", type=float, default=0.05)
    parser.add_argument("--check-images", default="full", choices=IMAGE_CHECKS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = load_records(args.path, args.image_root, args.fmt, args.max_bad_fraction, split=args.split, check_images=args.check_images)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"records": len(result), "skipped": result.skipped}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
