"""Evaluation scores, hand-computed: accuracy-style tasks, spatial partial credit, COCO mAP, IoU."""

from __future__ import annotations

import pytest

from rft.data.records import Record
from rft.tasks import TASK_NAMES, get_task


def rec(answer: str, i: int = 0, images: list[str] | None = None, **meta) -> Record:
    images = images or [f"img{i}.png"]
    return Record(id=f"r{i}", images=images, problem="q", answer=answer, meta=meta)


def tagged(answer: str) -> str:
    return f"<think>...</think><answer>{answer}</answer>"


def test_counting_exact_then_math_verify() -> None:
    records = [rec(a, i) for i, a in enumerate(["3", "3", "5", "5", "3"])]
    completions = [tagged("3"), tagged("4"), "5", "", tagged("3.0")]
    result = get_task("counting").evaluate(completions, records)
    assert result.per_item == [1.0, 0.0, 1.0, 0.0, 1.0]  # 3.0 == 3 by math-verify
    assert (result.score, result.n, result.n_unparsed) == (60.0, 5, 1)
    assert result.parsed == ["3", "4", "5", None, "3.0"]
    assert get_task("counting").evaluate(completions, records, math_verify=False).score == 40.0


def test_structure_scores_per_subset() -> None:
    records = [
        rec("A", 0, subset="choice"),
        rec("B", 1, subset="choice"),
        rec("10", 2, subset="non_choice"),
        rec("2.5", 3),  # no meta: a number makes it non-choice
    ]
    completions = [tagged("A"), tagged("C"), tagged("10"), tagged("5/2")]
    result = get_task("structure").evaluate(completions, records)
    assert result.per_item == [1.0, 0.0, 1.0, 1.0]
    assert result.score == 75.0
    assert result.subsets == {
        "choice": {"score": 50.0, "n": 2, "n_unparsed": 0},
        "non_choice": {"score": 100.0, "n": 2, "n_unparsed": 0},
    }


def test_spatial_partial_credit_score() -> None:
    truth = "change_color(1, 'red'), change_position(0, 'front')"
    records = [rec(truth, 0), rec(truth, 1), rec(truth, 2)]
    completions = [
        tagged(truth),
        tagged("change_color(1, 'blue'), change_position(0, 'front')"),  # 0.75
        tagged("nothing"),
    ]
    result = get_task("spatial").evaluate(completions, records)
    assert result.per_item == [1.0, 0.75, 0.0]
    assert result.score == pytest.approx(175 / 3)
    assert result.n_unparsed == 1


def test_classification_accuracy() -> None:
    records = [rec("sunflower", 0), rec("daisy", 1), rec("rose", 2), rec("tulip", 3)]
    completions = [tagged("Sunflower"), tagged("rose"), tagged(""), "tulip"]
    result = get_task("classification").evaluate(completions, records)
    assert result.per_item == [1.0, 0.0, 0.0, 1.0]
    assert (result.score, result.n_unparsed) == (50.0, 1)


def boxes(*items: tuple[list[int], float]) -> str:
    return "[" + ", ".join(f"{{'Position': {b}, 'Confidence': {c}}}" for b, c in items) + "]"


def detection_records(size: list[int]) -> list[Record]:
    return [
        rec(boxes(([0, 0, 100, 100], 1)), 0, category="cat", image_size=size),
        rec(boxes(([500, 500, 600, 600], 1)), 1, category="cat", image_size=size),
    ]


@pytest.mark.parametrize("size", [[1000, 1000], [640, 480]])
def test_detection_map_hand_computed(size: list[int]) -> None:
    task = get_task("detection")
    records = detection_records(size)
    perfect = [tagged(boxes(([0, 0, 100, 100], 0.9))), tagged(boxes(([500, 500, 600, 600], 0.8)))]
    assert task.evaluate(perfect, records).score == pytest.approx(100.0)
    # A true positive ranked above a false positive: precision 1 up to recall 0.5, so 51 of the
    # 101 recall points score 1, at every IoU threshold.
    tp_first = [tagged(boxes(([0, 0, 100, 100], 0.9))), tagged(boxes(([0, 0, 50, 50], 0.8)))]
    result = task.evaluate(tp_first, records)
    assert result.score == pytest.approx(100 * 51 / 101)
    assert result.subsets == {"cat": {"score": pytest.approx(100 * 51 / 101), "n": 2,
                                      "n_unparsed": 0}}  # fmt: skip
    assert result.per_item == [1.0, 0.0]
    # The false positive ranked first: precision 0.5 up to recall 0.5.
    fp_first = [tagged(boxes(([0, 0, 100, 100], 0.5))), tagged(boxes(([0, 0, 50, 50], 0.8)))]
    assert task.evaluate(fp_first, records).score == pytest.approx(100 * 0.5 * 51 / 101)


def test_detection_map_averages_classes_and_handles_empty_answers() -> None:
    task = get_task("detection")
    image = ["shared.png"]  # two categories asked of one image share one COCO image
    records = [
        rec(boxes(([0, 0, 100, 100], 1)), 0, images=image, category="cat", image_size=[800, 600]),
        rec(boxes(([300, 300, 500, 500], 1)), 1, images=image, category="dog",
            image_size=[800, 600]),
        rec("No Objects", 2, category="dog", image_size=[800, 600]),
    ]  # fmt: skip
    completions = [tagged(boxes(([0, 0, 100, 100], 0.9))), tagged("No Objects"), "gibberish"]
    result = task.evaluate(completions, records)
    assert result.score == pytest.approx(50.0)  # cat AP 100, dog AP 0
    assert result.subsets["cat"]["score"] == pytest.approx(100.0)
    assert result.subsets["dog"] == {"score": 0.0, "n": 2, "n_unparsed": 1}
    assert task.evaluate(["", "", ""], records).score == 0.0
    with_extra_class = task.evaluate(completions, records, classes=["cat", "dog", "bird"])
    assert with_extra_class.score == pytest.approx(50.0)  # a class without ground truth is skipped


def test_detection_abs_boxes_in_evaluation() -> None:
    task = get_task("detection", box_format="abs")
    records = detection_records([640, 480])
    seen = [(320, 240), (2000, 1000)]  # the resized images the model saw
    completions = [tagged(boxes(([0, 0, 32, 24], 0.9))), tagged(boxes(([1000, 500, 1200, 600], 1)))]
    assert task.evaluate(completions, records, image_size=seen).score == pytest.approx(100.0)
    # the same extras the rewards take, from a task built with the default format
    extras = get_task("detection").reward_kwargs(records, seen)
    extras["box_format"] = ["abs", "abs"]
    assert get_task("detection").evaluate(completions, records, **extras).score == pytest.approx(100.0)
    assert task.evaluate(completions, records).score < 100.0  # original sizes: wrong frame
    with pytest.raises(ValueError, match="image_size"):
        task.evaluate(completions, records, image_size=[(320, 240)])


def test_grounding_mean_iou() -> None:
    records = [rec("(0,0),(100,100)", i, image_size=[640, 480]) for i in range(4)]
    completions = [tagged("(0,0),(100,100)"), tagged("(0,0),(100,50)"), tagged("left"), ""]
    result = get_task("grounding").evaluate(completions, records)
    assert result.per_item == [1.0, 0.5, 0.0, 0.0]
    assert (result.score, result.n_unparsed) == (37.5, 2)
    pixels = [tagged("(0,0),(64,48)")] * 4  # pixels of the 640 x 480 image seen
    assert get_task("grounding").evaluate(pixels, records, box_format="abs", image_size=(640, 480)).score == pytest.approx(100.0)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_sft_targets_score_100(name: str) -> None:
    task = get_task(name)
    records = list(task.examples)
    for style in ("cot_sft", "ans_sft"):
        result = task.evaluate([task.sft_target(r, style) for r in records], records)
        assert result.score == pytest.approx(100.0) and result.n_unparsed == 0
    with pytest.raises(ValueError, match="completions"):
        task.evaluate([], records)
