"""The neutral records that cross package boundaries: prompts, sampling settings, completions,
train samples.

A `PromptItem` is built once per dataset record by the controller (the task's prompt template
rendered through the model's chat template); a `Completion` is one sample for it, carrying the
engine's token ids, text and sampling log-probs, and the weight version it was generated with; a
`TrainSample` pairs a prompt with one completion and what the learner needs to score or train on
it. Rollout, learner, trainer and eval all import these from here, so none of them imports
another for a record type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Placeholders that only the processor may put in a sequence: a sampled `<|image_pad|>` would
# make the learner look for image features that do not exist ("image features and image tokens
# do not match"), so engines never sample these.
VISION_SPECIAL_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def vision_token_ids(tokenizer) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(tok) for tok in VISION_SPECIAL_TOKENS]
    unk = getattr(tokenizer, "unk_token_id", None)
    return [i for i in ids if i is not None and i != unk and i >= 0]


@dataclass
class PromptItem:
    uid: str  # the dataset record id
    group: int  # index of this prompt within the step; its G completions share it
    prompt_text: str  # chat template applied, generation prompt appended
    images: list[str]  # absolute image paths, in the order of the prompt's image slots
    solution: str = ""  # the reference answer, for rewards
    reward_kwargs: dict[str, Any] = field(default_factory=dict)  # per-item extras (box format, sizes)


@dataclass
class SamplingSettings:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 64
    seed: int | None = None
    greedy: bool = False


@dataclass
class Completion:
    group: int
    sample: int
    token_ids: list[int]
    text: str
    logprobs: list[float]  # sampling log-prob of each generated token
    finish_reason: str  # "stop" | "length"
    weight_version: int = 0
    prompt_token_ids: list[int] = field(default_factory=list)
    rewards: dict[str, float] = field(default_factory=dict)  # filled by the rollout worker


@dataclass
class TrainSample:
    prompt: PromptItem
    completion_ids: list[int]
    advantage: float = 0.0
    old_logprobs: list[float] | None = None
    ref_logprobs: list[float] | None = None
    rollout_logprobs: list[float] | None = None  # the engine's, of the sampled tokens
