"""Read every data format rft trains or evaluates on into `Record`s, skipping bad records loudly.

Formats (`fmt=`; `auto` picks one from the path and the records' keys):

- `meta`: Reason-RFT meta-JSON, a JSON list of `{id, image, problem, answer|solution, cot}`.
  `image` is a path or list of paths relative to `image_root` (default: the JSON's folder);
  a `solution` in `<answer>…</answer>` tags gives the bare answer; other keys go into `meta`.
- `rl`: the Reason-RFT RL format `{id, image, problem, solution}`: read exactly as `meta`.
- `jsonl`: one record per line, in the `meta`/`rl` layout (or ShareGPT); a `.jsonl` file is
  read this way whatever `fmt` names the layout.
- `sharegpt`: the SFT format `{id, image|images, messages: [user, assistant]}` written by
  `rft.tasks.convert` (or LLaMA-Factory). The user turn becomes `problem` (already the full
  prompt, so `meta["full_prompt"] = True`) without LLaMA-Factory's `<image>` slot markers: rft
  places image slots itself, one per entry of `images`. The assistant turn gives `answer` and,
  from `<think>`, `cot`.
- `hf`: a Visual-RFT `DatasetDict` (or `Dataset`) saved with `save_to_disk`; columns `image`
  (PIL), `problem` (the full prompt: `meta["full_prompt"] = True`) and `solution`. The split is
  chosen by `path:split` or `split=` (default `train`). Images are checked and written once, as
  PNG named by content hash, under `image_cache` (default `rft.paths.data_cache()/hf-images`).
  A dataset with no `id` column gets the documented ids `<folder name>-<split>-<row>`; a row
  whose `id` is null is skipped like any missing field.

A record with a missing or empty field, a wrong type, a missing or undecodable image, an
ambiguous answer, or an id seen before is skipped and counted by reason (see `rft.data.fields`);
a per-reason summary is logged. When the skipped fraction exceeds `max_bad_fraction`, `DataError`
names the file and shows the first offenders (index, id, reason).

Check a file from the shell: `python -m rft.data.check PATH [--image-root DIR] [--split S]`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from PIL import Image

from rft.data import fields as F
from rft.data.records import Record
from rft.errors import UserError

log = logging.getLogger(__name__)


class DataFormat(StrEnum):
    """`data.format` / `fmt=`: the layouts read here (see the module docstring)."""

    auto = "auto"
    meta = "meta"
    rl = "rl"
    jsonl = "jsonl"
    sharegpt = "sharegpt"
    hf = "hf"


FORMATS = tuple(DataFormat)
_META_KEYS = {"id", "image", "images", "problem", "answer", "solution", "cot"}
_SHAREGPT_KEYS = {"id", "image", "images", "messages"}
_IMAGE_MARKER = re.compile(r"<image>\n?")
_SHOWN_OFFENDERS = 5
_KEPT_OFFENDERS = 50


class DataError(UserError, ValueError):
    """A data file cannot be used as a whole (unreadable, or too many bad records)."""


@dataclass(frozen=True)
class BadExample:
    index: int
    id: str | None
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"#{self.index} id={self.id!r}: {self.reason}: {self.detail}"


@dataclass
class LoadResult:
    records: list[Record]
    skipped: dict[str, int] = field(default_factory=dict)
    bad_examples: list[BadExample] = field(default_factory=list)
    source: str = ""

    @property
    def total(self) -> int:
        return len(self.records) + sum(self.skipped.values())

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)


# ---------------------------------------------------------------------------------------------
# Public entry point


def load_records(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    fmt: str = "auto",
    max_bad_fraction: float = 0.05,
    *,
    split: str | None = None,
    check_images: str = "full",
    image_cache: str | os.PathLike | None = None,
) -> LoadResult:
    """Load `path` into records; see the module docstring for formats and the skip rules."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if check_images not in F.IMAGE_CHECKS:
        raise ValueError(f"check_images must be one of {F.IMAGE_CHECKS}, got {check_images!r}")
    path_str, split = _split_suffix(str(path), split)
    src = Path(path_str).expanduser()
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    src = src.absolute()
    if fmt == "auto":
        fmt = _detect_format(src)
    root = str(Path(image_root).expanduser().absolute()) if image_root else str(src.parent)

    if fmt == "hf":
        cache = Path(image_cache) if image_cache else _default_image_cache()
        outcomes = _read_hf(src, split or "train", cache)
        label = f"{src}:{split or 'train'}"
    else:
        if split is not None:
            raise DataError(f"{src}: a split ({split!r}) only applies to saved HF datasets")
        one_per_line = fmt == "jsonl" or src.suffix == ".jsonl"
        items = _read_jsonl(src) if one_per_line else _read_json_list(src)
        force = "sharegpt" if fmt == "sharegpt" else ("meta" if fmt in ("meta", "rl") else None)
        checker = _ImageChecker(check_images)
        outcomes = (_parse_json_item(item, root, checker, force) for item in items)
        label = str(src)
    result = _collect(outcomes, label)
    _report(result, max_bad_fraction)
    return result


# ---------------------------------------------------------------------------------------------
# Sources: each yields, per record, either a Record or a BadField (with the id when known)


def _split_suffix(path: str, split: str | None) -> tuple[str, str | None]:
    """`folder:split` → (folder, split), only when `folder` exists and the whole does not."""
    if os.path.exists(path) or ":" not in path:
        return path, split
    head, tail = path.rsplit(":", 1)
    if os.path.isdir(head) and tail and "/" not in tail:
        if split is not None and split != tail:
            raise DataError(f"{path}: split {tail!r} in the path and split={split!r} differ")
        return head, tail
    return path, split


def _detect_format(src: Path) -> str:
    if src.is_dir():
        if (src / "dataset_dict.json").exists() or (src / "dataset_info.json").exists():
            return "hf"
        raise DataError(f"{src}: a folder but not a saved HF dataset (no dataset_dict.json)")
    if src.suffix == ".jsonl":
        return "jsonl"
    return "json"  # meta, rl or sharegpt: decided per record by its keys


def _read_json_list(src: Path) -> list[Any]:
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{src}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{src}: not UTF-8 text ({exc})") from exc
    if not isinstance(data, list):
        raise DataError(f"{src}: expected a JSON list of records, got {F.type_name(data)}")
    return data


def _read_jsonl(src: Path) -> Iterator[Any]:
    with src.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                yield F.BadField(F.BAD_JSON, f"line {lineno}: {exc}")


def _parse_json_item(item: Any, root: str, checker: _ImageChecker, force: str | None):
    if isinstance(item, F.BadField):
        return item, None
    if not isinstance(item, dict):
        return F.BadField(F.WRONG_TYPE, f"record is {F.type_name(item)}, expected object"), None
    rid = item.get("id") if isinstance(item.get("id"), (str, int)) else None
    kind = force or ("sharegpt" if "messages" in item else "meta")
    try:
        raw_images = F.raw_image_field(item)  # field errors first, image checks (costly) last
        rec = _meta_record(item) if kind == "meta" else _sharegpt_record(item)
        rec.images = checker.resolve_and_check(raw_images, root)
    except F.BadField as bad:
        return bad, rid
    return rec, rec.id


def _meta_record(item: dict) -> Record:
    """A record with every field but `images`, which the caller resolves and checks."""
    rid = F.parse_id(item)
    problem = F.require_str(item, "problem")
    answer, solution_cot = F.parse_answer(item)
    cot = F.optional_str(item, "cot")
    meta = {k: v for k, v in item.items() if k not in _META_KEYS}
    return Record(rid, [], problem, answer, cot if cot is not None else solution_cot, meta)


def _sharegpt_record(item: dict) -> Record:
    rid = F.parse_id(item)
    user, assistant, system = _sharegpt_turns(item.get("messages"))
    answer, cot = F.split_tagged(assistant)
    if not answer:
        raise F.BadField(F.EMPTY_FIELD, "the assistant turn has an empty answer")
    meta = {k: v for k, v in item.items() if k not in _SHAREGPT_KEYS}
    if system is not None:
        meta["system"] = system
    meta["full_prompt"] = True
    return Record(rid, [], _IMAGE_MARKER.sub("", user), answer, cot, meta)


def _sharegpt_turns(messages: Any) -> tuple[str, str, str | None]:
    """(user, assistant, system) contents of a single-turn conversation."""
    if messages is None:
        raise F.BadField(F.MISSING_FIELD, "no 'messages'")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise F.BadField(F.WRONG_TYPE, "'messages' must be a list of objects")
    system = None
    if messages and messages[0].get("role") == "system":
        system = F.require_str(messages[0], "content")
        messages = messages[1:]
    roles = [m.get("role") for m in messages]
    if roles != ["user", "assistant"]:
        raise F.BadField(F.WRONG_TYPE, f"expected one user then one assistant turn, got {roles}")
    return F.require_str(messages[0], "content"), F.require_str(messages[1], "content"), system


def _read_hf(src: Path, split: str, cache: Path):
    from datasets import Dataset, DatasetDict, load_from_disk
    from datasets import Image as HFImage

    try:
        ds = load_from_disk(str(src))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, arrow errors…
        raise DataError(f"{src}: cannot load the saved dataset ({exc})") from exc
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise DataError(f"{src}: no split {split!r}; available: {sorted(ds)}")
        ds = ds[split]
    assert isinstance(ds, Dataset)
    for column, feature in ds.features.items():
        if isinstance(feature, HFImage):  # raw bytes: decoding is ours to check and count
            ds = ds.cast_column(column, HFImage(decode=False))
    has_ids = "id" in ds.column_names
    for index, row in enumerate(ds):
        if not has_ids:
            row["id"] = f"{src.name}-{split}-{index}"
        yield _hf_row(row, cache)


def _hf_row(row: dict, cache: Path):
    rid = row.get("id") if isinstance(row.get("id"), (str, int)) else None
    try:
        images = row.pop("image", None)
        if images is None:
            raise F.BadField(F.MISSING_FIELD, "no 'image'")
        rec = _meta_record(row)
        rec.images = [_cache_hf_image(im, cache) for im in _as_list(images)]
    except F.BadField as bad:
        return bad, rid
    rec.meta["full_prompt"] = True
    return rec, rec.id


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _cache_hf_image(value: Any, cache: Path) -> str:
    """Write one dataset image to the cache as PNG (once, named by content) and return its path."""
    data = _hf_image_bytes(value)
    digest = hashlib.sha256(data).hexdigest()[:24]
    target = cache / digest[:2] / f"{digest}.png"
    if target.exists():
        return str(target)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            png = _to_png_bytes(im, data)
    except Exception as exc:  # any decoder failure means the same thing here
        raise F.BadField(F.CORRUPT_IMAGE, f"dataset image does not decode ({exc})") from exc
    _atomic_write_bytes(target, png)
    return str(target)


def _hf_image_bytes(value: Any) -> bytes:
    if isinstance(value, Image.Image):
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            try:
                return Path(value["path"]).read_bytes()
            except OSError as exc:
                raise F.BadField(F.MISSING_IMAGE, f"{value['path']}: {exc}") from exc
    raise F.BadField(F.WRONG_TYPE, f"image cell is {F.type_name(value)}, expected an image")


def _to_png_bytes(im: Image.Image, original: bytes) -> bytes:
    if im.format == "PNG":
        return original
    if im.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _default_image_cache() -> Path:
    from rft.paths import data_cache

    return data_cache() / "hf-images"


class _ImageChecker:
    """Resolves image paths and checks each distinct file once per load."""

    def __init__(self, mode: str):
        self.mode = mode
        self._seen: dict[str, str | None] = {}

    def resolve_and_check(self, paths: list[str], root: str) -> list[str]:
        resolved = [F.resolve_image(p, root) for p in paths]
        for path in resolved:
            if path not in self._seen:
                self._seen[path] = F.check_image(path, self.mode)
            reason = self._seen[path]
            if reason is not None:
                raise F.BadField(reason, path)
        return resolved


# ---------------------------------------------------------------------------------------------
# Collecting, reporting


def _collect(outcomes: Iterable[tuple[Any, Any]], label: str) -> LoadResult:
    result = LoadResult(records=[], source=label)
    counts: Counter[str] = Counter()
    seen_ids: set[str] = set()
    for index, (outcome, rid) in enumerate(outcomes):
        if isinstance(outcome, Record) and outcome.id in seen_ids:
            outcome = F.BadField(F.DUPLICATE_ID, f"id {outcome.id!r} appeared earlier")
        if isinstance(outcome, F.BadField):
            counts[outcome.reason] += 1
            if len(result.bad_examples) < _KEPT_OFFENDERS:
                shown = None if rid is None else str(rid)
                result.bad_examples.append(BadExample(index, shown, outcome.reason, outcome.detail))
            continue
        seen_ids.add(outcome.id)
        result.records.append(outcome)
    result.skipped = dict(sorted(counts.items()))
    return result


def _report(result: LoadResult, max_bad_fraction: float) -> None:
    total, bad = result.total, sum(result.skipped.values())
    if total == 0:
        raise DataError(f"{result.source}: no records")
    summary = ", ".join(f"{k}={v}" for k, v in result.skipped.items())
    if bad and bad / total > max_bad_fraction:
        shown = "\n".join(f"  {ex}" for ex in result.bad_examples[:_SHOWN_OFFENDERS])
        raise DataError(
            f"{result.source}: {bad} of {total} records are bad "
            f"({bad / total:.1%} > max_bad_fraction {max_bad_fraction:.1%}): {summary}\n"
            f"first offenders:\n{shown}"
        )
    if bad:
        log.warning("%s: loaded %d records, skipped %d (%s)", result.source, len(result), bad, summary)
        for ex in result.bad_examples[:_SHOWN_OFFENDERS]:
            log.warning("  skipped %s", ex)
    else:
        log.info("%s: loaded %d records", result.source, len(result))
