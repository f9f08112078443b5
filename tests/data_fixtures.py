"""Fixtures for the rft.data tests and the converter tests (tests/tasks): tiny images and meta-JSON
files written into tmp_path. Each of those folders' conftest.py re-exports them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from rft.data.records import Record


def write_png(path: Path, color=(200, 30, 30), size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def write_corrupt_png(path: Path) -> Path:
    """A PNG that opens (valid header) but whose pixel data is cut off."""
    write_png(path, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_json(path: Path, items) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items, indent=1))
    return path


@pytest.fixture
def files() -> SimpleNamespace:
    """The writers above, as a fixture (test modules here are not importable as a package)."""
    return SimpleNamespace(png=write_png, corrupt_png=write_corrupt_png, json=write_json)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """tmp_path/images with a.png, b.png, c.png (distinct colours)."""
    for name, color in (("a", (255, 0, 0)), ("b", (0, 255, 0)), ("c", (0, 0, 255))):
        write_png(tmp_path / "images" / f"{name}.png", color)
    return tmp_path / "images"


@pytest.fixture
def records(image_dir: Path) -> list[Record]:
    """Three records covering one and two images, a cot or none, a numeric string and meta."""
    a, b, c = (str(image_dir / f"{n}.png") for n in "abc")
    return [
        Record("r0", [a], "How many objects?", "3", "There are three.", {"subset": "non_choice"}),
        Record("r1", [a, b], "Initial objects: ('0', 'cube')\nWhat changed?", "change_color(0, 'red')", None, {}),
        Record("r2", [c], "Find x.\nA. 3\nB. 5", "3.0", "x is 3.0", {"kind": "rect", "n": 2}),
    ]
