"""What every task provides: prompts per style, SFT targets, answer parsing, rewards, scores.

Styles: `rl` (GRPO; also Reason-RFT-Zero), `cot_sft`, `ans_sft`, `zero_shot`. The `rl` prompt
is the seeds' (question, then "Output the thinking process in <think> </think> and final answer
(…) in <answer> </answer> tags."); `cot_sft` and `ans_sft` put an instruction before the question,
as Reason-RFT's `PROMPT_xxx + problem` does: COT asks for reasoning in `<think> </think>` and the
answer in `<answer> </answer>`, ANS for the answer alone; `zero_shot` is the plain question asking
for the answer. Records flagged `meta["full_prompt"]` (Visual-RFT data sets) already hold the whole
prompt in `problem` and are used as they are, whatever the style.

A task scores its evaluation on the 0–100 scale the papers report. Subclasses set `name`,
`default_rewards`, `answer_hint` and `examples`, and override `question`, `item_score` or
`evaluate` where the task differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from rft.data.records import Record
from rft.rewards.common import answer_span


class PromptStyle(StrEnum):
    """The one vocabulary of prompts a model sees, in training and in evaluation (the config's
    `sft.prompt` and `eval.prompt` take these values; `rft.tasks.prompting.prompt_style` picks one
    for a stage). A `StrEnum`, so a member equals and formats as its plain string."""

    rl = "rl"
    cot_sft = "cot_sft"
    ans_sft = "ans_sft"
    zero_shot = "zero_shot"


# The styles with an SFT target (the assistant turn SFT trains on).
SFT_STYLES: tuple[PromptStyle, ...] = (PromptStyle.cot_sft, PromptStyle.ans_sft)


@dataclass
class EvalResult:
    """An evaluation: `score` in 0–100, per-item scores in [0, 1], and per-subset breakdowns."""

    score: float
    n: int
    n_unparsed: int
    per_item: list[float]
    parsed: list[str | None]
    subsets: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def final_answer(hint: str) -> str:
    """`final answer (number)`, or `final answer` without a hint."""
    return f"final answer {hint}" if hint else "final answer"


def think_instruction(hint: str) -> str:
    return f"Output the thinking process in <think> </think> and {final_answer(hint)} in <answer> </answer> tags."


def cot_sft_target(cot: str, answer: str) -> str:
    return f"<think>\n{cot}\n</think>\n<answer>\n{answer}\n</answer>"


def check_style(style: str) -> PromptStyle:
    """`style` as a PromptStyle; ValueError naming the valid styles otherwise."""
    try:
        return PromptStyle(style)
    except ValueError:
        raise ValueError(f"unknown prompt style {style!r}; valid styles: {', '.join(PromptStyle)}") from None


def summarize(per_item: list[float], parsed: list[str | None]) -> dict[str, float]:
    n = len(per_item)
    return {
        "score": 100.0 * sum(per_item) / n if n else 0.0,
        "n": n,
        "n_unparsed": sum(p is None for p in parsed),
    }


class Task:
    """A task's prompt templates, answer parsing, reward set and evaluation score."""

    name: ClassVar[str] = ""
    default_rewards: ClassVar[dict[str, float]] = {}
    answer_hint: ClassVar[str] = ""
    examples: ClassVar[tuple[Record, ...]] = ()

    # ---- prompts -------------------------------------------------------------------------

    def question(self, record: Record) -> str:
        """The task's question for `record`, before any style's instruction."""
        return record.problem.strip()

    def hint(self, record: Record) -> str:
        """What kind of answer to write, e.g. "(number)"."""
        return self.answer_hint

    def user_prompt(self, record: Record, style: PromptStyle = PromptStyle.rl) -> str:
        style = check_style(style)
        if record.meta.get("full_prompt"):
            return record.problem
        return getattr(self, f"{style}_prompt")(record)

    def rl_prompt(self, record: Record) -> str:
        return f"{self.question(record)} {think_instruction(self.hint(record))}"

    def cot_sft_prompt(self, record: Record) -> str:
        answer = final_answer(self.hint(record))
        lead = (
            f"Think about the question step by step. Write your reasoning inside <think> </think> tags, then write the {answer} inside <answer> </answer> tags."
        )
        return f"{lead}\n{self.question(record)}"

    def ans_sft_prompt(self, record: Record) -> str:
        lead = f"Answer the question with the {final_answer(self.hint(record))} only, without any "
        return f"{lead}explanation.\n{self.question(record)}"

    def zero_shot_prompt(self, record: Record) -> str:
        return f"{self.question(record)}\nGive the {final_answer(self.hint(record))}."

    def messages(self, record: Record, style: PromptStyle = PromptStyle.rl) -> list[dict[str, Any]]:
        """The user turn in the HF multimodal chat format, one image slot per image."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in record.images]
        content.append({"type": "text", "text": self.user_prompt(record, style)})
        return [{"role": "user", "content": content}]

    def sft_target(self, record: Record, style: PromptStyle) -> str:
        """The assistant turn an SFT style trains on."""
        style = check_style(style)
        if style == "ans_sft":
            return record.answer
        if style == "cot_sft":
            if not record.cot:
                raise ValueError(f"record {record.id!r} has no chain of thought for cot_sft")
            return cot_sft_target(record.cot.strip(), record.answer)
        raise ValueError(f"style {style!r} has no SFT target; SFT styles: {', '.join(SFT_STYLES)}")

    # ---- answers, rewards, evaluation ----------------------------------------------------

    def parse_answer(self, completion: str) -> str | None:
        """The answer of a completion (its `<answer>` span, else all of it), None if empty."""
        span = answer_span(completion)
        text = (completion if span is None else span).strip()
        return text or None

    def reward_kwargs(self, records: Sequence[Record], image_sizes: Sequence[Sequence[int]] | None = None) -> dict[str, list[Any]]:
        """Per-sample keyword arguments for this task's rewards, one entry per record.

        `image_sizes` are the `(w, h)` of the images as the model saw them (after resizing);
        only tasks whose answers are boxes use them. Repeat entries for G samples per record.
        """
        return {}

    def item_score(self, parsed: str | None, record: Record, **kw: Any) -> float:
        """One item's evaluation score in [0, 1]."""
        raise NotImplementedError

    def subset_of(self, record: Record) -> str | None:
        return record.meta.get("subset")

    def evaluate(self, completions: Sequence[str], records: Sequence[Record], **kw: Any) -> EvalResult:
        """Scores completions (aligned with `records`) on the papers' 0–100 scale.

        Keyword arguments go to `item_score` (`numeric_equivalence`, `math_verify`, …); unknown
        ones are ignored, so the per-item extras the rewards got can be passed as they are.
        """
        check_aligned(completions, records)
        parsed = [self.parse_answer(c) for c in completions]
        per_item = [self.item_score(p, r, **kw) for p, r in zip(parsed, records)]
        return EvalResult(
            **summarize(per_item, parsed),
            per_item=per_item,
            parsed=parsed,
            subsets=self.subset_scores(per_item, parsed, records),
        )

    def subset_scores(self, per_item: list[float], parsed: list[str | None], records: Sequence[Record]) -> dict[str, dict[str, float]]:
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            subset = self.subset_of(record)
            if subset is not None:
                groups.setdefault(subset, []).append(i)
        return {name: summarize([per_item[i] for i in idx], [parsed[i] for i in idx]) for name, idx in sorted(groups.items())}

    # ---- tokenizer corpus ----------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        """Representative texts of this task: prompts of every style, targets, answers."""
        texts: list[str] = []
        for record in self.examples:
            texts.extend(self.user_prompt(record, style) for style in PromptStyle)
            texts.append(record.answer)
            texts.append(self.sft_target(record, "ans_sft"))
            texts.append(cot_sft_target(record.cot or "Let me look at the image.", record.answer))
        return texts


def check_aligned(completions: Sequence[Any], records: Sequence[Record]) -> None:
    if len(completions) != len(records):
        raise ValueError(f"{len(completions)} completions for {len(records)} records")
