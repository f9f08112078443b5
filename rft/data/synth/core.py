"""Build, write and cache synthetic data sets; the task generators live in sibling modules.

A generator module defines `DEFAULTS` (its options), `SPLITS` (the files it writes) and
`make(rng, split, index, image_size, opts) -> Example`. This module owns everything else: one random
stream per example (`SeedSequence([seed, task, split, index])`, so the first k examples do not
depend on n and splits are independent), ids `<task>-<split>-<index>`, image files
`images/<split>-<index>[-<k>].png`, the meta-JSON files, and the cache.

Output of `synth_dataset(task, out_dir, …)`: `train.json`, `test_id.json`, `test_ood.json`
(plus task-specific extra splits, e.g. spatial's `test_ood_right.json`), `images/*.png` and
`info.json` (the parameters). Image paths in the JSON are relative to `out_dir`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from rft.data.writers import write_items

TASKS = ("counting", "structure", "spatial", "classification", "detection", "grounding")
# Bump when any generator's output changes, so cached sets are rebuilt.
GENERATOR_VERSION = 1
DEFAULT_IMAGE_SIZE = 112
_SPLIT_CODES = {"train": 0, "test_id": 1, "test_ood": 2, "test_ood_right": 3}


@dataclass
class Example:
    """What a generator returns for one index: images in memory and the record's text fields."""

    images: list[Image.Image]
    problem: str
    answer: str
    cot: str
    meta: dict[str, Any] = field(default_factory=dict)


def generator(task: str):
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; known: {TASKS}")
    return importlib.import_module(f"rft.data.synth.{task}")


def resolve_opts(task: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The task's defaults updated with `opts`; unknown option names are an error."""
    defaults = generator(task).DEFAULTS
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise TypeError(f"{task}: unknown options {unknown}; known: {sorted(defaults)}")
    merged = {**defaults, **opts}
    # Lists and tuples compare and hash alike, whether from Python or the command line.
    return {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}


def example_rng(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    key = [int(seed), zlib.crc32(task.encode()), _SPLIT_CODES[split], int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


def synth_dataset(
    task: str,
    out_dir: str | os.PathLike,
    n_train: int,
    n_test: int,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    **opts: Any,
) -> dict[str, Path]:
    """Write the task's splits under `out_dir` (n_test examples in each test split)."""
    gen = generator(task)
    resolved = resolve_opts(task, opts)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in gen.SPLITS:
        n = n_train if split == "train" else n_test
        items = [
            _write_example(gen, task, split, i, seed, image_size, resolved, out) for i in tqdm(range(n), desc=f"{task}/{split}", disable=n < 500, leave=False)
        ]
        paths[split] = write_items(items, out / f"{split}.json")
    info = {"task": task, "version": GENERATOR_VERSION, "seed": seed, "n_train": n_train, "n_test": n_test, "image_size": image_size, "opts": resolved}
    (out / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return paths


def _write_example(gen, task, split, index, seed, image_size, opts, out: Path) -> dict[str, Any]:
    ex: Example = gen.make(example_rng(seed, task, split, index), split, index, image_size, opts)
    stem = f"{split}-{index:05d}"
    names = [f"images/{stem}.png"] if len(ex.images) == 1 else [f"images/{stem}-{k}.png" for k in range(len(ex.images))]
    for name, image in zip(names, ex.images):
        image.save(out / name, format="PNG")
    item = {"id": f"{task}-{stem}", "image": names[0] if len(names) == 1 else names, "problem": ex.problem, "answer": ex.answer, "cot": ex.cot}
    item.update(ex.meta)
    return item


def params_key(task: str, n_train: int, n_test: int, seed: int, image_size: int, opts: dict[str, Any]) -> str:
    blob = json.dumps(
        {"task": task, "version": GENERATOR_VERSION, "n_train": n_train, "n_test": n_test, "seed": seed, "image_size": image_size, "opts": opts}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_synth(
    task: str,
    *,
    n_train: int = 1000,
    n_test: int = 200,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    root: str | os.PathLike | None = None,
    **opts: Any,
) -> Path:
    """The folder of a cached synthetic set with these parameters, built on first use.

    Lives at `<root or rft.paths.data_cache()>/<task>-<hash of the parameters>/`. It is built in
    a temporary folder and renamed into place, so a crash never leaves a half-written set and a
    concurrent builder's finished copy wins.
    """
    resolved = resolve_opts(task, opts)
    base = Path(root) if root is not None else _data_cache()
    final = base / f"{task}-{params_key(task, n_train, n_test, seed, image_size, resolved)}"
    if final.is_dir():
        return final
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=base))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is for everyone who shares it
    try:
        synth_dataset(task, tmp, n_train, n_test, seed, image_size, **resolved)
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():  # not a lost race: a real failure
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _data_cache() -> Path:
    from rft.paths import data_cache

    return data_cache()
