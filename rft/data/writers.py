"""Write `Record`s in the formats `rft.data.readers` reads back: meta-JSON, RL, ShareGPT.

- meta-JSON: `{id, image, problem, answer, cot?, **meta}`; `meta` keys are written flat, which
  the reader puts back into `meta`, so meta-JSON round-trips exactly.
- RL: `{id, image, problem, solution, **meta}` (Reason-RFT's RL format; `solution` is the bare
  answer). Pass `extras=False` for exactly the four Reason-RFT keys. The cot is not part of it.
- ShareGPT: `{id, image, messages: [{role: user, content}, {role: assistant, content}]}`; the
  contents come from the caller (the task's prompt template, see `rft.tasks.convert`).

Image paths are written relative to `image_root` when they lie under it (absolute otherwise),
as a string for one image and a list for several. A path ending in `.jsonl` gets one record a
line; any other a JSON list. Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rft.data.records import Record

_RESERVED = {"id", "image", "images", "problem", "answer", "solution", "cot", "messages"}


def image_field(images: list[str], image_root: str | os.PathLike) -> str | list[str]:
    root = os.path.abspath(image_root)
    paths = [_relative_if_under(p, root) for p in images]
    return paths[0] if len(paths) == 1 else paths


def _relative_if_under(path: str, root: str) -> str:
    path = os.path.abspath(path)
    if os.path.commonpath([path, root]) == root:
        return Path(os.path.relpath(path, root)).as_posix()
    return path


def _flat_meta(record: Record) -> dict[str, Any]:
    clash = _RESERVED & set(record.meta)
    if clash:
        raise ValueError(f"record {record.id!r}: meta keys {sorted(clash)} clash with fields")
    return dict(record.meta)


def meta_item(record: Record, image_root: str | os.PathLike) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": record.id,
        "image": image_field(record.images, image_root),
        "problem": record.problem,
        "answer": record.answer,
    }
    if record.cot is not None:
        item["cot"] = record.cot
    item.update(_flat_meta(record))
    return item


def rl_item(record: Record, image_root: str | os.PathLike, extras: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": record.id,
        "image": image_field(record.images, image_root),
        "problem": record.problem,
        "solution": record.answer,
    }
    if extras:
        item.update(_flat_meta(record))
    return item


def sharegpt_item(record: Record, image_root: str | os.PathLike, user: str, assistant: str) -> dict[str, Any]:
    return {
        "id": record.id,
        "image": image_field(record.images, image_root),
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
    }


def cot_target(record: Record) -> str:
    """The COT-SFT assistant turn as Reason-RFT writes it."""
    if record.cot is None:
        raise ValueError(f"record {record.id!r} has no cot")
    return f"<think>\n{record.cot}\n</think>\n<answer>\n{record.answer}\n</answer>"


def write_items(items: Iterable[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write dicts as a JSON list (or JSONL for `.jsonl`), atomically; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    items = list(items)
    if out.suffix == ".jsonl":
        text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    else:
        text = json.dumps(items, ensure_ascii=False, indent=2) + "\n"
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def write_records(
    records: Iterable[Record],
    path: str | os.PathLike,
    fmt: str = "meta",
    image_root: str | os.PathLike | None = None,
    *,
    extras: bool = True,
    user_text: Callable[[Record], str] | None = None,
    assistant_text: Callable[[Record], str] | None = None,
) -> Path:
    """Write records as `meta`, `rl` or `sharegpt` (default roots: the output file's folder).

    ShareGPT needs the two turn builders; without them the user turn is the bare problem and
    the assistant turn the COT-SFT target (or the bare answer when a record has no cot).
    """
    root = image_root if image_root is not None else Path(path).absolute().parent
    if fmt == "meta":
        items = [meta_item(r, root) for r in records]
    elif fmt == "rl":
        items = [rl_item(r, root, extras) for r in records]
    elif fmt == "sharegpt":
        user = user_text or (lambda r: r.problem)
        assistant = assistant_text or (lambda r: cot_target(r) if r.cot is not None else r.answer)
        items = [sharegpt_item(r, root, user(r), assistant(r)) for r in records]
    else:
        raise ValueError(f"fmt must be meta, rl or sharegpt, got {fmt!r}")
    return write_items(items, path)
