"""`python -m rft.models.merge CHECKPOINT --out DIR`: a LoRA checkpoint as a plain Hugging Face model.

CHECKPOINT is an adapter folder, or a training checkpoint (`.../step_<N>`) holding one under
`adapter/`. The base model is the adapter's `base_model_name_or_path` unless `--base` names
another folder. The result loads in transformers and vLLM like any model folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rft.models.adapter import is_adapter_folder, merge_adapter


def adapter_folder(checkpoint: str) -> Path:
    """The adapter folder of `checkpoint` (itself, or its `adapter/`); FileNotFoundError if none."""
    for folder in (Path(checkpoint), Path(checkpoint) / "adapter"):
        if is_adapter_folder(folder):
            return folder
    raise FileNotFoundError(f"{checkpoint} holds no LoRA adapter (adapter_config.json, or adapter/adapter_config.json)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rft.models.merge", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="an adapter folder or a training checkpoint step_<N>")
    parser.add_argument("--out", required=True, help="folder for the merged model")
    parser.add_argument("--base", default=None, help="the base model (default: the adapter's own record of it)")
    args = parser.parse_args(argv)
    try:
        out = merge_adapter(adapter_folder(args.checkpoint), args.out, base=args.base)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
