"""Task registry, prompts of every style, chat messages, SFT targets, reward kwargs, corpus."""

from __future__ import annotations

import dataclasses

import pytest

from rft.data.records import Record
from rft.rewards import REWARD_NAMES, REWARD_RANGES, get_reward
from rft.tasks import TASK_NAMES, PromptStyle, get_task, vocabulary_corpus

THINK = "<think> </think>"
ANSWER = "<answer> </answer>"
ALL_EXAMPLES = [(name, r) for name in TASK_NAMES for r in get_task(name).examples]


def test_registry() -> None:
    assert TASK_NAMES == (
        "counting", "structure", "spatial", "classification", "detection", "grounding"
    )  # fmt: skip
    with pytest.raises(ValueError, match="counting, structure"):
        get_task("countin")
    assert get_task("detection", box_format="abs").box_format == "abs"
    with pytest.raises(ValueError, match="box_format"):
        get_task("grounding", box_format="pixels")


@pytest.mark.parametrize(
    "name,rewards",
    [("counting", {"format", "accuracy"}), ("structure", {"format", "accuracy"}),
     ("spatial", {"format", "spatial"}), ("classification", {"format", "classification"}),
     ("detection", {"format", "iou", "confidence"}), ("grounding", {"format", "giou"})],
)  # fmt: skip
def test_default_rewards(name: str, rewards: set[str]) -> None:
    task_rewards = get_task(name).default_rewards
    assert set(task_rewards) == rewards <= set(REWARD_NAMES)
    assert all(w == 1.0 for w in task_rewards.values())  # the seeds sum them unweighted


@pytest.mark.parametrize("name,record", ALL_EXAMPLES, ids=lambda x: getattr(x, "id", x))
@pytest.mark.parametrize("style", list(PromptStyle))
def test_every_style_renders(name: str, record: Record, style: str) -> None:
    task = get_task(name)
    prompt = task.user_prompt(record, style)
    assert prompt.strip() and "{" not in prompt.replace("{'Position'", "")
    has_tags = THINK in prompt and ANSWER in prompt
    assert has_tags == (style in ("rl", "cot_sft"))
    messages = task.messages(record, style)
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert content[:-1] == [{"type": "image"}] * len(record.images)
    assert content[-1] == {"type": "text", "text": prompt}


def record(problem: str, answer: str = "3", **meta) -> Record:
    return Record(id="r", images=["a.png"], problem=problem, answer=answer, meta=meta)


def test_counting_rl_prompt_is_the_seeds() -> None:
    prompt = get_task("counting").user_prompt(record("How many objects are there?"), "rl")
    assert prompt == ("How many objects are there? Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags.")


def test_structure_prompts_follow_the_subset() -> None:
    task = get_task("structure")
    choice = record("Find x.\nA. 1\nB. 2\nC. 3\nD. 4", "B", subset="choice")
    assert task.user_prompt(choice, "rl") == (
        "Find x.\nA. 1\nB. 2\nC. 3\nD. 4 Please select the correct answer by writing the letter "
        "(A, B, C or D) that precedes your choice.\nOutput the thinking process in <think> "
        "</think> and final answer (chosen letter) in <answer> </answer> tags."
    )
    number = record("Find the area.", "12.5", subset="non_choice")
    assert task.user_prompt(number, "rl") == (
        "Find the area. Output the thinking process in <think> </think> and final answer (float number or int number) in <answer> </answer> tags."
    )
    assert task.subset_of(record("Find x.", "C")) == "choice"  # the seeds' rule without meta
    assert task.subset_of(record("Find x.", "12")) == "non_choice"
    assert "(chosen letter)" in task.user_prompt(choice, "ans_sft")


def test_spatial_prompt_holds_the_rules() -> None:
    task = get_task("spatial")
    example = task.examples[0]
    for style in PromptStyle:
        prompt = task.user_prompt(example, style)
        assert "('object_id', 'shape', 'size', 'color', 'material')" in prompt
        assert "change_position: front, behind, left, right, front_left, front_right" in prompt
        for word in ("change_size", "change_color", "change_material", "change_shape", "purple"):
            assert word in prompt
        assert example.problem in prompt
    assert len(task.messages(example, "rl")[0]["content"]) == 3  # two images and the text


def test_classification_prompt() -> None:
    task = get_task("classification")
    flower = record("", "daisy", kind="flower", classes=["daisy", "rose"])
    prompt = task.user_prompt(flower, "rl")
    assert prompt.startswith("This is an image containing a flower. Please identify the species of the flower")
    assert prompt.endswith("<answer>species name</answer>") and "daisy" not in prompt
    car = record("", "Audi A4", kind="car")
    assert "identify the model of the car" in task.user_prompt(car, "zero_shot")
    listed = get_task("classification", list_classes=True).user_prompt(flower, "rl")
    assert "Choose one of: daisy, rose." in listed


def test_detection_and_grounding_prompts() -> None:
    det = record("", "No Objects", category="dog", image_size=[640, 480])
    prompt = get_task("detection").user_prompt(det, "rl")
    assert prompt.startswith(
        "Detect all objects belonging to the category 'dog' in the image, and provide the "
        "bounding boxes (between 0 and 1000, integer) and confidence (between 0 and 1, with two "
        "decimal places). If no object belonging to the category 'dog'"
    )
    assert "return 'No Objects'. Output the thinking process in <think> </think>" in prompt
    assert "in pixels" in get_task("detection", box_format="abs").user_prompt(det, "rl")
    ground = record("the red mug", "(1,2),(3,4)", image_size=[640, 480])
    assert '"the red mug"' in get_task("grounding").user_prompt(ground, "ans_sft")


@pytest.mark.parametrize("style", list(PromptStyle))
def test_full_prompt_records_are_not_wrapped(style: str) -> None:
    full = record("<whole prompt from the data set>", full_prompt=True, category="dog")
    for name in TASK_NAMES:
        assert get_task(name).user_prompt(full, style) == "<whole prompt from the data set>"


def test_sft_targets() -> None:
    task = get_task("counting")
    example = dataclasses.replace(task.examples[0], cot="  three things  ")
    assert task.sft_target(example, "ans_sft") == "3"
    assert task.sft_target(example, "cot_sft") == ("<think>\nthree things\n</think>\n<answer>\n3\n</answer>")
    with pytest.raises(ValueError, match="no chain of thought"):
        task.sft_target(dataclasses.replace(example, cot=None), "cot_sft")
    with pytest.raises(ValueError, match="SFT"):
        task.sft_target(example, "rl")
    with pytest.raises(ValueError, match="prompt style"):
        task.user_prompt(example, "cot")


@pytest.mark.parametrize("name,record", ALL_EXAMPLES, ids=lambda x: getattr(x, "id", x))
def test_cot_target_earns_every_default_reward_in_full(name: str, record: Record) -> None:
    task = get_task(name)
    completion = task.sft_target(record, "cot_sft")
    kwargs = task.reward_kwargs([record])
    for reward in task.default_rewards:
        assert get_reward(reward)([completion], [record.answer], **kwargs) == [REWARD_RANGES[reward][1]]
    assert task.parse_answer(completion) is not None


def test_parse_answer() -> None:
    assert get_task("counting").parse_answer("<think>x</think><answer> 3 </answer>") == "3"
    assert get_task("counting").parse_answer("  ") is None
    spatial = get_task("spatial")
    assert spatial.parse_answer("<answer>change_color(1, red), change_color(1, red)</answer>") == ("change_color(1, 'red')")
    assert spatial.parse_answer("<answer>no idea</answer>") is None
    detection = get_task("detection")
    assert detection.parse_answer("<answer>No Objects</answer>") == "No Objects"
    assert detection.parse_answer("<answer>a dog</answer>") is None
    assert get_task("grounding").parse_answer("<answer>(1,2),(3,4)</answer>") == "(1,2),(3,4)"
    assert get_task("grounding").parse_answer("<answer>left</answer>") is None


def test_reward_kwargs() -> None:
    records = [record("", category="dog", image_size=[640, 480])] * 2
    assert get_task("counting").reward_kwargs(records) == {}
    assert get_task("detection").reward_kwargs(records) == {
        "box_format": ["norm1000", "norm1000"],
        "image_size": [(640, 480), (640, 480)],
    }
    seen = get_task("grounding", box_format="abs").reward_kwargs(records, [(320, 240)] * 2)
    assert seen == {"box_format": ["abs", "abs"], "image_size": [(320, 240), (320, 240)]}


def test_vocabulary_corpus() -> None:
    corpus = vocabulary_corpus()
    text = "\n".join(corpus)
    for word in ("<think>", "</answer>", "No Objects", "change_position", "'Position'",
                 "(x1,y1),(x2,y2)", "species", "chosen letter", "How many"):  # fmt: skip
        assert word in text
    assert all(isinstance(t, str) and t for t in corpus)
    assert get_task("spatial").vocabulary()[0] in corpus
