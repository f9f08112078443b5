"""Turning prompts and completions into model inputs, once per prompt, in token-budget micro-batches.

A `TrainSample` is one sequence to score or train on: a prompt (shared by the G completions of
its group) and the completion's token ids, with its advantage and, when needed, old and
reference log-probs. The learner computes each prompt's processor outputs (`input_ids`,
`pixel_values`, `image_grid_thw`, `mm_token_type_ids`) and M-RoPE position ids once and reuses
them for every completion of the group; completion tokens are text, so their positions simply
continue after the prompt's largest position in all three rotary sections.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rft.data.images import open_images
from rft.models.heads import gather_positions
from rft.types import PromptItem, TrainSample


@dataclass
class PromptFeatures:
    input_ids: torch.Tensor  # (P,)
    mm_token_type_ids: torch.Tensor  # (P,)
    position_ids: torch.Tensor  # (3, P)
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None


class FeatureCache:
    """Processor outputs and M-RoPE positions per prompt, computed once per step."""

    def __init__(self, processor, model):
        self.processor = processor
        self.model = model
        self._cache: dict[tuple[str, int], PromptFeatures] = {}

    def clear(self) -> None:
        self._cache.clear()

    def get(self, prompt: PromptItem) -> PromptFeatures:
        key = (prompt.uid, prompt.group)
        if key not in self._cache:
            self._cache[key] = self._build(prompt)
        return self._cache[key]

    def _build(self, prompt: PromptItem) -> PromptFeatures:
        images = open_images(prompt.images) or None
        out = self.processor(text=[prompt.prompt_text], images=images, return_tensors="pt")
        input_ids = out["input_ids"][0]
        mm = out.get("mm_token_type_ids")
        mm = torch.zeros_like(input_ids, dtype=torch.int32) if mm is None else mm[0]
        grid = out.get("image_grid_thw")
        if grid is not None:
            rope_model = getattr(self.model, "model", self.model)
            positions, _ = rope_model.get_rope_index(input_ids[None], mm_token_type_ids=mm[None], image_grid_thw=grid)
            positions = positions[:, 0]
        else:
            positions = torch.arange(len(input_ids)).expand(3, -1)
        return PromptFeatures(input_ids, mm, positions, out.get("pixel_values"), grid)


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (3, B, L)
    mm_token_type_ids: torch.Tensor  # (B, L)
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    completion_ids: torch.Tensor  # (B, T), padded with 0
    completion_mask: torch.Tensor  # (B, T)
    completion_start: list[int]  # index of each row's first completion token
    samples: list[TrainSample]

    def model_inputs(self) -> dict:
        inputs = dict(
            input_ids=self.input_ids,
            attention_mask=self.attention_mask,
            position_ids=self.position_ids,
            mm_token_type_ids=self.mm_token_type_ids,
        )
        if self.pixel_values is not None:
            inputs.update(pixel_values=self.pixel_values, image_grid_thw=self.image_grid_thw)
        return inputs

    def logit_positions(self) -> torch.Tensor:
        """(B, T): the position whose output predicts each completion token (the one before it).
        Past a row's own completion (padding up to T) the index stays inside the sequence; those
        entries are masked out by `completion_mask`."""
        width = self.completion_ids.shape[1]
        starts = torch.tensor(self.completion_start, dtype=torch.long).unsqueeze(1)
        return (starts - 1 + torch.arange(width)).clamp(max=self.input_ids.shape[1] - 1)

    def completion_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, T, V) from full-sequence logits (B, L, V): the logits that predict each completion
        token. The learner avoids full logits (`rft.models.heads.head_at`); tests compare the two."""
        return gather_positions(logits, self.logit_positions())

    def per_token(self, values: list[list[float]] | None) -> torch.Tensor | None:
        if values is None:
            return None
        out = torch.zeros(self.completion_ids.shape, dtype=torch.float32)
        for row, seq in enumerate(values):
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.float32)
        return out


def sequence_length(features: PromptFeatures, sample: TrainSample) -> int:
    return len(features.input_ids) + len(sample.completion_ids)


def split_by_token_budget(samples: list[TrainSample], lengths: list[int], budget: int) -> list[list[int]]:
    """Indices of samples per micro-batch, in order, so that rows × longest row <= budget
    (a single sample longer than the budget gets a micro-batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index, length in enumerate(lengths):
        if current and max(longest, length) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def collate(samples: list[TrainSample], features: list[PromptFeatures], pad_id: int, placeholder_ids: frozenset[int] = frozenset()) -> MicroBatch:
    """Right-padded model inputs for `samples`. Completion tokens that are image/video
    placeholders (engines never sample them, but a completion from elsewhere might hold one)
    are fed as padding and left out of the loss, or the model would look for image features."""
    lengths = [sequence_length(f, s) for f, s in zip(features, samples)]
    width = max(lengths)
    comp_width = max(1, max(len(s.completion_ids) for s in samples))
    rows = len(samples)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    attention = torch.zeros((rows, width), dtype=torch.long)
    positions = torch.zeros((3, rows, width), dtype=torch.long)
    mm = torch.zeros((rows, width), dtype=torch.int32)
    comp_ids = torch.zeros((rows, comp_width), dtype=torch.long)
    comp_mask = torch.zeros((rows, comp_width), dtype=torch.float32)
    starts = []
    pixel_values, grids = [], []
    for row, (sample, feat) in enumerate(zip(samples, features)):
        p = len(feat.input_ids)
        c = torch.tensor(sample.completion_ids, dtype=torch.long)
        n = len(c)
        input_ids[row, :p] = feat.input_ids
        placeholder = torch.tensor([int(t) in placeholder_ids for t in sample.completion_ids], dtype=torch.bool)
        input_ids[row, p : p + n] = c.masked_fill(placeholder, pad_id)
        attention[row, : p + n] = 1
        mm[row, :p] = feat.mm_token_type_ids
        positions[:, row, :p] = feat.position_ids
        positions[:, row, p : p + n] = feat.position_ids.max() + 1 + torch.arange(n)
        comp_ids[row, :n] = c
        comp_mask[row, :n] = (~placeholder).float()
        starts.append(p)
        if feat.pixel_values is not None:
            pixel_values.append(feat.pixel_values)
            grids.append(feat.image_grid_thw)
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=positions,
        mm_token_type_ids=mm,
        pixel_values=torch.cat(pixel_values) if pixel_values else None,
        image_grid_thw=torch.cat(grids) if grids else None,
        completion_ids=comp_ids,
        completion_mask=comp_mask,
        completion_start=starts,
        samples=samples,
    )
