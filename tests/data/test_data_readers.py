"""Readers and writers: round trips of every format, bad records counted by reason, DataError."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from rft.data import DataError, load_records, write_records
from rft.data.records import Record


def _without_cot(recs):
    return [dataclasses.replace(r, cot=None) for r in recs]


# ---------------------------------------------------------------------------------------------
# Round trips


def test_meta_json_round_trip(tmp_path, records):
    path = write_records(records, tmp_path / "meta.json", "meta")
    item = json.loads(path.read_text())[1]
    assert item["image"] == ["images/a.png", "images/b.png"]  # relative to the file's folder
    assert json.loads(path.read_text())[0]["image"] == "images/a.png"
    result = load_records(path)
    assert result.records == records
    assert result.skipped == {}


@pytest.mark.parametrize("name", ["rl.json", "rl.jsonl"])
def test_rl_round_trip(tmp_path, records, name):
    path = write_records(records, tmp_path / name, "rl")
    first = json.loads(path.read_text().splitlines()[0]) if name.endswith("jsonl") else (json.loads(path.read_text())[0])
    assert first["solution"] == "3" and "answer" not in first
    assert load_records(path).records == _without_cot(records)  # RL carries no cot


def test_rl_strict_has_exactly_the_reason_rft_keys(tmp_path, records):
    path = write_records(records, tmp_path / "rl.json", "rl", extras=False)
    for item in json.loads(path.read_text()):
        assert set(item) == {"id", "image", "problem", "solution"}


def test_sharegpt_round_trip(tmp_path, records):
    plain = [dataclasses.replace(r, meta={}) for r in records]  # ShareGPT keeps no extras
    path = write_records(plain, tmp_path / "sft.json", "sharegpt")
    items = json.loads(path.read_text())
    assert items[0]["messages"][1]["content"] == ("<think>\nThere are three.\n</think>\n<answer>\n3\n</answer>")
    assert items[1]["messages"][1]["content"] == "change_color(0, 'red')"  # no cot: ANS-SFT
    back = load_records(path).records
    assert [dataclasses.replace(r, meta={}) for r in back] == plain
    assert all(r.meta == {"full_prompt": True} for r in back)


def test_sharegpt_images_key_and_system_turn(files, tmp_path, image_dir):
    item = {
        "id": "s",
        "images": ["images/a.png", "images/b.png"],
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "<image>\n<image>How many?"},
            {"role": "assistant", "content": "<answer> 4 </answer>"},
        ],
    }
    (rec,) = load_records(files.json(image_dir.parent / "s.json", [item])).records
    assert (rec.problem, rec.answer, rec.cot) == ("How many?", "4", None)  # slot markers go
    assert len(rec.images) == 2
    assert rec.meta == {"system": "be brief", "full_prompt": True}


def test_solution_tags_are_stripped_and_unknown_keys_kept(files, tmp_path, image_dir):
    items = [
        {"id": "x", "image": "images/a.png", "problem": "p", "solution": "<answer> 12 </answer>", "cot": "c", "source": "geo3k", "level": 2},
        {"id": "y", "image": "a.png", "problem": "p", "solution": "<think>count them</think><answer>7.5</answer>"},
    ]
    (x,) = load_records(files.json(tmp_path / "m.json", items[:1])).records
    assert (x.answer, x.cot, x.meta) == ("12", "c", {"source": "geo3k", "level": 2})
    (y,) = load_records(files.json(tmp_path / "n.json", items[1:]), image_root=image_dir).records
    assert (y.answer, y.cot) == ("7.5", "count them")
    assert y.images == [str(image_dir / "a.png")]


def test_integer_id_is_its_decimal_string(files, tmp_path, image_dir):
    item = {"id": 17, "image": "images/a.png", "problem": "p", "answer": "3"}
    (rec,) = load_records(files.json(tmp_path / "m.json", [item])).records
    assert rec.id == "17"


# ---------------------------------------------------------------------------------------------
# Bad records


def _bad_fixture(tmp_path: Path, files) -> Path:
    """20 records: 14 good, and one or more of each failure."""
    files.png(tmp_path / "images" / "ok.png")
    files.corrupt_png(tmp_path / "images" / "cut.png")
    (tmp_path / "images" / "junk.png").write_bytes(b"not an image at all")
    good = {"image": "images/ok.png", "problem": "How many?", "answer": "3"}
    items = [{"id": f"g{i}", **good} for i in range(14)]
    items += [
        {"id": "corrupt", **good, "image": "images/cut.png"},  # corrupt_image
        {"id": "junk", **good, "image": "images/junk.png"},  # corrupt_image
        {"id": "gone", **good, "image": "images/missing.png"},  # missing_image
        {"id": "noprob", "image": "images/ok.png", "answer": "3"},  # missing_field
        {"id": "num", **good, "answer": 3},  # wrong_type
        {"id": "g0", **good},  # duplicate_id
    ]
    return files.json(tmp_path / "bad.json", items)


def test_bad_records_are_counted_by_reason(files, tmp_path):
    result = load_records(_bad_fixture(tmp_path, files), max_bad_fraction=0.5)
    assert len(result.records) == 14
    assert result.skipped == {"corrupt_image": 2, "duplicate_id": 1, "missing_field": 1, "missing_image": 1, "wrong_type": 1}
    by_id = {ex.id: (ex.index, ex.reason) for ex in result.bad_examples}
    assert by_id["num"] == (18, "wrong_type")
    assert by_id["gone"] == (16, "missing_image")
    assert result.total == 20


def test_numeric_answer_is_never_coerced(files, tmp_path, image_dir):
    items = [{"id": "a", "image": "images/a.png", "problem": "p", "answer": 3.0}, {"id": "b", "image": "images/a.png", "problem": "p", "answer": "3.0"}]
    result = load_records(files.json(tmp_path / "m.json", items), max_bad_fraction=0.5)
    assert [r.answer for r in result.records] == ["3.0"]
    assert "float" in result.bad_examples[0].detail


@pytest.mark.parametrize(
    "item, reason",
    [
        ({"id": "a", "image": "images/a.png", "problem": "p"}, "missing_field"),
        ({"id": "a", "problem": "p", "answer": "1"}, "missing_field"),
        ({"id": "a", "image": "images/a.png", "problem": "  ", "answer": "1"}, "empty_field"),
        ({"id": "a", "image": 5, "problem": "p", "answer": "1"}, "wrong_type"),
        ({"id": ["a"], "image": "images/a.png", "problem": "p", "answer": "1"}, "wrong_type"),
        ({"id": "a", "image": "images/a.png", "problem": "p", "answer": "1", "cot": 3}, "wrong_type"),
        ({"id": "a", "image": "images/a.png", "problem": "p", "answer": "1", "solution": "<answer>2</answer>"}, "conflicting_fields"),
        ({"id": "a", "image": "images/a.png", "problem": "p", "solution": "<answer>1</answer><answer>2</answer>"}, "malformed_answer"),
        ({"id": "a", "image": "images/a.png", "problem": "p", "solution": "<answer></answer>"}, "empty_field"),
        (["not", "an", "object"], "wrong_type"),
    ],
)
def test_each_reason(files, tmp_path, image_dir, item, reason):
    good = {"id": "ok", "image": "images/a.png", "problem": "p", "answer": "1"}
    result = load_records(files.json(tmp_path / "m.json", [good, item]), max_bad_fraction=1.0)
    assert result.skipped == {reason: 1}
    assert [r.id for r in result.records] == ["ok"]


def test_jsonl_bad_line(tmp_path, image_dir):
    good = json.dumps({"id": "a", "image": "images/a.png", "problem": "p", "solution": "1"})
    path = tmp_path / "rl.jsonl"
    path.write_text(f"{good}\n{{broken\n\n")
    result = load_records(path, max_bad_fraction=1.0)
    assert result.skipped == {"bad_json": 1} and len(result) == 1


def test_threshold_raises_naming_file_and_offenders(files, tmp_path):
    path = _bad_fixture(tmp_path, files)
    with pytest.raises(DataError) as err:
        load_records(path)  # 6 of 20 bad > 5 %
    text = str(err.value)
    assert str(path) in text
    assert "6 of 20" in text
    assert "#14 id='corrupt': corrupt_image" in text
    assert "#16 id='gone': missing_image" in text


def test_under_threshold_logs_a_summary(files, tmp_path, caplog):
    path = _bad_fixture(tmp_path, files)
    with caplog.at_level(logging.WARNING, logger="rft.data.readers"):
        load_records(path, max_bad_fraction=0.5)
    assert "skipped 6" in caplog.text and "corrupt_image=2" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a"}', "expected a JSON list"),
        ("[]", "no records"),
    ],
)
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "f.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_records(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_records(tmp_path / "nope.json")


def test_image_check_modes(files, tmp_path):
    files.corrupt_png(tmp_path / "cut.png")
    items = [{"id": "a", "image": "cut.png", "problem": "p", "answer": "1"}]
    path = files.json(tmp_path / "m.json", items)
    assert load_records(path, max_bad_fraction=1.0).skipped == {"corrupt_image": 1}
    assert len(load_records(path, check_images="exists")) == 1


# ---------------------------------------------------------------------------------------------
# Visual-RFT DatasetDict on disk


def _save_hf(tmp_path: Path, with_ids: bool) -> Path:
    from datasets import Dataset, DatasetDict
    from PIL import Image

    red = Image.new("RGB", (6, 6), (255, 0, 0))
    blue = Image.new("RGB", (6, 6), (0, 0, 255))
    rows = {
        "image": [red, blue, red],
        "problem": ["full prompt 1", "full prompt 2", "p3"],
        "solution": ["<answer>cat</answer>", "<answer>dog</answer>", "<answer>cat</answer>"],
    }
    if with_ids:
        rows["id"] = ["i0", "i1", "i2"]
    test = {k: v[:1] for k, v in rows.items()}
    path = tmp_path / "ViRFT_toy"
    DatasetDict({"train": Dataset.from_dict(rows), "test": Dataset.from_dict(test)}).save_to_disk(str(path))
    return path


def test_hf_dataset_dict(tmp_path):
    path = _save_hf(tmp_path, with_ids=True)
    cache = tmp_path / "cache"
    result = load_records(path, image_cache=cache)
    assert [r.id for r in result] == ["i0", "i1", "i2"]
    assert [r.answer for r in result] == ["cat", "dog", "cat"]
    assert result.records[0].problem == "full prompt 1"
    assert all(r.meta == {"full_prompt": True} for r in result)
    assert result.records[0].images == result.records[2].images  # same pixels: one file
    assert len(list(cache.rglob("*.png"))) == 2
    assert Path(result.records[1].images[0]).read_bytes()[:4] == b"\x89PNG"
    test = load_records(f"{path}:test", image_cache=cache)
    assert [r.id for r in test] == ["i0"]
    assert [r.id for r in load_records(path, split="test", image_cache=cache)] == ["i0"]


def test_hf_dataset_without_ids_and_bad_split(tmp_path):
    path = _save_hf(tmp_path, with_ids=False)
    result = load_records(path, image_cache=tmp_path / "cache")
    assert [r.id for r in result] == ["ViRFT_toy-train-0", "ViRFT_toy-train-1", "ViRFT_toy-train-2"]
    with pytest.raises(DataError, match="no split 'val'"):
        load_records(path, split="val", image_cache=tmp_path / "cache")


def test_hf_corrupt_image_is_counted(files, tmp_path):
    from datasets import Dataset, Features, Value
    from datasets import Image as HFImage

    good = files.png(tmp_path / "g.png").read_bytes()
    features = Features({"image": HFImage(), "problem": Value("string"), "solution": Value("string")})
    ds = Dataset.from_dict(
        {"image": [{"bytes": good, "path": None}, {"bytes": b"garbage", "path": None}], "problem": ["p", "p"], "solution": ["1", "2"]}, features=features
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    result = load_records(tmp_path / "ds", image_cache=tmp_path / "cache", max_bad_fraction=1.0)
    assert result.skipped == {"corrupt_image": 1} and len(result) == 1


def test_records_compare_equal_after_dict_round_trip(records):
    assert [Record(**r.to_dict()) for r in records] == records


def test_rl_layout_in_a_jsonl_file_with_explicit_fmt(tmp_path, records):
    path = write_records(records, tmp_path / "rl.jsonl", "rl")
    assert len(load_records(path, fmt="rl")) == 3


def test_check_cli(files, tmp_path, capsys):
    from rft.data import check

    assert check.main([str(_bad_fixture(tmp_path, files)), "--max-bad-fraction", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"]["corrupt_image"] == 2
    assert check.main([str(tmp_path / "bad.json")]) == 1
    assert "6 of 20 records are bad" in capsys.readouterr().err
