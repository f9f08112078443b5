"""Synthetic data sets: every task loads through the reader, answers follow the task conventions,
builds are byte-for-byte deterministic, and the cache is built once and atomically."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rft.data import load_records
from rft.data.synth import TASKS, ensure_synth, spatial, synth_dataset

N_TRAIN, N_TEST, SIZE = 8, 6, 64


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("synth")
    return {t: synth_dataset(t, root / t, N_TRAIN, N_TEST, seed=3, image_size=SIZE) for t in TASKS}


def _load(paths: dict[str, Path]):
    return {split: load_records(path, max_bad_fraction=0.0).records for split, path in paths.items()}


@pytest.mark.parametrize("task", TASKS)
def test_every_split_loads_with_the_right_images(built, task):
    splits = _load(built[task])
    expected = {"train", "test_id", "test_ood"}
    if task == "spatial":
        expected.add("test_ood_right")
    assert set(splits) == expected
    for split, recs in splits.items():
        assert len(recs) == (N_TRAIN if split == "train" else N_TEST)
        assert len({r.id for r in recs}) == len(recs)
        for r in recs:
            assert len(r.images) == (2 if task == "spatial" else 1)
            assert all(Path(p).is_file() for p in r.images)
            assert r.cot and r.problem and r.answer


def test_counting_conventions(built):
    splits = _load(built["counting"])
    for split, recs in splits.items():
        for r in recs:
            n = int(r.answer)
            assert r.answer == str(n)
            assert r.problem == "How many objects are there in the image?"
            assert r.cot.count("There is a") == n
            assert r.cot.endswith(f"In total there {'is' if n == 1 else 'are'} {n} object{'' if n == 1 else 's'}.")
            if split == "test_ood":
                assert 7 <= n <= 10
                assert re.search(r"\b(star|hexagon|orange|cyan)\b", r.cot)
            else:
                assert 1 <= n <= 6
                assert not re.search(r"\b(star|hexagon|orange|cyan)\b", r.cot)


def test_counting_parameters(tmp_path):
    paths = synth_dataset("counting", tmp_path, 6, 1, seed=0, image_size=48, min_objects=2, max_objects=3, shapes=["circle"], colors=["red"])
    recs = load_records(paths["train"]).records
    assert {r.answer for r in recs} <= {"2", "3"}
    assert all(set(re.findall(r"(\w+) (\w+)(?= (?:at|on|in) the)", r.cot)) <= {("red", "circle")} for r in recs)
    with pytest.raises(TypeError, match="unknown options"):
        synth_dataset("counting", tmp_path, 1, 1, max_objets=3)


def test_structure_conventions(built):
    kinds = {}
    for split, recs in _load(built["structure"]).items():
        for r in recs:
            kinds.setdefault(split, set()).add(r.meta["kind"])
            if r.meta["subset"] == "choice":
                assert r.answer in "ABCD" and len(r.answer) == 1
                options = re.findall(r"^([ABCD])\. (\S+)$", r.problem, re.M)
                assert [o[0] for o in options] == list("ABCD")
                assert len({o[1] for o in options}) == 4
            else:
                assert r.meta["subset"] == "non_choice"
                assert re.fullmatch(r"\d+(\.\d+)?", r.answer)
                assert r.answer in r.cot
    assert kinds["test_ood"].isdisjoint(kinds["train"] | kinds["test_id"])


_CALL = re.compile(r"(\w+)\((\d+), '(\w+)'\)")


def test_spatial_conventions(built):
    splits = _load(built["spatial"])
    assert {r.meta["view"] for r in splits["test_ood"]} == {"left"}
    assert {r.meta["view"] for r in splits["test_ood_right"]} == {"right"}
    for recs in splits.values():
        for r in recs:
            head, question = r.problem.split("\n")
            assert question == "What transformations turn the first image into the second?"
            objects = ast.literal_eval("[" + head.removeprefix("Initial objects: ") + "]")
            assert [o[0] for o in objects] == [str(i) for i in range(len(objects))]
            calls = _CALL.findall(r.answer)
            assert ", ".join(f"{f}({i}, '{v}')" for f, i, v in calls) == r.answer
            assert 1 <= len(calls) <= 4
            for func, obj, value in calls:
                assert value in spatial.VALUES[func] and int(obj) < len(objects)
            assert len({(f, i) for f, i, _ in calls}) == len(calls)


def test_spatial_views_render_the_same_scene_differently():
    from rft.data.synth.core import example_rng

    opts = dict(spatial.DEFAULTS)
    objects = None
    for index in range(20):
        objects = spatial._initial_scene(example_rng(0, "spatial", "train", index), opts)
        if objects:
            break
    views = {v: spatial._render(objects, v, SIZE, opts).tobytes() for v in ("center", "left", "right")}
    assert len(set(views.values())) == 3


def test_classification_conventions(built):
    splits = _load(built["classification"])
    for recs in splits.values():
        for i, r in enumerate(recs):
            assert r.meta["kind"] == "flower"
            classes = r.meta["classes"]
            assert r.answer == classes[i % len(classes)]  # balanced: shots per class
            assert all(c in r.problem for c in classes)


def test_detection_conventions(built):
    item = re.compile(r"\{'Position': \[(\d+), (\d+), (\d+), (\d+)\], 'Confidence': 1\}")
    splits = _load(built["detection"])
    for recs in splits.values():
        for r in recs:
            cat = r.meta["category"]
            assert r.problem == cat and r.meta["image_size"] == [SIZE, SIZE]
            truth = [b["box"] for b in r.meta["all_boxes"] if b["category"] == cat]
            if r.answer == "No Objects":
                assert truth == []
                continue
            boxes = [list(map(int, m)) for m in item.findall(r.answer)]
            assert r.answer == "[" + ", ".join(m.group(0) for m in item.finditer(r.answer)) + "]"
            assert sorted(boxes) == sorted(truth) and boxes
            assert all(0 <= v <= 1000 for b in boxes for v in b)
            assert all(b[0] < b[2] and b[1] < b[3] for b in boxes)
            assert ast.literal_eval(r.answer)[0]["Confidence"] == 1
    novel = {"star", "cross", "hexagon"}
    assert {r.meta["category"] for r in splits["test_ood"]} <= novel
    assert not {r.meta["category"] for r in splits["train"]} & novel


def test_grounding_conventions(built):
    box = re.compile(r"\((\d+),(\d+)\),\((\d+),(\d+)\)")
    for split, recs in _load(built["grounding"]).items():
        for r in recs:
            m = box.fullmatch(r.answer)
            assert m, r.answer
            x1, y1, x2, y2 = map(int, m.groups())
            assert 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000
            assert r.problem.startswith("the ") and r.meta["image_size"] == [SIZE, SIZE]
            if split == "test_ood":
                assert re.search(r"(left of|right of|above|below) the ", r.problem)


# ---------------------------------------------------------------------------------------------
# Determinism and caching


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_bytes_other_seed_differs(tmp_path, task):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        synth_dataset(task, tmp_path / name, 3, 2, seed=seed, image_size=48)
    a, b, c = (_tree_bytes(tmp_path / n) for n in "abc")
    assert a == b
    assert {k: v for k, v in a.items() if k != "info.json"} != {k: v for k, v in c.items() if k != "info.json"}
    assert {k for k in a if k.endswith(".json") and k != "info.json"}


def test_first_examples_do_not_depend_on_n(tmp_path):
    small = synth_dataset("counting", tmp_path / "s", 2, 1, seed=0, image_size=48)
    large = synth_dataset("counting", tmp_path / "l", 5, 1, seed=0, image_size=48)
    assert json.loads(small["train"].read_text()) == json.loads(large["train"].read_text())[:2]


def test_ensure_synth_caches_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RFT_CACHE", str(tmp_path / "cache"))
    first = ensure_synth("counting", n_train=3, n_test=1, image_size=48, max_objects=3)
    assert first.parent == tmp_path / "cache" / "data" and first.name.startswith("counting-")
    stamp = (first / "train.json").stat().st_mtime_ns
    again = ensure_synth("counting", n_train=3, n_test=1, image_size=48, max_objects=3)
    assert again == first and (first / "train.json").stat().st_mtime_ns == stamp
    # Spelling out a default is the same data set; changing a parameter is another.
    assert ensure_synth("counting", n_train=3, n_test=1, image_size=48, max_objects=3, min_objects=1) == first
    other = ensure_synth("counting", n_train=3, n_test=1, image_size=48, max_objects=4)
    assert other != first
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, other.name])


def test_ensure_synth_leaves_nothing_on_failure(tmp_path, monkeypatch):
    from rft.data.synth import core

    def boom(*args, **kwargs):
        raise RuntimeError("crash mid-build")

    monkeypatch.setattr(core, "synth_dataset", boom)
    with pytest.raises(RuntimeError):
        ensure_synth("counting", n_train=2, n_test=1, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_in_another_process_gives_the_same_bytes(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rft.data.synth",
            "grounding",
            "--out",
            str(out),
            "--n",
            "3",
            "--n-test",
            "2",
            "--seed",
            "4",
            "--image-size",
            "48",
            "--opt",
            "relation_fraction=1.0",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    synth_dataset("grounding", tmp_path / "here", 3, 2, seed=4, image_size=48, relation_fraction=1.0)
    assert _tree_bytes(out) == _tree_bytes(tmp_path / "here")
    assert json.loads(proc.stdout)["train"] == str(out / "train.json")
    recs = load_records(out / "train.json").records
    assert len(recs) == 3 and all(" of the " in r.problem or "above the" in r.problem or "below the" in r.problem for r in recs)
    info = json.loads((out / "info.json").read_text())
    assert info["opts"]["relation_fraction"] == 1.0 and info["seed"] == 4
