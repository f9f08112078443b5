"""Field-level parsing shared by every reader and writer: answer tags, id and image fields.

Nothing here touches the disk except `check_image`. The rules, in one place:

- An answer may arrive wrapped (`<answer>3</answer>`, possibly after a `<think>…</think>`); the
  bare text inside the tag, stripped of surrounding whitespace, is the `Record.answer`.
- Strings stay strings. A JSON number where a string is required is a `wrong_type` error, never
  converted, because "3.0" and "3" score differently. The one documented exception is the record
  id: a JSON integer id is taken as its decimal string (ids only name records).
- `image` (or `images`, the LLaMA-Factory spelling) is a path or a list of paths relative to the
  image root; absolute paths are kept.
"""

from __future__ import annotations

import os
import re
from typing import Any

from PIL import Image

# Reasons a record is skipped; tests pin these names.
MISSING_FIELD = "missing_field"
EMPTY_FIELD = "empty_field"
WRONG_TYPE = "wrong_type"
MALFORMED_ANSWER = "malformed_answer"
CONFLICTING_FIELDS = "conflicting_fields"
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
BAD_JSON = "bad_json"
DUPLICATE_ID = "duplicate_id"

IMAGE_CHECKS = ("full", "verify", "exists", "none")

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class BadField(Exception):
    """A record cannot be used; carries the skip reason and a human-readable detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def require_str(item: dict, key: str) -> str:
    """The non-empty string under `key`, or BadField."""
    if key not in item or item[key] is None:
        raise BadField(MISSING_FIELD, f"no '{key}'")
    value = item[key]
    if not isinstance(value, str):
        raise BadField(WRONG_TYPE, f"'{key}' is {type_name(value)}, expected str")
    if not value.strip():
        raise BadField(EMPTY_FIELD, f"'{key}' is empty")
    return value


def optional_str(item: dict, key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadField(WRONG_TYPE, f"'{key}' is {type_name(value)}, expected str or null")
    return value


def parse_id(item: dict) -> str:
    """The record id; a JSON integer is accepted as its decimal string (documented above)."""
    value = item.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return require_str(item, "id")


def split_tagged(text: str) -> tuple[str, str | None]:
    """(answer, cot) from a solution or assistant turn.

    With an `<answer>` tag the answer is its stripped content and the cot the stripped content of
    a `<think>` tag, if any; without one the whole text, stripped, is the answer.
    """
    answers = _ANSWER_RE.findall(text)
    if not answers:
        if "<answer>" in text or "</answer>" in text:
            raise BadField(MALFORMED_ANSWER, f"unbalanced <answer> tag in {text[:80]!r}")
        return text.strip(), None
    if len(answers) > 1:
        raise BadField(MALFORMED_ANSWER, f"{len(answers)} <answer> tags in {text[:80]!r}")
    thinks = _THINK_RE.findall(text)
    cot = thinks[0].strip() if len(thinks) == 1 else None
    return answers[0].strip(), cot


def parse_answer(item: dict) -> tuple[str, str | None]:
    """(answer, cot-from-solution) from `answer` and/or `solution`.

    When both are present they must agree after stripping tags, or the record is ambiguous.
    """
    has_answer = item.get("answer") is not None
    has_solution = item.get("solution") is not None
    if not has_answer and not has_solution:
        raise BadField(MISSING_FIELD, "no 'answer' or 'solution'")
    answer, cot = None, None
    if has_solution:
        answer, cot = split_tagged(require_str(item, "solution"))
    if has_answer:
        bare, _ = split_tagged(require_str(item, "answer"))
        if answer is not None and bare != answer:
            raise BadField(CONFLICTING_FIELDS, f"answer {bare!r} != solution {answer!r}")
        answer = bare
    if not answer:
        raise BadField(EMPTY_FIELD, "the answer is empty")
    return answer, cot


def raw_image_field(item: dict) -> list[str]:
    """The image paths as written in the record (`image` or `images`; str or list of str)."""
    if item.get("image") is not None and item.get("images") is not None:
        raise BadField(CONFLICTING_FIELDS, "both 'image' and 'images'")
    key = "image" if item.get("image") is not None else "images"
    value = item.get(key)
    if value is None:
        raise BadField(MISSING_FIELD, "no 'image'")
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BadField(WRONG_TYPE, f"'{key}' is {type_name(value)}, expected str or list of str")
    if not paths or not all(p.strip() for p in paths):
        raise BadField(EMPTY_FIELD, f"'{key}' is empty")
    return paths


def resolve_image(path: str, image_root: str) -> str:
    """Absolute, normalised path; relative paths are taken relative to `image_root`."""
    return os.path.normpath(os.path.join(image_root, os.path.expanduser(path)))


def check_image(path: str, mode: str = "full") -> str | None:
    """None if the image is usable, else the skip reason.

    `full` decodes every pixel (catches truncated files that `verify` lets through), `verify`
    checks the container only, `exists` only the file, `none` nothing.
    """
    if mode == "none":
        return None
    if not os.path.isfile(path):
        return MISSING_IMAGE
    if mode == "exists":
        return None
    try:
        with Image.open(path) as im:
            im.verify()
        if mode == "full":
            with Image.open(path) as im:
                im.load()
    except Exception:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError…
        return CORRUPT_IMAGE
    return None
