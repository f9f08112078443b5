"""The one prompt-style resolver: which prompt a model sees per stage, in training and in eval."""

import pytest
from rft_test_helpers import compose

from rft.data.records import Record
from rft.tasks import PromptStyle, get_task
from rft.tasks.prompting import Purpose, prompt_style

TRAIN_AND_EVAL_AUTO = [
    ("ans_sft", PromptStyle.ans_sft),
    ("cot_sft", PromptStyle.rl),  # sft.prompt=rl by default: COT-SFT trains on the RL prompt
    ("rl", PromptStyle.rl),
    ("zero", PromptStyle.rl),
    ("reason_rft", PromptStyle.rl),
]


@pytest.mark.parametrize("stage, style", TRAIN_AND_EVAL_AUTO)
@pytest.mark.parametrize("purpose", list(Purpose))
def test_defaults_train_and_evaluate_on_the_same_prompt(stage, style, purpose):
    cfg = compose([f"stage={stage}"])
    assert prompt_style(stage, purpose, cfg) is style


def test_sft_prompt_chooses_the_cot_sft_prompt_and_eval_follows():
    cfg = compose(["stage=cot_sft", "sft.prompt=cot_sft"])
    assert prompt_style("cot_sft", Purpose.train, cfg) is PromptStyle.cot_sft
    assert prompt_style("cot_sft", Purpose.eval, cfg) is PromptStyle.cot_sft
    assert prompt_style("ans_sft", Purpose.train, cfg) is PromptStyle.ans_sft, "ANS-SFT keeps its own prompt"


@pytest.mark.parametrize("style", list(PromptStyle))
def test_eval_prompt_overrides_the_stage_for_eval_only(style):
    cfg = compose(["stage=ans_sft", f"eval.prompt={style}"])
    assert prompt_style("ans_sft", Purpose.eval, cfg) is style
    assert prompt_style("ans_sft", Purpose.train, cfg) is PromptStyle.ans_sft


def test_every_style_is_a_task_prompt_and_unknown_styles_name_the_valid_ones():
    task = get_task("counting")
    record = Record(id="r", images=[], problem="How many circles?", answer="2", cot="two")
    prompts = {style: task.user_prompt(record, style) for style in PromptStyle}
    assert len(set(prompts.values())) == len(PromptStyle), "each style is its own wording"
    assert prompts[PromptStyle.rl] == task.user_prompt(record, "rl"), "a plain string is the same style"
    with pytest.raises(ValueError, match="zero_shot"):
        task.user_prompt(record, "cot")
