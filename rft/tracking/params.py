"""Turning configs and metrics into what each tracking backend accepts.

- `flatten_config`: nested config (dict / OmegaConf / dataclass) -> {"a.b.c": "value"} strings.
- `mlflow_key`: a metric or param name mlflow will accept (it allows letters, digits, `_ - . : /`
  and spaces, rejects names that are not normalised paths such as `a//b` or `/a`, and caps keys at
  250 characters).
- `to_number`: a metric value as a float (tensors and numpy scalars included), or None.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

MLFLOW_MAX_KEY = 250
MLFLOW_MAX_PARAM_VALUE = 6000
_MLFLOW_BAD_CHARS = re.compile(r"[^\w.\- :/]")


def to_plain(config: Any) -> Any:
    """OmegaConf containers and dataclasses to plain dicts/lists; anything else unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(config, DictConfig | ListConfig):
            return OmegaConf.to_container(config, resolve=True)
    except ImportError:  # omegaconf is a project dependency; keep tracking usable without it
        pass
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def flatten_config(config: Any, sep: str = ".") -> dict[str, str]:
    """Dotted keys to string values. Lists are kept whole as JSON (`[1, 2]`), None as "None"."""
    out: dict[str, str] = {}
    _flatten(to_plain(config) or {}, "", sep, out)
    return out


def _flatten(node: Any, prefix: str, sep: str, out: dict[str, str]) -> None:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            _flatten(to_plain(value), f"{prefix}{sep}{key}" if prefix else str(key), sep, out)
    elif prefix:
        out[prefix] = _stringify(node)


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence | Mapping):
        try:
            return json.dumps(to_plain(value), default=str)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def mlflow_key(name: str) -> str:
    """Sanitise a metric/param name for mlflow: bad characters become `_`, slashes are normalised."""
    key = _MLFLOW_BAD_CHARS.sub("_", str(name))
    key = re.sub(r"/+", "/", key).strip("/")
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in key.split("/")]
    key = "/".join(parts) or "_"
    return key[:MLFLOW_MAX_KEY]


def truncate_value(value: str, limit: int = MLFLOW_MAX_PARAM_VALUE) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def to_number(value: Any) -> float | None:
    """A float for numeric metric values (bool, int, float, 0-dim tensors/arrays), else None."""
    if isinstance(value, bool | int | float):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            out = item()
        except (ValueError, RuntimeError):  # not a single element
            return None
        return float(out) if isinstance(out, bool | int | float) else None
    return None
