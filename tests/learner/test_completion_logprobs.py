"""The LM head on completion positions only (`rft.models.heads.head_at`) gives the log-probs,
entropies and gradients of the full-logits path, on the tiny Qwen2-VL with images (M-RoPE) and
rows of different prompt and completion lengths; and the learner's policy and reference passes
(DeepSpeed, one rank and two ZeRO-3 ranks) give the log-probs of a plain fp32 forward."""

from __future__ import annotations

import pytest
import torch
from rft_test_helpers import tiny_learner_settings

from rft.algo import entropy_from_logits, token_logprobs
from rft.learner.batch import FeatureCache, collate
from rft.models.heads import gather_positions, head_at
from rft.models.loading import load_model, load_processor
from rft.types import PromptItem, TrainSample

MIN_PIXELS, MAX_PIXELS = 3136, 50176


def _items(processor, image: str) -> list[PromptItem]:
    """Prompts of different lengths: two with the image, one text-only."""

    def text(words: str, with_image: bool) -> str:
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": words}]
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)

    return [
        PromptItem(uid="a", group=0, prompt_text=text("How many objects?", True), images=[image]),
        PromptItem(uid="b", group=1, prompt_text=text("Count the red circles and the blue squares, then answer.", True), images=[image]),
        PromptItem(uid="c", group=2, prompt_text=text("Say a number.", False), images=[]),
    ]


def _samples(items: list[PromptItem], vocab: int) -> list[TrainSample]:
    gen = torch.Generator().manual_seed(0)
    lengths = [7, 3, 11, 5]
    return [TrainSample(items[i % len(items)], torch.randint(20, vocab - 20, (n,), generator=gen).tolist()) for i, n in enumerate(lengths)]


@pytest.fixture(scope="module")
def setup(tiny_model, tiny_image):
    torch.manual_seed(0)
    model = load_model(tiny_model, dtype="float32")
    processor = load_processor(tiny_model, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    items = _items(processor, tiny_image)
    samples = _samples(items, len(processor.tokenizer))
    cache = FeatureCache(processor, model)
    batch = collate(samples, [cache.get(s.prompt) for s in samples], processor.tokenizer.pad_token_id or 0)
    return model, cache, samples, batch


def _full_path(model, batch):
    logits = model(**batch.model_inputs(), use_cache=False).logits
    return batch.completion_logits(logits)


def _head_path(model, batch):
    with head_at(model, batch.logit_positions()):
        return model(**batch.model_inputs(), use_cache=False).logits


def test_batch_has_images_and_rows_of_different_prompt_lengths(setup):
    _, _, samples, batch = setup
    assert batch.image_grid_thw is not None and len(batch.image_grid_thw) == 3  # rows 0, 1, 3 carry the image
    assert len(set(batch.completion_start)) == 3
    # M-RoPE: image tokens share temporal positions, so a row's largest position is below its length
    assert int(batch.position_ids[:, 0].max()) < batch.completion_start[0] - 1


def test_positions_point_at_the_token_before_each_completion_token(setup):
    _, _, samples, batch = setup
    positions = batch.logit_positions()
    assert positions.shape == batch.completion_ids.shape
    for row, sample in enumerate(samples):
        n, start = len(sample.completion_ids), batch.completion_start[row]
        assert positions[row, :n].tolist() == list(range(start - 1, start - 1 + n))
        assert batch.input_ids[row, positions[row, :n] + 1].tolist() == sample.completion_ids
    assert int(positions.max()) < batch.input_ids.shape[1]


def test_head_on_completion_positions_equals_full_logits(setup):
    model, _, samples, batch = setup
    with torch.no_grad():
        full, head = _full_path(model, batch), _head_path(model, batch)
    assert head.shape == (len(samples), batch.completion_ids.shape[1], model.config.text_config.vocab_size)
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(head[mask], full[mask], rtol=1e-5, atol=1e-5)
    logp_full, logp_head = token_logprobs(full, batch.completion_ids), token_logprobs(head, batch.completion_ids)
    torch.testing.assert_close(logp_head[mask], logp_full[mask], rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy_from_logits(head)[mask], entropy_from_logits(full)[mask], rtol=0, atol=1e-5)
    # and both equal scoring each sequence alone, unpadded (layout and M-RoPE positions of the batch)
    for row, sample in enumerate(samples):
        n, width = len(sample.completion_ids), batch.completion_start[row] + len(sample.completion_ids)
        alone = {k: v[row : row + 1, :width] for k, v in batch.model_inputs().items() if k in ("input_ids", "attention_mask", "mm_token_type_ids")}
        alone["position_ids"] = batch.position_ids[:, row : row + 1, :width]
        features = setup[1].get(sample.prompt)
        if features.pixel_values is not None:
            alone.update(pixel_values=features.pixel_values, image_grid_thw=features.image_grid_thw)
        with torch.no_grad():
            logits = model(**alone, use_cache=False).logits[0, width - n - 1 : width - 1]
        torch.testing.assert_close(token_logprobs(logits, torch.tensor(sample.completion_ids)), logp_head[row, :n], rtol=0, atol=1e-4)


def test_gradients_equal_the_full_logits_path(setup):
    model, _, _, batch = setup
    mask = batch.completion_mask

    def grads(path):
        model.zero_grad(set_to_none=True)
        logp = token_logprobs(path(model, batch), batch.completion_ids)
        ((logp * mask).sum() + entropy_from_logits(path(model, batch)).mul(mask).sum()).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    full, head = grads(_full_path), grads(_head_path)
    assert full.keys() == head.keys() and len(full) > 10
    for name in full:
        torch.testing.assert_close(head[name], full[name], rtol=1e-4, atol=1e-5, msg=name)
    model.zero_grad(set_to_none=True)


def test_the_hook_is_removed_after_the_block(setup):
    model, _, _, batch = setup
    with torch.no_grad():
        _head_path(model, batch)
        logits = model(**batch.model_inputs(), use_cache=False).logits
    assert logits.shape[1] == batch.input_ids.shape[1]
    assert not model.get_output_embeddings()._forward_pre_hooks


def test_gather_positions_takes_per_row_indices():
    x = torch.arange(2 * 4 * 3).reshape(2, 4, 3)
    out = gather_positions(x, torch.tensor([[0, 2], [3, 3]]))
    assert out.tolist() == [[x[0, 0].tolist(), x[0, 2].tolist()], [x[1, 3].tolist(), x[1, 3].tolist()]]


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2])
def test_learner_policy_and_reference_passes_match_a_full_forward(ranks, placement, setup, tiny_model):
    """Through DeepSpeed (one rank: no ZeRO; two: ZeRO-3 partitions), fp32: the policy's and the
    reference's log-probs equal the full-logits path of a plain model."""
    from rft.algo.config import LossSettings
    from rft.learner.group import LearnerGroup

    model, _, samples, batch = setup
    with torch.no_grad():
        expected = token_logprobs(_full_path(model, batch), batch.completion_ids)
    settings = tiny_learner_settings(tiny_model)
    group = placement([{"CPU": 1}] * ranks)
    learner = LearnerGroup(settings, ranks, group, list(range(ranks)), cpus=1, gpus=0)
    try:
        for which in ("policy", "ref"):
            got = learner.logprobs(samples, which)
            for row, sample in enumerate(samples):
                assert len(got[row]) == len(sample.completion_ids)
                torch.testing.assert_close(torch.tensor(got[row]), expected[row, : len(sample.completion_ids)], rtol=0, atol=1e-4)
        for sample, ref in zip(samples, got):
            sample.ref_logprobs, sample.advantage = ref, 1.0 if len(sample.completion_ids) % 2 else -1.0
        metrics = learner.train_rl(
            samples,
            LossSettings(
                beta=0.04,
                kl_estimator="k3",
                clip_eps_low=0.2,
                clip_eps_high=0.2,
                aggregation="seq_mean_token_mean",
                entropy_coef=0.0,
                max_completion_len=None,
                tis_cap=0.0,
            ),
        )
        assert metrics["skipped_update"] == 0.0 and 0 < metrics["grad_norm"] < float("inf")
        assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # the reference scores like the initial policy
    finally:
        learner.shutdown()


@pytest.mark.slow
def test_the_separate_reference_scores_like_a_full_forward(placement, setup, tiny_model):
    """`learner.separate_reference`: the reference actor's scores, asked directly and for a
    generation's result references (as the overlapped loop hands them over), equal the plain fp32
    forward, keyed by each completion's (group, sample)."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from rft.learner.reference import ReferenceScorer
    from rft.types import Completion

    model, _, samples, batch = setup
    with torch.no_grad():
        expected = token_logprobs(_full_path(model, batch), batch.completion_ids)
    group = placement([{"CPU": 1}])
    settings = tiny_learner_settings(tiny_model, zero_stage=0)
    scorer = ReferenceScorer(settings, dict(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)))
    try:
        for row, got in enumerate(scorer.logprobs(samples)):
            torch.testing.assert_close(torch.tensor(got), expected[row, : len(samples[row].completion_ids)], rtol=0, atol=1e-4)
        # completions of the samples, split over two "rollout workers" as generate_async returns them
        completions = [
            Completion(group=s.prompt.group, sample=i, token_ids=s.completion_ids, text="", logprobs=[], finish_reason="stop") for i, s in enumerate(samples)
        ]
        parts = [ray.put((completions[:2], {})), None, ray.put((completions[2:], {}))]
        items = list({s.prompt.group: s.prompt for s in samples}.values())
        scored = scorer.result(scorer.score_async(items, parts))
        assert sorted(scored) == sorted((c.group, c.sample) for c in completions)
        for row, c in enumerate(completions):
            torch.testing.assert_close(torch.tensor(scored[(c.group, c.sample)]), expected[row, : len(c.token_ids)], rtol=0, atol=1e-4)
        # a generation that failed leaves nothing scored (the controller then scores the batch itself)
        failed = ray.remote(lambda: 1 / 0).remote()
        assert scorer.result(scorer.score_async(items, [failed])) == {}
    finally:
        scorer.shutdown()
