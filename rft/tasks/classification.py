"""Fine-grained classification (Visual-RFT: flowers, pets, cars, aircraft; few-shot).

`meta["kind"]` names what the image contains ("flower"), `meta["classes"]` the label set, the
answer is a class name. Cars and aircraft are identified by model, everything else by species.
`list_classes=True` (off by default, not in the seeds) appends the label set to the prompt.
Rewards: format + classification. Score: accuracy (same containment rule as the reward), x100.
"""

from __future__ import annotations

from typing import Any

from rft.data.records import Record
from rft.rewards.classification import class_matches
from rft.tasks.base import Task, think_instruction

MODEL_KINDS = frozenset({"car", "aircraft", "airplane", "plane"})


def label_word(kind: str) -> str:
    return "model" if kind.lower() in MODEL_KINDS else "species"


class ClassificationTask(Task):
    name = "classification"
    default_rewards = {"format": 1.0, "classification": 1.0}
    examples = (
        Record(
            id="classification-example-0",
            images=["classification-0.png"],
            problem="What flower is this?",
            answer="sunflower",
            cot="Large yellow petals around a dark brown centre: a sunflower.",
            meta={"kind": "flower", "classes": ["sunflower", "daisy", "rose"]},
        ),
        Record(
            id="classification-example-1",
            images=["classification-1.png"],
            problem="What aircraft is this?",
            answer="Boeing 747",
            cot="Four engines and a hump on the upper deck: a Boeing 747.",
            meta={"kind": "aircraft", "classes": ["Boeing 747", "Airbus A320"]},
        ),
    )

    def __init__(self, list_classes: bool = False):
        self.list_classes = list_classes

    def question(self, record: Record) -> str:
        kind = record.meta.get("kind")
        if not kind:
            return record.problem.strip()
        word = label_word(kind)
        text = f"This is an image containing a {kind}. Please identify the {word} of the {kind} based on the image."
        classes = record.meta.get("classes")
        if self.list_classes and classes:
            text += f" Choose one of: {', '.join(map(str, classes))}."
        return text

    def hint(self, record: Record) -> str:
        return f"({label_word(record.meta.get('kind', ''))} name)"

    def rl_prompt(self, record: Record) -> str:
        word = label_word(record.meta.get("kind", ""))
        return f"{self.question(record)}\n{think_instruction('')} The output answer format should be: <think> ... </think> <answer>{word} name</answer>"

    def item_score(self, parsed: str | None, record: Record, **kw: Any) -> float:
        return 1.0 if parsed is not None and class_matches(parsed, record.answer) else 0.0
