"""The reference model in an actor of its own (`learner.separate_reference`).

By default each learner rank holds the reference beside the policy and scores a batch before the
update, on the learners' cores. With `learner.separate_reference=true` a `ReferenceWorker` holds it
instead: one process, no optimizer, no DeepSpeed, the learner's scoring path unchanged
(`LearnerWorker`'s features cache, packed micro-batches, completion-only head, autocast and prefix
attention), so it scores exactly as a learner's reference would. It sits on the rollout worker's
cores (`rft.placement.workers`): with `trainer.off_policy_steps=1` it scores each prefetched batch
as soon as its generation ends, while the learners update on the previous one, so the reference
pass leaves the learners' critical path. That pays where generation is shorter than the update
(~44 M bench model, 2 cores with native bf16: step 5.86 -> 5.12 s) and not where it is not
(float32 CPU: 11.2 -> 12.1 s; rft/bench/results/README.md), so it is off by default.

    scorer = ReferenceScorer(settings, options)                 # a Ray actor, started
    pending = scorer.score_async(items, generation.refs)        # waits on the generation in Ray
    scores = scorer.result(pending)                             # {(group, sample): log-probs}
"""

from __future__ import annotations

import logging
from typing import Any

import ray
import torch

from rft.learner.worker import LearnerSettings, LearnerWorker, uses_autocast
from rft.types import Completion, PromptItem, TrainSample

log = logging.getLogger(__name__)
CompletionKey = tuple[int, int]  # (group, sample) of a `Completion`


class ReferenceWorker(LearnerWorker):
    """A `LearnerWorker` that holds only the reference model and answers only `logprobs(..., "ref")`
    (and `score`); its training calls have no engine to run on."""

    def __init__(self, settings: LearnerSettings):
        super().__init__(0, 1, settings)

    def setup(self) -> dict[str, Any]:
        from rft.models.loading import load_processor, resolve_dtype

        torch.manual_seed(self.settings.seed)
        self.settings.dtype = str(resolve_dtype(self.settings.dtype)).removeprefix("torch.")
        self.dtype = "float32" if uses_autocast(self.settings) else self.settings.dtype  # the weights', as a learner's
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        self.processor = load_processor(self.settings.model_path, min_pixels=self.settings.min_pixels, max_pixels=self.settings.max_pixels)
        self.ref_engine = self._load_reference(deepspeed=None)
        self._prepare_scoring(self.ref_engine)
        return {"params": sum(p.numel() for p in self.ref_engine.parameters())}

    def score(self, items: list[PromptItem], *generated: tuple[list[Completion], dict[str, float]]) -> dict[CompletionKey, list[float]]:
        """Reference log-probs of every completion of a generation (the rollout workers' answers,
        as `RolloutWorker.generate` returns them), keyed by (group, sample)."""
        by_group = {item.group: item for item in items}
        completions = [c for part, _timings in generated for c in part]
        samples = [TrainSample(by_group[c.group], c.token_ids) for c in completions]
        scores = self.logprobs(samples, "ref")
        self.features.clear()
        return {(c.group, c.sample): row for c, row in zip(completions, scores)}


class ReferenceScorer:
    """The driver's handle on the `ReferenceWorker` actor."""

    def __init__(self, settings: LearnerSettings, options: dict[str, Any]):
        self.actor = ray.remote(ReferenceWorker).options(**options).remote(settings)
        self.info = ray.get(self.actor.setup.remote())

    def logprobs(self, samples: list[TrainSample]) -> list[list[float]]:
        """Reference log-probs of `samples`, now."""
        return ray.get(self.actor.logprobs.remote(samples, "ref"))

    def score_async(self, items: list[PromptItem], generation_refs: list[Any]) -> ray.ObjectRef:
        """Score a generation still in flight: the actor starts once every rollout worker has
        answered (`generation_refs`, `PendingGeneration.refs`), without the driver waiting."""
        return self.actor.score.remote(items, *[ref for ref in generation_refs if ref is not None])

    @staticmethod
    def result(pending: ray.ObjectRef) -> dict[CompletionKey, list[float]]:
        """A `score_async` result; empty when it failed (a rollout worker died mid-generation:
        the group redoes that slice, and the controller scores what is missing itself)."""
        try:
            return ray.get(pending)
        except ray.exceptions.RayError as err:
            log.warning("the reference could not score the prefetched batch (%s); it is scored again now", type(err).__name__)
            return {}

    def run(self, fn, *args) -> Any:
        """`fn(worker, *args)` in the actor (placement: pinning, threads)."""
        return ray.get(self.actor.__ray_call__.remote(fn, *args))

    def shutdown(self) -> None:
        ray.kill(self.actor, no_restart=True)
