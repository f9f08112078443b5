"""Turning prompts and completions into model inputs, once per prompt, in token-budget micro-batches.

A `TrainSample` is one sequence to score or train on: a prompt (shared by the G completions of
its group) and the completion's token ids, with its advantage and, when needed, old and
reference log-probs. The learner computes each prompt's processor outputs (`input_ids`,
`pixel_values`, `image_grid_thw`, `mm_token_type_ids`) and M-RoPE position ids once and reuses
them for every completion of the group; completion tokens are text, so their positions simply
continue after the prompt's largest position in all three rotary sections.

Shared prefix (`learner.shared_prefix`, on by default): the completions of one prompt are packed
into ONE row, `[prompt][completion 1][completion 2]...`, so the prompt (most of each sequence,
the image tokens included) and the vision tower run once per group instead of G times. A 4D
attention mask lets each completion see the prompt and its own earlier tokens only, and each
completion's positions restart right after the prompt, so every completion token is scored
exactly as in its own row (the plain layout, one row per completion). A group longer than the
token budget is cut into chunks, each repeating the prompt. Everything after the model's LM head
stays per sample: `MicroBatch.logit_positions` with `rows` says where each sample's logits are.
The shared prefix needs a mask the attention kernel takes as given (sdpa, eager); with
flash_attention_2 the learner uses plain rows. Packed rows also carry their `PrefixLayout`, with
which `rft.models.prefix_attention` skips the scores the mask would hide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rft.data.images import open_images
from rft.models.heads import gather_positions
from rft.models.prefix_attention import LAYOUT_KEY, PrefixLayout
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
    """Model inputs for packed rows (B rows, length L) and the N samples they hold (in order).
    Plain layout: one sample per row, a (B, L) padding mask. Shared prefix: a row holds one
    prompt and the completions of several samples, with a (B, 1, L, L) boolean mask."""

    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L), or (B, 1, L, L) bool (True: attend) when packed
    position_ids: torch.Tensor  # (3, B, L)
    mm_token_type_ids: torch.Tensor  # (B, L)
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    completion_ids: torch.Tensor  # (N, T), padded with 0
    completion_mask: torch.Tensor  # (N, T)
    completion_start: list[int]  # index of each sample's first completion token in its row
    samples: list[TrainSample]
    rows: torch.Tensor | None = None  # (N,): the row holding each sample; None: sample i in row i
    prompt_length: list[int] | None = None  # per sample: its prompt's length (the prompt starts each row)
    layout: PrefixLayout | None = None  # packed rows: where prompt and completions sit (rft.models.prefix_attention)

    def model_inputs(self, additive_mask: torch.dtype | None = None) -> dict:
        """The forward's keyword arguments. `additive_mask`: give a packed mask as 0 / dtype-min
        floats (eager attention adds the mask to the scores; sdpa takes the boolean one)."""
        mask = self.attention_mask
        if additive_mask is not None and mask.dim() == 4:
            mask = torch.zeros(mask.shape, dtype=additive_mask).masked_fill(~mask, torch.finfo(additive_mask).min)
        inputs = dict(
            input_ids=self.input_ids,
            attention_mask=mask,
            position_ids=self.position_ids,
            mm_token_type_ids=self.mm_token_type_ids,
        )
        if self.pixel_values is not None:
            inputs.update(pixel_values=self.pixel_values, image_grid_thw=self.image_grid_thw)
        if self.layout is not None:  # read by the shared-prefix attention only; other kernels use the mask
            inputs[LAYOUT_KEY] = self.layout
        return inputs

    def sample_rows(self) -> torch.Tensor:
        """(N,): the row of each sample."""
        return torch.arange(len(self.samples)) if self.rows is None else self.rows

    def logit_positions(self) -> torch.Tensor:
        """(N, T): the position in its row whose output predicts each completion token. The first
        token is predicted by the prompt's last position, the others by the token before them in
        the sample's own segment. Past a sample's own completion (padding up to T) the index
        stays inside the row; those entries are masked out by `completion_mask`."""
        width = self.completion_ids.shape[1]
        starts = torch.tensor(self.completion_start, dtype=torch.long).unsqueeze(1)
        prompts = torch.tensor(self.prompt_length or self.completion_start, dtype=torch.long).unsqueeze(1)
        steps = torch.arange(width)
        positions = torch.where(steps == 0, prompts - 1, starts - 1 + steps)
        return positions.clamp(max=self.input_ids.shape[1] - 1)

    def completion_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, T, V) from full-sequence logits (B, L, V): the logits that predict each completion
        token. The learner avoids full logits (`rft.models.heads.head_at`); tests compare the two."""
        return gather_positions(logits, self.logit_positions(), self.sample_rows())

    def per_token(self, values: list[list[float]] | None) -> torch.Tensor | None:
        if values is None:
            return None
        out = torch.zeros(self.completion_ids.shape, dtype=torch.float32)
        for row, seq in enumerate(values):
            out[row, : len(seq)] = torch.tensor(seq, dtype=torch.float32)
        return out


def sequence_length(features: PromptFeatures, sample: TrainSample) -> int:
    return len(features.input_ids) + len(sample.completion_ids)


def packed_length(features: PromptFeatures, samples: list[TrainSample]) -> int:
    """Length of one packed row: the prompt once, then every completion."""
    return len(features.input_ids) + sum(len(s.completion_ids) for s in samples)


def split_by_token_budget(samples: list, lengths: list[int], budget: int) -> list[list[int]]:
    """Indices of samples (or packed rows) per micro-batch, in order, so that rows × longest row
    <= budget (a single one longer than the budget gets a micro-batch of its own)."""
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


def prompt_runs(samples: list[TrainSample]) -> list[list[int]]:
    """Indices of samples in runs of consecutive samples with the same prompt (a group's
    completions arrive together; a group broken up by the rank sharding gives two runs)."""
    runs: list[list[int]] = []
    for index, sample in enumerate(samples):
        key = (sample.prompt.uid, sample.prompt.group)
        if runs and (samples[runs[-1][0]].prompt.uid, samples[runs[-1][0]].prompt.group) == key:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def pack_groups(samples: list[TrainSample], features: list[PromptFeatures], budget: int) -> list[list[int]]:
    """Indices of samples per packed row, in order: each run of one prompt's completions, cut
    into chunks (each repeating the prompt) where prompt + completions would exceed `budget`."""
    rows: list[list[int]] = []
    for run in prompt_runs(samples):
        prompt = len(features[run[0]].input_ids)
        current: list[int] = []
        length = prompt
        for index in run:
            n = len(samples[index].completion_ids)
            if current and length + n > budget:
                rows.append(current)
                current, length = [], prompt
            current.append(index)
            length += n
        rows.append(current)
    return rows


def micro_batch_rows(samples: list[TrainSample], features: list[PromptFeatures], budget: int, shared_prefix: bool) -> list[list[list[int]]]:
    """The micro-batches for `samples`, in order: each a list of rows, each row a list of sample
    indices (one per row without the shared prefix), rows × longest row <= `budget` tokens."""
    rows = pack_groups(samples, features, budget) if shared_prefix else [[i] for i in range(len(samples))]
    lengths = [packed_length(features[row[0]], [samples[i] for i in row]) for row in rows]
    return [[rows[r] for r in batch] for batch in split_by_token_budget(rows, lengths, budget)]


def collate(samples: list[TrainSample], features: list[PromptFeatures], pad_id: int, placeholder_ids: frozenset[int] = frozenset()) -> MicroBatch:
    """Right-padded model inputs for `samples`, one row each (the plain layout)."""
    return collate_rows([[s] for s in samples], features, pad_id, placeholder_ids, shared_prefix=False)


def collate_rows(
    rows: list[list[TrainSample]],
    features: list[PromptFeatures],
    pad_id: int,
    placeholder_ids: frozenset[int] = frozenset(),
    shared_prefix: bool = True,
) -> MicroBatch:
    """Right-padded model inputs, one row per entry of `rows`: its prompt (`features`, one per
    row) followed by the completions of its samples. `shared_prefix=False` needs one sample per
    row and gives a plain padding mask; so do rows that each hold one sample anyway (an SFT
    batch, a group of one), where the segment mask would only cost time. Completion tokens that are image/video placeholders
    (engines never sample them, but a completion from elsewhere might hold one) are fed as
    padding and left out of the loss, or the model would look for image features."""
    if not shared_prefix and any(len(row) != 1 for row in rows):
        raise ValueError("plain rows hold one sample each; several samples in a row need the shared-prefix mask")
    packed = any(len(row) > 1 for row in rows)
    samples = [s for row in rows for s in row]
    width = max(packed_length(f, row) for f, row in zip(features, rows))
    comp_width = max(1, max(len(s.completion_ids) for s in samples))
    count = len(rows)
    input_ids = torch.full((count, width), pad_id, dtype=torch.long)
    segments = torch.full((count, width), -1, dtype=torch.long)  # -1 padding, 0 prompt, i completion i
    positions = torch.zeros((3, count, width), dtype=torch.long)
    mm = torch.zeros((count, width), dtype=torch.int32)
    comp_ids = torch.zeros((len(samples), comp_width), dtype=torch.long)
    comp_mask = torch.zeros((len(samples), comp_width), dtype=torch.float32)
    sample_rows, starts, prompt_lengths = [], [], []
    row_prompts, row_segments = [], []
    pixel_values, grids = [], []
    for row, (samples_in_row, feat) in enumerate(zip(rows, features)):
        p = len(feat.input_ids)
        row_prompts.append(p)
        row_segments.append([])
        input_ids[row, :p] = feat.input_ids
        segments[row, :p] = 0
        mm[row, :p] = feat.mm_token_type_ids
        positions[:, row, :p] = feat.position_ids
        offset = p
        for segment, sample in enumerate(samples_in_row, start=1):
            index = len(starts)
            c = torch.tensor(sample.completion_ids, dtype=torch.long)
            n = len(c)
            placeholder = torch.tensor([int(t) in placeholder_ids for t in sample.completion_ids], dtype=torch.bool)
            input_ids[row, offset : offset + n] = c.masked_fill(placeholder, pad_id)
            segments[row, offset : offset + n] = segment
            positions[:, row, offset : offset + n] = feat.position_ids.max() + 1 + torch.arange(n)
            comp_ids[index, :n] = c
            comp_mask[index, :n] = (~placeholder).float()
            sample_rows.append(row)
            starts.append(offset)
            prompt_lengths.append(p)
            row_segments[-1].append((offset, n))
            offset += n
        if feat.pixel_values is not None:
            pixel_values.append(feat.pixel_values)
            grids.append(feat.image_grid_thw)
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=shared_prefix_mask(segments) if packed else (segments >= 0).long(),
        position_ids=positions,
        mm_token_type_ids=mm,
        pixel_values=torch.cat(pixel_values) if pixel_values else None,
        image_grid_thw=torch.cat(grids) if grids else None,
        completion_ids=comp_ids,
        completion_mask=comp_mask,
        completion_start=starts,
        samples=samples,
        rows=torch.tensor(sample_rows, dtype=torch.long) if packed else None,
        prompt_length=prompt_lengths,
        layout=PrefixLayout(width, row_prompts, row_segments) if packed else None,
    )


def shared_prefix_mask(segments: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) boolean mask from segment ids (B, L) (-1 padding, 0 prompt, i >= 1 completion
    i): a query sees an earlier-or-same key that is in the prompt or in the query's own segment.
    Padding queries see at least themselves (a fully masked row gives NaN in sdpa)."""
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    visible = causal & (key >= 0) & ((key == 0) | (key == query))
    return (visible | torch.eye(length, dtype=torch.bool)).unsqueeze(1)
