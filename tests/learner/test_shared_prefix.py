"""The shared-prefix layout (`learner.shared_prefix`: a prompt's completions packed into one row
behind one copy of the prompt, `rft.learner.batch`) scores and trains exactly like the plain
layout (one row per completion): on the tiny Qwen2-VL with images (M-RoPE), groups of unequal
completion lengths, several groups in one micro-batch and a group cut across micro-batches, with
sdpa and eager attention over the dense mask and with the learner's shared-prefix attention
(`rft.models.prefix_attention`); and through the learner group (DeepSpeed, ZeRO-2 and ZeRO-3 on two
ranks) the log-probs and one update are the same with the switch on and off, and two ZeRO-2 ranks
update like one rank given the whole batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from rft_test_helpers import tiny_learner_settings

from rft.algo import entropy_from_logits, policy_loss, token_logprobs
from rft.algo.config import LossSettings
from rft.learner.batch import FeatureCache, PromptFeatures, collate_rows, micro_batch_rows, pack_groups, prompt_runs, shared_prefix_mask
from rft.models.heads import head_at
from rft.models.loading import load_model, load_processor
from rft.models.prefix_attention import ATTENTION, use_prefix_attention
from rft.types import PromptItem, TrainSample

MIN_PIXELS, MAX_PIXELS = 3136, 50176
COMPLETION_LENGTHS = {"a": [7, 3, 11], "b": [5, 9], "c": [4, 6, 2]}
LOSS = LossSettings(
    beta=0.04,
    kl_estimator="k3",
    clip_eps_low=0.2,
    clip_eps_high=0.2,
    aggregation="seq_mean_token_mean",
    entropy_coef=0.01,
    max_completion_len=None,
    tis_cap=0.0,
)


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
    """Each prompt's completions together (as the controller hands them), unequal lengths,
    advantages of both signs, reference log-probs that differ from the policy's."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for item in items:
        for n in COMPLETION_LENGTHS[item.uid]:
            ids = torch.randint(20, vocab - 20, (n,), generator=gen).tolist()
            advantage = float(torch.randn((), generator=gen))
            ref = (-3.0 + 0.5 * torch.randn(n, generator=gen)).tolist()
            out.append(TrainSample(item, ids, advantage, ref_logprobs=ref))
    return out


@pytest.fixture(scope="module")
def assets(tiny_model, tiny_image):
    processor = load_processor(tiny_model, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    items = _items(processor, tiny_image)
    return processor, _samples(items, len(processor.tokenizer))


@pytest.fixture(scope="module", params=["sdpa", "eager", ATTENTION])
def setup(request, tiny_model, assets):
    """The tiny model with dense-mask sdpa, eager attention, or the learner's shared-prefix
    attention (`rft.models.prefix_attention`, which skips what the mask hides)."""
    torch.manual_seed(0)
    return _model_setup(tiny_model, assets, request.param)


def _model_setup(tiny_model, assets, attention: str):
    """(model, processor, samples, each sample's prompt features) for `attention`."""
    model = load_model(tiny_model, dtype="float32", attn_implementation="sdpa" if attention == ATTENTION else attention)
    if attention == ATTENTION:
        use_prefix_attention(model)
    processor, samples = assets
    cache = FeatureCache(processor, model)
    return model, processor, samples, [cache.get(s.prompt) for s in samples]


def _batches(setup, budget: int, shared_prefix: bool):
    """The micro-batches the learner would build (`micro_batch_rows` + `collate_rows`)."""
    model, processor, samples, feats = setup
    pad = processor.tokenizer.pad_token_id or 0
    plan = micro_batch_rows(samples, feats, budget, shared_prefix)
    return [collate_rows([[samples[i] for i in row] for row in rows], [feats[row[0]] for row in rows], pad, shared_prefix=shared_prefix) for rows in plan]


def _forward(model, batch):
    """The learner's forward (`LearnerWorker._forward_logprobs`) without DeepSpeed."""
    additive = torch.float32 if model.config._attn_implementation == "eager" else None
    with head_at(model, batch.logit_positions(), batch.sample_rows()):
        logits = model(**batch.model_inputs(additive), use_cache=False).logits
    return token_logprobs(logits, batch.completion_ids), entropy_from_logits(logits)


def _score(setup, budget: int, shared_prefix: bool) -> list[torch.Tensor]:
    model = setup[0]
    out = []
    with torch.no_grad():
        for batch in _batches(setup, budget, shared_prefix):
            logp, _ = _forward(model, batch)
            out += [logp[i, : len(s.completion_ids)] for i, s in enumerate(batch.samples)]
    return out


def _train(setup, budget: int, shared_prefix: bool) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss summed over the micro-batches (normalised by global counts, as the learner does) and
    the accumulated parameter gradients."""
    model, _, samples, _ = setup
    totals = {"tokens": float(sum(len(s.completion_ids) for s in samples)), "seqs": float(len(samples))}
    model.zero_grad(set_to_none=True)
    total = 0.0
    for batch in _batches(setup, budget, shared_prefix):
        logp, entropy = _forward(model, batch)
        loss, _ = policy_loss(
            logp,
            None,
            torch.tensor([s.advantage for s in batch.samples]),
            batch.completion_mask,
            batch.per_token([s.ref_logprobs for s in batch.samples]),
            settings=LOSS,
            entropy=entropy,
            total_tokens=totals["tokens"],
            total_seqs=totals["seqs"],
        )
        loss.backward()
        total += float(loss.detach())
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return total, grads


def _features(prompt_length: int) -> PromptFeatures:
    ids = torch.arange(1, prompt_length + 1)
    return PromptFeatures(ids, torch.zeros(prompt_length, dtype=torch.int32), ids.expand(3, -1) - 1, None, None)


# ---- layout --------------------------------------------------------------------------------


def test_mask_lets_a_completion_see_the_prompt_and_its_own_tokens_only():
    segments = torch.tensor([[0, 0, 1, 1, 2, 2, -1]])  # prompt 2, completions of 2 and 2, padding
    mask = shared_prefix_mask(segments)[0, 0].int()
    assert mask.tolist() == [
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0],  # the second completion skips the first
        [1, 1, 0, 0, 1, 1, 0],
        [1, 1, 0, 0, 0, 0, 1],  # padding: prompt and itself, never an empty row
    ]


def test_packed_row_positions_restart_after_the_prompt_and_logits_come_from_each_segment():
    samples = [TrainSample(PromptItem("u", 0, "", []), ids) for ids in ([7, 8, 9], [5], [6, 6])]
    batch = collate_rows([samples[:2], samples[2:]], [_features(2), _features(3)], pad_id=0, placeholder_ids=frozenset({9}))
    assert batch.input_ids.tolist() == [[1, 2, 7, 8, 0, 5], [1, 2, 3, 6, 6, 0]]  # placeholder 9 fed as padding
    assert batch.position_ids[0].tolist() == [[0, 1, 2, 3, 4, 2], [0, 1, 2, 3, 4, 0]]
    assert batch.sample_rows().tolist() == [0, 0, 1] and batch.completion_start == [2, 5, 3]
    assert batch.attention_mask.shape == (2, 1, 6, 6) and batch.attention_mask.dtype == torch.bool
    assert batch.completion_mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 0]]
    positions = batch.logit_positions()
    assert positions[0].tolist() == [1, 2, 3] and positions[1, :1].tolist() == [1] and positions[2, :2].tolist() == [2, 3]
    additive = batch.model_inputs(torch.float32)["attention_mask"]
    low = torch.finfo(torch.float32).min
    assert additive.dtype == torch.float32 and additive[0, 0, 5].tolist() == [0, 0, low, low, low, 0]
    single = collate_rows([samples[:1], samples[2:]], [_features(2), _features(3)], pad_id=0)
    assert single.attention_mask.shape == (2, 5) and single.rows is None  # one sample a row: the plain mask
    with pytest.raises(ValueError, match="one sample each"):
        collate_rows([samples[:2]], [_features(2)], pad_id=0, shared_prefix=False)


def test_groups_are_packed_whole_or_cut_into_chunks_that_repeat_the_prompt():
    item = lambda uid: PromptItem(uid, 0, "", [])
    samples = [TrainSample(item(u), [1] * n) for u, n in [("a", 3), ("a", 4), ("a", 5), ("b", 2), ("a", 1)]]
    feats = [_features(10)] * 5
    assert prompt_runs(samples) == [[0, 1, 2], [3], [4]]  # a group split by another: two runs
    assert pack_groups(samples, feats, budget=100) == [[0, 1, 2], [3], [4]]
    assert pack_groups(samples, feats, budget=18) == [[0, 1], [2], [3], [4]]  # 10 + 3 + 4 fits, + 5 does not
    assert pack_groups(samples, feats, budget=5) == [[0], [1], [2], [3], [4]]  # longer than the budget: alone
    # rows x longest row <= budget, in packed-row tokens (rows of 22, 12 and 11 tokens)
    assert micro_batch_rows(samples, feats, 40, shared_prefix=True) == [[[0, 1, 2]], [[3], [4]]]
    assert micro_batch_rows(samples, feats, 40, shared_prefix=False) == [[[0], [1]], [[2], [3]], [[4]]]


# ---- the model: packed equals plain --------------------------------------------------------


def test_packed_groups_hold_images_once_per_row(setup):
    _, _, samples, _ = setup
    (plain,) = _batches(setup, 10_000, shared_prefix=False)
    (packed,) = _batches(setup, 10_000, shared_prefix=True)
    assert packed.input_ids.shape[0] == 3 and plain.input_ids.shape[0] == len(samples)
    assert len(packed.image_grid_thw) == 2 and len(plain.image_grid_thw) == 5  # groups a and b carry the image
    assert packed.input_ids.numel() < plain.input_ids.numel()


# Budgets (prompts of 47, 57 and 31 tokens): every group in one micro-batch; two groups in one and
# the third alone; groups cut into chunks across micro-batches.
BUDGETS = [10_000, 150, 60]


def test_budgets_cover_several_groups_per_micro_batch_and_a_group_cut_across_them(setup):
    _, _, samples, feats = setup
    assert [len(f.input_ids) for f in feats[::3]] == [47, 57, 31]
    plans = {budget: micro_batch_rows(samples, feats, budget, shared_prefix=True) for budget in BUDGETS}
    assert plans[10_000] == [[[0, 1, 2], [3, 4], [5, 6, 7]]]
    assert plans[150] == [[[0, 1, 2], [3, 4]], [[5, 6, 7]]]
    assert plans[60] == [[[0, 1]], [[2]], [[3]], [[4]], [[5, 6, 7]]]


def test_the_shared_prefix_attention_computes_the_packed_rows_of_every_layer(tiny_model, assets, monkeypatch):
    """With `ATTENTION` the packed rows reach its per-row path (not the dense-mask fallback) in
    every text layer; plain rows do not."""
    import rft.models.prefix_attention as kernel

    setup = _model_setup(tiny_model, assets, ATTENTION)
    model = setup[0]
    calls = []
    row_attention = kernel._row_attention
    monkeypatch.setattr(kernel, "_row_attention", lambda *args: calls.append(args[4]) or row_attention(*args))
    (packed,) = _batches(setup, 10_000, shared_prefix=True)
    with torch.no_grad():
        _forward(model, packed)
    assert calls == [0, 1, 2] * model.config.text_config.num_hidden_layers  # 3 rows in every layer
    calls.clear()
    with torch.no_grad():
        _forward(model, _batches(setup, 10_000, shared_prefix=False)[0])
    assert calls == []


@pytest.mark.parametrize("budget", BUDGETS)
def test_packed_log_probs_equal_plain_rows(setup, budget):
    plain = _score(setup, 10_000, shared_prefix=False)
    packed = _score(setup, budget, shared_prefix=True)
    for a, b in zip(plain, packed, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


@pytest.mark.parametrize("budget", BUDGETS)
def test_packed_loss_and_gradients_equal_plain_rows(setup, budget):
    loss_plain, grads_plain = _train(setup, 10_000, shared_prefix=False)
    loss_packed, grads_packed = _train(setup, budget, shared_prefix=True)
    assert loss_packed == pytest.approx(loss_plain, abs=1e-5)
    assert grads_plain.keys() == grads_packed.keys() and len(grads_plain) > 10
    assert any("visual" in name for name in grads_plain)  # the vision tower is trained here, images included
    for name in grads_plain:
        torch.testing.assert_close(grads_packed[name], grads_plain[name], rtol=1e-4, atol=1e-5, msg=name)


# ---- through the learner group (DeepSpeed, two ranks) --------------------------------------


# Learner-group runs by (zero_stage, shared_prefix, ranks), shared by the tests that compare them.
_RUNS: dict[tuple[int, bool, int], tuple] = {}


def _image_samples(assets) -> list[TrainSample]:
    """Fresh copies of the 5 samples with an image (a run writes their old log-probs)."""
    samples = [s for s in assets[1] if s.prompt.images]
    assert len(samples) == 5
    return [TrainSample(s.prompt, list(s.completion_ids), s.advantage, ref_logprobs=s.ref_logprobs) for s in samples]


def _cached_run(placement, tiny_model, assets, zero_stage: int, shared_prefix: bool, ranks: int = 2):
    key = (zero_stage, shared_prefix, ranks)
    if key not in _RUNS:
        _RUNS[key] = _learner_run(placement, tiny_model, _image_samples(assets), zero_stage, shared_prefix, ranks)
    return _RUNS[key]


def _learner_run(placement, tiny_model, samples: list[TrainSample], zero_stage: int, shared_prefix: bool, ranks: int = 2):
    """Log-probs, one update's metrics and the weights after it, from a fresh `ranks`-rank group."""
    import ray

    from rft.learner.group import LearnerGroup

    # groups cut into chunks (60 tokens); the ranks get different micro-batch counts; no reference model here
    settings = tiny_learner_settings(tiny_model, zero_stage=zero_stage, lr=1e-5, micro_batch_tokens=60, need_reference=False, shared_prefix=shared_prefix)
    learner = LearnerGroup(settings, ranks, placement([{"CPU": 1}] * ranks), list(range(ranks)), cpus=1, gpus=0)
    try:
        logprobs = learner.logprobs(samples, "policy")
        before = ray.get([w.full_state_dict.remote() for w in learner.workers])[0]
        for sample, old in zip(samples, logprobs):
            sample.old_logprobs = old
        metrics = learner.train_rl(samples, dataclasses.replace(LOSS, beta=0.0))  # no reference model here
        after = ray.get([w.full_state_dict.remote() for w in learner.workers])[0]
    finally:
        learner.shutdown()
    return logprobs, metrics, before, after


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_learner_group_gives_the_same_log_probs_and_update_with_and_without_shared_prefix(zero_stage, placement, tiny_model, assets):
    """The 5 samples with an image over two ranks: group a is split between them, rank 1 runs
    more micro-batches than rank 0 (zero-weight padding), group b is cut into chunks. (Every
    micro-batch holds an image: under ZeRO-3 every rank must run the vision tower together.)"""
    samples = _image_samples(assets)
    runs = {shared: _cached_run(placement, tiny_model, assets, zero_stage, shared) for shared in (True, False)}
    (logp_on, m_on, before, after_on), (logp_off, m_off, _, after_off) = runs[True], runs[False]
    for a, b in zip(logp_off, logp_on, strict=True):
        torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=0, atol=1e-5)
    assert m_on["skipped_update"] == m_off["skipped_update"] == 0.0
    assert m_on["loss"] == pytest.approx(m_off["loss"], abs=1e-5)
    assert m_on["grad_norm"] == pytest.approx(m_off["grad_norm"], rel=1e-4)
    assert m_on["tokens"] == m_off["tokens"] == sum(len(s.completion_ids) for s in samples)
    moved = max(float((after_off[name] - before[name]).abs().max()) for name in before)
    assert moved > 5e-6  # the update happened (lr 1e-5, Adam's first step moves weights by about lr)
    for name in before:
        torch.testing.assert_close(after_on[name], after_off[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_two_zero2_ranks_update_like_one_rank(placement, tiny_model, assets):
    """The same 5 samples and one update on one rank and split over two (gloo all-reduce of the
    gradients, each rank's loss normalised by the global token and sequence counts). Measured in
    fp32: the same loss to the last bit, grad norms 5.251516 vs 5.251596 (1.5e-5 relative:
    reduction order), weights after the step within 3.7e-9. Tolerances: 1e-4 relative on the
    grad norm (a mis-scaled reduction, e.g. a sum where a mean is due, is off by 1/world_size, a
    lost micro-batch by its share, about 20% here) and 1e-7 on the weights. Adam's first step
    moves every weight by about lr whatever the gradient's scale, so the weights alone would not
    catch a mis-scaled all-reduce; the loss and the grad norm, taken before the step, do."""
    logp_two, m_two, before, after_two = _cached_run(placement, tiny_model, assets, 2, True, ranks=2)
    logp_one, m_one, _, after_one = _cached_run(placement, tiny_model, assets, 2, True, ranks=1)
    for a, b in zip(logp_one, logp_two, strict=True):
        torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=0, atol=1e-6)
    assert m_one["skipped_update"] == m_two["skipped_update"] == 0.0 and m_one["tokens"] == m_two["tokens"]
    assert m_two["loss"] == pytest.approx(m_one["loss"], rel=1e-5)
    assert m_two["grad_norm"] == pytest.approx(m_one["grad_norm"], rel=1e-4)
    for name in before:
        torch.testing.assert_close(after_two[name], after_one[name], rtol=0, atol=1e-7, msg=name)
