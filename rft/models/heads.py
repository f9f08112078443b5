"""Run a causal LM's output head on chosen positions only.

    with head_at(model, positions):          # positions: (B, T) indices into the sequence
        logits = model(**inputs).logits      # (B, T, V) instead of (B, L, V)

    with head_at(model, positions, rows):    # rows: (N,) a row per sample; positions: (N, T)
        logits = model(**inputs).logits      # (N, T, V): one entry per sample, not per row

RL scores only the completion, yet a plain forward applies the LM head to every position, prompt
included (most of each sequence: the prompt carries the image tokens). With a real vocabulary
(151k for Qwen2-VL) the head and the log-softmax over its output are a large share of a step's
compute and the largest activation. transformers' `logits_to_keep` cuts the head down to one
index list shared by all rows, which does not fit rows whose prompts differ in length; this
gathers per row instead. With the learner's shared prefix a row holds the completions of several
samples (`rft.learner.batch`); `rows` then names each sample's row, and the head's output is per
sample again, so everything after it (log-probs, entropies, the loss) is the same either way.

How: a forward pre-hook on the model's output embedding (`get_output_embeddings()`, the
`lm_head`) replaces its input, the final hidden states (B, L, H), by their rows at `positions`
(B, T, H), or (N, T, H) with `rows`. The model's own forward runs unchanged, so wrappers around it keep working: DeepSpeed's
engine forward (its autocast and backward hooks), ZeRO-3's parameter gathering (the head is still
called as a submodule, which also keeps tied embeddings right), gradient checkpointing. The hook is
removed when the block ends, also on error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def gather_positions(x: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """x[rows[n], positions[n, t]] for every entry n: (B, L, ...), (N, T) and (N,) -> (N, T, ...).
    Without `rows`, entry n is row n (N = B)."""
    rows = torch.arange(x.shape[0]) if rows is None else rows
    return x[rows.to(x.device).unsqueeze(1), positions.to(x.device)]


@contextmanager
def head_at(model, positions: torch.Tensor, rows: torch.Tensor | None = None) -> Iterator[None]:
    """While open, `model`'s LM head sees only the hidden states at `positions` (N, T) of the
    rows `rows` (N,; default: entry n is row n)."""
    inner = getattr(model, "module", model)  # a DeepSpeed engine holds the model as `.module`
    head = inner.get_output_embeddings()
    if head is None:
        raise AttributeError(f"{type(inner).__name__} has no output embeddings (LM head)")

    def select(_module, args):
        return (gather_positions(args[0], positions, rows), *args[1:])

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()
