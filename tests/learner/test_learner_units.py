"""The learner's pure pieces without DeepSpeed: rank shards and the rank merge, the micro-batch
merge, the token-budget split, `collate`, and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch

from rft.learner.batch import PromptFeatures, collate, split_by_token_budget
from rft.learner.group import merge_rank_metrics, shard_bounds
from rft.learner.worker import _lr_lambda
from rft.tracking.stats import LEARNER_STATS, Reduce, merge_stats, reduce_of, timer
from rft.types import PromptItem, TrainSample


def _sample(completion: list[int], group: int = 0) -> TrainSample:
    return TrainSample(PromptItem(uid=f"r{group}", group=group, prompt_text="p", images=[]), completion)


def _features(prompt_ids: list[int], image: bool = False) -> PromptFeatures:
    n = len(prompt_ids)
    return PromptFeatures(
        input_ids=torch.tensor(prompt_ids),
        mm_token_type_ids=torch.tensor([1 if image and i == 1 else 0 for i in range(n)], dtype=torch.int32),
        position_ids=torch.arange(n).expand(3, -1),
        pixel_values=torch.ones(4, 6) if image else None,
        image_grid_thw=torch.tensor([[1, 2, 2]]) if image else None,
    )


def test_shard_bounds_cover_every_sample_once_in_order():
    assert shard_bounds(5, 2) == [(0, 2), (2, 5)]
    assert shard_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError, match="3 samples cannot be shared by 4"):
        shard_bounds(3, 4)


def test_rank_merge_sums_losses_weights_means_by_tokens_and_takes_flags_max():
    rank0 = {"loss": 0.25, "pg_loss": 0.5, "tokens": 30.0, "kl": 0.1, "grad_norm": 2.0, "lr": 1e-6, "skipped_update": 0.0, "update_s": 3.0, "ratio_max": 1.5}
    rank1 = {"loss": 0.75, "pg_loss": -0.25, "tokens": 10.0, "kl": 0.5, "grad_norm": 2.0, "lr": 1e-6, "skipped_update": 1.0, "update_s": 4.0, "ratio_max": 1.2}
    merged = merge_rank_metrics([rank0, rank1])
    assert merged["loss"] == 1.0 and merged["pg_loss"] == 0.25 and merged["tokens"] == 40.0
    assert merged["kl"] == pytest.approx((0.1 * 30 + 0.5 * 10) / 40)
    assert (merged["grad_norm"], merged["skipped_update"], merged["update_s"], merged["ratio_max"]) == (2.0, 1.0, 4.0, 1.5)
    assert list(merged) == list(rank0)


def test_micro_batch_merge_matches_one_batch_of_all_tokens():
    """Two micro-batches (per-token means of their own tokens) merge into the mean over all tokens."""
    per_token_kl = [0.2] * 3 + [0.8] * 1
    parts = [{"kl": sum(per_token_kl[:3]) / 3, "tokens": 3.0, "loss": 0.1}, {"kl": per_token_kl[3], "tokens": 1.0, "loss": 0.3}]
    merged = merge_stats(parts)
    assert merged["kl"] == pytest.approx(sum(per_token_kl) / 4)
    assert merged["loss"] == pytest.approx(0.4) and merged["tokens"] == 4.0


def test_merge_kinds_and_edge_cases():
    assert reduce_of("entropy") is Reduce.TOKEN_MEAN and LEARNER_STATS["grad_norm"] is Reduce.FIRST
    assert merge_stats([]) == {}
    assert merge_stats([{"kl": 0.5, "tokens": 0.0}]) == {"kl": 0.0, "tokens": 0.0}  # no tokens: no weight
    assert merge_stats([{"tokens": 2.0}, {"kl": 0.5, "tokens": 2.0}])["kl"] == 0.5  # only partials that have it
    assert merge_stats([{"x": 1.0}, {"x": 3.0}], {"x": Reduce.MAX}) == {"x": 3.0}


def test_timer_measures_the_block_even_when_it_raises():
    with timer() as t:
        sum(range(1000))
    assert t.seconds > 0
    with pytest.raises(KeyError), timer() as failed:
        raise KeyError("x")
    assert failed.seconds > 0


def test_token_budget_split_keeps_order_and_rows_times_longest_under_budget():
    samples = [_sample([1])] * 6
    assert split_by_token_budget(samples, [4, 4, 4, 8, 2, 2], 12) == [[0, 1, 2], [3], [4, 5]]
    assert split_by_token_budget(samples[:2], [20, 3], 10) == [[0], [1]]  # longer than the budget: alone
    assert split_by_token_budget([], [], 10) == []
    for budget in (8, 16, 24):
        for batch in split_by_token_budget(samples, [4, 4, 4, 8, 2, 2], budget):
            lengths = [[4, 4, 4, 8, 2, 2][i] for i in batch]
            assert len(batch) == 1 or len(batch) * max(lengths) <= budget


def test_collate_pads_right_continues_positions_and_masks_placeholders():
    a, b = _sample([7, 8, 9]), _sample([5])
    fa, fb = _features([1, 2]), _features([3, 4, 6, 6], image=True)
    batch = collate([a, b], [fa, fb], pad_id=0, placeholder_ids=frozenset({9}))
    assert batch.input_ids.tolist() == [[1, 2, 7, 8, 0], [3, 4, 6, 6, 5]]  # placeholder 9 fed as padding
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert batch.completion_ids.tolist() == [[7, 8, 9], [5, 0, 0]]
    assert batch.completion_mask.tolist() == [[1, 1, 0], [1, 0, 0]]
    assert batch.completion_start == [2, 4]
    assert batch.position_ids[0].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert batch.mm_token_type_ids.tolist() == [[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]
    assert batch.pixel_values.shape == (4, 6) and batch.image_grid_thw.tolist() == [[1, 2, 2]]
    logits = torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1)
    picked = batch.completion_logits(logits)[:, :, 0]
    assert picked.shape == (2, 3) and picked[0].tolist() == [1, 2, 3] and picked[1, :1].tolist() == [8]  # past a row's end: masked


def test_collate_without_images_has_no_pixel_inputs():
    batch = collate([_sample([4, 4])], [_features([1])], pad_id=3)
    assert batch.pixel_values is None and "pixel_values" not in batch.model_inputs()
    assert batch.input_ids.tolist() == [[1, 4, 4]]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("constant", [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("linear", [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]),
        ("cosine", [0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0]),
    ],
)
def test_lr_schedule_warms_up_then_decays_to_the_last_step(kind, expected):
    factor = _lr_lambda(kind, warmup=2, total=6)
    assert [factor(step) for step in range(7)] == pytest.approx(expected)
    assert factor(10) == pytest.approx(expected[-1])  # past the end: stays at the final value
