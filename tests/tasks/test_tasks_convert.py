"""The Reason-RFT converter CLI: RL and SFT formats, the stage split, and its argument errors."""

from __future__ import annotations

import json

import pytest

from rft.data import load_records, write_records
from rft.tasks import convert


@pytest.fixture
def meta_file(tmp_path, records):
    many = [r.__class__(f"id{i}", r.images, r.problem, r.answer, r.cot or "reasoning", r.meta) for i, r in enumerate(records * 3)]  # 9 records, all with a cot
    return write_records(many, tmp_path / "meta.json", "meta")


class StubTask:
    """Stands in for rft.tasks' task object: the converter only needs these two methods."""

    def user_prompt(self, record, style):
        return f"[{style}] {record.problem}"

    def sft_target(self, record, style):
        if style == "cot_sft":
            return f"<think>\n{record.cot}\n</think>\n<answer>\n{record.answer}\n</answer>"
        return record.answer


@pytest.fixture
def stub_task(monkeypatch):
    seen = []

    def fake_get_task(name):
        seen.append(name)
        return StubTask()

    monkeypatch.setattr(convert, "get_task", fake_get_task)
    return seen


def test_rl_format(tmp_path, meta_file):
    out = tmp_path / "rl.json"
    assert convert.main(["--to", "rl", "--in", str(meta_file), "--out", str(out)]) == 0
    items = json.loads(out.read_text())
    source = json.loads(meta_file.read_text())
    assert [it["id"] for it in items] == [s["id"] for s in source]
    assert [it["image"] for it in items] == [s["image"] for s in source]  # as in the source
    assert [it["solution"] for it in items] == [s["answer"] for s in source]
    assert items[0]["subset"] == "non_choice"  # meta travels with the RL record
    back = load_records(out).records
    assert [r.answer for r in back] == [s["answer"] for s in source]


def test_rl_strict(tmp_path, meta_file):
    out = tmp_path / "rl.json"
    convert.main(["--to", "rl", "--in", str(meta_file), "--out", str(out), "--strict"])
    assert all(set(it) == {"id", "image", "problem", "solution"} for it in json.loads(out.read_text()))


def test_split_first_n_and_rest(tmp_path, meta_file, stub_task):
    a, b = tmp_path / "stage1.json", tmp_path / "stage2.json"
    rc = convert.main(["--in", str(meta_file), "--split-first", "4", "--task", "counting", "--stage1-out", str(a), "--stage2-out", str(b)])
    assert rc == 0 and stub_task == ["counting"]
    s1, s2 = json.loads(a.read_text()), json.loads(b.read_text())
    assert [it["id"] for it in s1] == ["id0", "id1", "id2", "id3"]
    assert [it["id"] for it in s2] == [f"id{i}" for i in range(4, 9)]
    assert s1[0]["messages"][0] == {"role": "user", "content": "[cot_sft] How many objects?"}
    assert s1[0]["messages"][1]["content"].startswith("<think>\nThere are three.")
    assert set(s2[0]) >= {"id", "image", "problem", "solution"}


def test_split_stage2_all(tmp_path, meta_file):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    convert.main(["--in", str(meta_file), "--split-first", "4", "--stage1-format", "rl", "--stage1-out", str(a), "--stage2-out", str(b), "--stage2-all"])
    assert len(json.loads(a.read_text())) == 4 and len(json.loads(b.read_text())) == 9


def test_split_too_large(tmp_path, meta_file, capsys):
    rc = convert.main(
        [
            "--in",
            str(meta_file),
            "--split-first",
            "9",
            "--stage1-format",
            "rl",
            "--stage1-out",
            str(tmp_path / "a.json"),
            "--stage2-out",
            str(tmp_path / "b.json"),
        ]
    )
    assert rc == 1 and "nothing for stage 2" in capsys.readouterr().err


@pytest.mark.parametrize("style", ["ans_sft", "cot_sft"])
def test_sft_formats(tmp_path, meta_file, stub_task, style):
    out = tmp_path / f"{style}.json"
    convert.main(["--to", style, "--in", str(meta_file), "--out", str(out), "--task", "t"])
    items = json.loads(out.read_text())
    assert set(items[0]) == {"id", "image", "messages"}
    assert [m["role"] for m in items[0]["messages"]] == ["user", "assistant"]
    assert items[0]["messages"][0]["content"] == f"[{style}] How many objects?"
    back = load_records(out).records  # ShareGPT reads back: answer and cot recovered
    assert [r.answer for r in back] == [it["answer"] for it in json.loads(meta_file.read_text())]
    if style == "cot_sft":
        assert back[0].cot == "There are three."


def test_sft_needs_a_task(tmp_path, meta_file, capsys):
    rc = convert.main(["--to", "ans_sft", "--in", str(meta_file), "--out", str(tmp_path / "o")])
    assert rc == 1 and "--task" in capsys.readouterr().err


def test_cot_sft_needs_cots(tmp_path, records, stub_task, capsys):
    path = write_records(records, tmp_path / "m.json", "meta")  # r1 has no cot
    rc = convert.main(["--to", "cot_sft", "--in", str(path), "--out", str(tmp_path / "o.json"), "--task", "t"])
    assert rc == 1 and "'r1'" in capsys.readouterr().err


def test_argument_errors(meta_file):
    with pytest.raises(SystemExit):
        convert.main(["--in", str(meta_file)])  # nothing to do
    with pytest.raises(SystemExit):
        convert.main(["--in", str(meta_file), "--split-first", "2"])  # outputs missing


def test_with_the_real_task_registry(tmp_path):
    from rft.data.synth import synth_dataset

    paths = synth_dataset("counting", tmp_path / "syn", n_train=6, n_test=1, seed=0)
    out = tmp_path / "cot.json"
    rc = convert.main(["--to", "cot_sft", "--in", str(paths["train"]), "--out", str(out), "--task", "counting"])
    assert rc == 0
    items = json.loads(out.read_text())
    assert len(items) == 6 and "How many objects" in items[0]["messages"][0]["content"]


def test_paths_relative_to_output(tmp_path, meta_file):
    out = tmp_path / "elsewhere" / "rl.json"
    convert.main(["--to", "rl", "--in", str(meta_file), "--out", str(out), "--paths-relative-to-output"])
    assert len(load_records(out)) == 9  # loads with the default image root


def test_image_root_is_kept_as_in_source(tmp_path, meta_file):
    out = tmp_path / "elsewhere" / "rl.json"
    convert.main(["--to", "rl", "--in", str(meta_file), "--out", str(out)])
    assert json.loads(out.read_text())[0]["image"] == "images/a.png"
    assert len(load_records(out, image_root=meta_file.parent)) == 9
