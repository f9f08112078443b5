"""The GRPO controller (`stage=rl`, `stage=zero`, and stage 2 of `reason_rft`).

One step: take `trainer.prompts_per_step` records; the rollout actors generate
`algo.num_generations` completions each and score them; group advantages are computed by
explicit group id; reference (and, with several PPO epochs, old) log-probs come from the
learners (or the separate reference actor); the learners update; the new weights are pushed to
the rollout actors. The controller owns this loop and nothing else.

Overlap (`trainer.off_policy_steps=1`): the first generation round of step t+1 is started
(`RolloutGroup.generate_async`) before the learners work on step t, so it runs with the weights
one version behind; the controller waits for it after the update, and only then pushes the new
weights (a push never races a generation, and each completion's `weight_version` names the
weights that generated it). `rollout/staleness` is the learners' version before the update minus
the oldest version in the batch: 0 synchronously, 1 from step 2 on with the overlap (0 at step
1, whose batch is generated before any update). The last step starts no generation. Checkpoints
and evaluation run after the push, with nothing in flight; a checkpoint records the data position
from before the prefetched batch, so a resumed run generates that batch again (with its own
weights) instead of skipping it. Dynamic-sampling refills are generated synchronously at the
start of the step, with the weights then current.

With `learner.separate_reference=true` the reference log-probs come from an actor of its own
(`rft.learner.reference`) on the rollout worker's cores; with the overlap it is handed the
prefetched generation's result references at once and scores that batch as soon as it exists,
during this step's update. The next step waits for what is left of that scoring (counted in its
`timing/logprob_s`) before it starts the next generation, so the two never share the cores.
Refills, and a batch whose scoring failed, are scored when needed.

The loss against a stale batch: `rft.algo.losses.policy_loss` takes its ratio against
`old_logprobs`, and with `old_logprobs=None` (one PPO epoch) against the learner's own detached
log-probs, i.e. the current policy, not the one that sampled; only `algo.tis_cap > 0` would then
correct for the sampler, and only as a truncated weight. So with the overlap every sample's old
log-probs are the engine's log-probs of its sampled tokens (`rollout_logprobs`, the behaviour
policy, one or zero versions behind), for any `algo.ppo_epochs` (the learner's own "old" pass is
skipped): the PPO ratio pi_theta / pi_behaviour is then clipped as usual, which is the standard
importance correction for data from an older policy. The TIS code applies unchanged but its
weight exp(old - rollout) is then exactly 1, and `rollout/logprob_gap` reads 0: the
engine-vs-learner mismatch is inside the clipped ratio instead (for the sync check, run with
`off_policy_steps=0`).

A learner rank that dies (`LearnerLost`, `rft.learner.group`) is recovered up to
`trainer.max_restarts` times: the learner group is started afresh in its bundles, the weight
stream is rebuilt, and the run goes back to the latest checkpoint (weights, optimizer, data
position and RNG states, as on resume; the tracker drops the rows logged after it) or, without
one, to step 0; the steps since are redone.

    trainer = RLTrainer(cfg, run_dir, model_path, data)
    trainer.setup(); result = trainer.train(); trainer.cleanup()
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from rft.algo import AlgoSettings, compute_advantages, filter_groups
from rft.config import separate_reference
from rft.data.splits import DataSplits
from rft.errors import UserError
from rft.learner.group import LearnerLost
from rft.placement.workers import engine_settings, learner_settings, reference_settings, start_workers
from rft.rollout.group import PendingGeneration
from rft.tasks.prompting import Purpose, prompt_items, prompt_style
from rft.tracking import make_tracker
from rft.tracking.result import RunResult
from rft.tracking.stats import Timer, timer
from rft.trainer import checkpoint as ckpt
from rft.trainer.metrics import RolloutCounts, StepTimes, rl_step_row, rollout_metrics
from rft.trainer.sampler import EpochSampler
from rft.trainer.stage import LearnerStage
from rft.types import Completion, PromptItem, SamplingSettings, TrainSample
from rft.weights.errors import NonFiniteWeights
from rft.weights.folder import run_sync_dir
from rft.weights.modes import resolve_mode
from rft.weights.sync import WeightSyncer

log = logging.getLogger(__name__)


class TrainingStopped(UserError, RuntimeError):
    """The run stopped on purpose (e.g. repeated non-finite updates); a checkpoint was written."""


@dataclass
class Prefetch:
    """The first generation round of the next step, started before this step's update."""

    items: list[PromptItem]
    pending: PendingGeneration
    sampler_before: dict[str, int]  # the data position a checkpoint must record while it is held
    reference: Any = None  # the separate reference's scores of it, in flight (an ObjectRef)


@dataclass
class Rollouts:
    """One step's batch: prompts, completions (prompt order), the rollout's times, the dynamic
    sampling counts, and the separate reference's scores of the prefetched round, in flight."""

    items: list[PromptItem]
    completions: list[Completion]
    timings: dict[str, float]
    dynamic: dict[str, float] = field(default_factory=dict)
    reference: Any = None


class RLTrainer(LearnerStage):
    """A `Stage` (`rft.trainer.stage`); with `eval_around`, it evaluates before its first update
    (when it starts fresh) and after its last (`eval_before`, `eval_after` in the result)."""

    name = "rl"

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        model_path: str,
        data: DataSplits,
        *,
        run_name: str = "rl",
        parent_run_id: str | None = None,
        eval_around: bool = False,
    ):
        super().__init__(cfg, run_dir, model_path, run_name=run_name, parent_run_id=parent_run_id)
        self.data = data
        self.eval_around = eval_around
        self.algo = AlgoSettings.from_config(cfg.algo, max_completion_len=cfg.rollout.max_tokens)
        self.weights = dict(cfg.reward.weights)
        self.sampler = EpochSampler(data.train, seed=cfg.trainer.seed)
        self.sampling = SamplingSettings(
            n=cfg.algo.num_generations,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=cfg.rollout.top_k,
            max_tokens=cfg.rollout.max_tokens,
        )
        self.bad_updates = 0
        self.weight_sync: WeightSyncer | None = None
        self.off_policy_steps = int(cfg.trainer.off_policy_steps)
        self.prefetch: Prefetch | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resume_from = self._resume_point()
        separate = separate_reference(self.cfg, self.algo.needs_reference)
        self.workers = start_workers(
            self.cfg,
            learner=learner_settings(
                self.cfg, self.model_path, sft=False, total_steps=self.cfg.trainer.max_steps, need_reference=self.algo.needs_reference and not separate
            ),
            engine=engine_settings(self.cfg, self.model_path, seed=self.cfg.trainer.seed, weight_sync=resolve_mode(self.cfg)),
            reference=reference_settings(self.cfg, self.model_path) if separate else None,
        )
        self.engine_threads = self.workers.rollout.engine_threads()  # logged per step: placement made visible
        self.weight_sync = WeightSyncer(resolve_mode(self.cfg), self.workers.learners, self.workers.rollout, run_sync_dir(self.run_dir))
        self.weight_sync.open()
        if resume_from is not None:
            self._resume(resume_from)
        self.tracker = make_tracker(self.cfg, self.run_dir, self.run_name, self.parent_run_id, resume_step=self.tracker_resume_step())

    def _resume(self, checkpoint: Path) -> None:
        self._restore(checkpoint)
        self._sync_weights()
        log.info("resumed from %s at step %d", checkpoint, self.step)

    def train(self) -> RunResult:
        result = RunResult(self.name)
        if self.eval_around and self.step == 0:
            result.eval_before = self.evaluate()
            self.tracker.log(0, result.eval_before)
        result.metrics = self._train_steps()
        if self.eval_around:
            result.eval_after = self.evaluate()
            self.tracker.log(self.step, result.eval_after)
        return result

    def _train_steps(self) -> dict[str, float]:
        """Step to `trainer.max_steps`; the last step's row."""
        from rft.tracking.progress import progress_bar

        last: dict[str, float] = {}
        with progress_bar(total=self.cfg.trainer.max_steps, initial=self.step, description=f"{self.run_name}", enabled=self.cfg.trainer.progress) as bar:
            while self.step < self.cfg.trainer.max_steps:
                self.step += 1
                try:
                    last = self.train_step()
                    self.tracker.log(self.step, last)
                    self._stop_if_diverged()
                    if self.step % self.cfg.trainer.save_every == 0 or self.step == self.cfg.trainer.max_steps:
                        self.save_checkpoint()
                except LearnerLost as err:
                    self._recover_learners(err)
                    bar.update(self.step - bar.step)  # back to the step it continues from
                    continue
                bar.update(1, reward=last["reward/mean"], step_s=last["timing/step_s"])
                if self.cfg.trainer.eval_every and self.step % self.cfg.trainer.eval_every == 0:
                    self.tracker.log(self.step, self.evaluate())
        return last

    def _recover_learners(self, err: LearnerLost) -> None:
        """A fresh learner group, back at the latest checkpoint (or step 0); see the module docstring."""
        failed_step = self.step
        restarts, allowed = self.workers.learners.restarts, self.cfg.trainer.max_restarts
        if restarts >= allowed:
            raise TrainingStopped(f"step {failed_step}: {err}; the learners were restarted {restarts} times already (trainer.max_restarts={allowed})") from err
        self.prefetch = None  # generated for a step that will be redone
        self.workers.restart_learners()
        self.weight_sync.learners_restarted()
        checkpoint = ckpt.latest(self.run_dir)
        if checkpoint is not None:
            self._resume(checkpoint)
        else:
            self.step = 0
            self.sampler = EpochSampler(self.data.train, seed=self.cfg.trainer.seed)
            self._sync_weights()  # the fresh learners' initial weights, as version 0
        self.tracker.close("KILLED")
        self.tracker = make_tracker(self.cfg, self.run_dir, self.run_name, self.parent_run_id, resume_step=self.step if checkpoint else -1)
        log.warning("step %d: %s; learners restarted (%d of %d), continuing from step %d", failed_step, err, restarts + 1, allowed, self.step)

    def cleanup(self, status: str = "FINISHED") -> None:
        super().cleanup(status)
        if self.weight_sync is not None:
            self.weight_sync.close()

    # ---- one step -----------------------------------------------------------------------------
    def _start_generation(self, count: int, group_offset: int, step: int) -> tuple[list[PromptItem], PendingGeneration]:
        """Take `count` records and start generating for them (for step `step`'s batch)."""
        records = self.sampler.take(count)
        items = prompt_items(self.task, self.processor, records, prompt_style(self.cfg.stage.name, Purpose.train, self.cfg), self.cfg.model)
        for item in items:
            item.group += group_offset
        self.sampling.seed = self.cfg.trainer.seed * 100003 + step * 101 + group_offset
        return items, self.workers.rollout.generate_async(items, self.sampling)

    def _generate(self, count: int, group_offset: int) -> tuple[list[PromptItem], list[Completion], dict[str, float]]:
        items, pending = self._start_generation(count, group_offset, self.step)
        completions, timings = pending.result()
        return items, completions, timings

    def _first_round(self) -> Rollouts:
        """This step's first generation round: the one prefetched during the last update, if any."""
        if self.prefetch is None:
            return Rollouts(*self._generate(self.cfg.trainer.prompts_per_step, 0))
        prefetch, self.prefetch = self.prefetch, None
        completions, timings = prefetch.pending.result()
        return Rollouts(prefetch.items, completions, timings, reference=prefetch.reference)

    def _prefetch_next(self) -> Prefetch | None:
        """With the overlap, start the next step's first round now (none after the last step),
        and have the separate reference score it as soon as it is generated."""
        if not self.off_policy_steps or self.step >= self.cfg.trainer.max_steps:
            return None
        before = self.sampler.state()
        items, pending = self._start_generation(self.cfg.trainer.prompts_per_step, 0, self.step + 1)
        scoring = self.workers.reference.score_async(items, pending.refs) if self.workers.reference else None
        return Prefetch(items, pending, before, scoring)

    def _rollouts(self) -> Rollouts:
        """Completions for this step, the rollout's times, and with dynamic sampling its counts
        (rounds, kept groups): zero-variance groups are dropped and the batch is refilled with
        new prompts for up to `max_refill_rounds` rounds."""
        want = self.cfg.trainer.prompts_per_step
        first = self._first_round()
        if not self.algo.dynamic_sampling:
            return first
        items, completions, timings = first.items, first.completions, first.timings
        kept_items, kept = self._keep_informative(items, completions)
        rounds = 1
        while len(kept_items) < want and rounds < self.algo.max_refill_rounds:
            more_items, more, more_timings = self._generate(want - len(kept_items), group_offset=rounds * want)
            for key, value in more_timings.items():
                timings[key] = timings.get(key, 0.0) + value
            new_items, new_kept = self._keep_informative(more_items, more)
            kept_items, kept = kept_items + new_items, kept + new_kept
            rounds += 1
        counts = {"dynamic_sampling_rounds": float(rounds), "dynamic_sampling_kept_groups": float(len(kept_items))}
        if not kept_items:  # nothing informative: train on the first batch (zero advantages)
            return Rollouts(items, completions, timings, counts, first.reference)
        return Rollouts(kept_items, kept, timings, counts, first.reference)

    def _keep_informative(self, items, completions):
        rewards = torch.tensor([c.rewards["total"] for c in completions])
        result = filter_groups(rewards, [c.group for c in completions])
        keep = set(result.kept_groups)
        return [i for i in items if i.group in keep], [c for c in completions if c.group in keep]

    def train_step(self) -> dict[str, Any]:
        step = Timer()
        batch = self._rollouts()
        completions, timings = batch.completions, batch.timings
        rollout = rollout_metrics(completions, self.cfg.rollout.max_tokens, self.weights)
        rollout["rollout/engine_threads"] = float(self.engine_threads)
        samples = self._samples(batch.items, completions)
        staleness = (self.step - 1) - min(c.weight_version for c in completions)  # learners hold version step-1

        with timer() as separate_reference:
            # The separate reference shares the rollout worker's cores: the next generation
            # starts once it is done with this batch, never beside it.
            if self.workers.reference is not None:
                rollout["reference/scored_ahead"] = self._reference_logprobs(samples, completions, batch.reference)
        next_batch = self._prefetch_next()
        self._rollout_sleep()
        learners_start = time.time()
        with timer() as logprob:
            if self.algo.needs_reference and self.workers.reference is None:
                rollout["reference/scored_ahead"] = self._reference_logprobs(samples, completions, batch.reference)
            if self.off_policy_steps:
                self._behaviour_as_old(samples)
            elif self.algo.ppo_epochs > 1:
                for sample, old in zip(samples, self.workers.learners.logprobs(samples, "policy")):
                    sample.old_logprobs = old

        with timer() as learn:
            update = {}
            for _ in range(self.algo.ppo_epochs):
                update = self.workers.learners.train_rl(samples, self.algo.loss)
        self._check_update(update)
        overlap_s = self._finish_prefetch(next_batch, learners_start, time.time())

        self._rollout_wake()
        sync = self._sync_weights()
        step.stop()
        times = StepTimes(
            generate_s=timings.get("generate_s", 0.0),
            reward_s=timings.get("reward_s", 0.0),
            logprob_s=separate_reference.seconds + logprob.seconds,
            update_s=learn.seconds,
            sync_s=sync["sync_s"],
            step_s=step.seconds,
            overlap_s=overlap_s,
        )
        counts = RolloutCounts(
            generated_tokens=sum(len(c.token_ids) for c in completions),
            learner_tokens=sum(len(s.completion_ids) for s in samples),
            samples=len(samples),
            dynamic_sampling=batch.dynamic,
        )
        return rl_step_row(
            rollout, update, times, counts, sync_bytes=sync["bytes"], ppo_epochs=self.algo.ppo_epochs, weight_version=self.step, staleness=staleness
        )

    def _finish_prefetch(self, next_batch: Prefetch | None, learners_start: float, learners_end: float) -> float:
        """Wait for the prefetched generation (the weight push must come after it) and keep it
        for the next step; the seconds it ran alongside the learners."""
        if next_batch is None:
            return 0.0
        next_batch.pending.result()
        self.prefetch = next_batch
        return max(0.0, min(learners_end, next_batch.pending.finished_at) - max(learners_start, next_batch.pending.started_at))

    def _reference_logprobs(self, samples: list[TrainSample], completions: list[Completion], scoring: Any) -> float:
        """Each sample's reference log-probs: from the separate reference's scoring of the
        prefetched round (`scoring`, waited for here) where it has them, else computed now, by the
        separate reference or the learners. `samples` are `completions`' in order. Returns the
        share that was scored ahead."""
        scored = self.workers.reference.result(scoring) if scoring is not None else {}
        missing = []
        for sample, completion in zip(samples, completions):
            ref = scored.get((completion.group, completion.sample))
            sample.ref_logprobs = ref if ref is not None and len(ref) == len(sample.completion_ids) else None
            if sample.ref_logprobs is None:
                missing.append(sample)
        if missing:
            scores = self.workers.reference.logprobs(missing) if self.workers.reference else self.workers.learners.logprobs(missing, "ref")
            for sample, ref in zip(missing, scores):
                sample.ref_logprobs = ref
        return 1.0 - len(missing) / max(1, len(samples))

    def _behaviour_as_old(self, samples: list[TrainSample]) -> None:
        """Old log-probs = the engine's (the policy that sampled): the ratio is against the
        behaviour policy (see the module docstring)."""
        missing = sum(s.rollout_logprobs is None for s in samples)
        if missing:
            raise RuntimeError(f"trainer.off_policy_steps needs the engine's log-probs of every sampled token; {missing} completions came without them")
        for sample in samples:
            sample.old_logprobs = sample.rollout_logprobs

    @property
    def _shares_gpus(self) -> bool:
        """Colocated on GPUs: vLLM frees its memory while the learners update."""
        return bool(self.cfg.cluster.colocate and self.cfg.rollout.gpus_per_worker > 0)

    def _rollout_sleep(self) -> None:
        if self._shares_gpus:
            self.workers.rollout.sleep()

    def _rollout_wake(self) -> None:
        if self._shares_gpus:
            self.workers.rollout.wake()

    def _samples(self, items: list[PromptItem], completions: list[Completion]) -> list[TrainSample]:
        by_group = {item.group: item for item in items}
        rewards = torch.tensor([c.rewards["total"] for c in completions], dtype=torch.float32)
        groups = [c.group for c in completions]
        advantages = compute_advantages(self.algo.advantage, rewards, groups)
        return [
            TrainSample(by_group[c.group], c.token_ids, float(a), rollout_logprobs=c.logprobs if len(c.logprobs) == len(c.token_ids) else None)
            for c, a in zip(completions, advantages)
        ]

    def _check_update(self, update: dict[str, float]) -> None:
        if update.get("skipped_update", 0.0) > 0:
            self.bad_updates += 1
            log.warning("step %d: non-finite loss, update skipped (%d in a row)", self.step, self.bad_updates)
        else:
            self.bad_updates = 0

    def _stop_if_diverged(self) -> None:
        if self.bad_updates < self.cfg.learner.max_bad_updates:
            return
        self.save_checkpoint()
        raise TrainingStopped(
            f"{self.bad_updates} updates in a row had a non-finite loss (last at step {self.step}); "
            f"stopped after saving {ckpt.latest(self.run_dir)}. Lower algo.lr or check the rewards."
        )

    def _sync_weights(self) -> dict[str, float]:
        """The one weight-sync call of a step (and of a resume): the new weights into every engine."""
        try:
            stats = self.weight_sync.push(self.step)
        except NonFiniteWeights as err:
            raise TrainingStopped(
                f"step {self.step}: the update made the weights non-finite, so they were not synced or saved; "
                f"the last good checkpoint is {ckpt.latest(self.run_dir)} (resume from it with a lower algo.lr). Cause: {err}"
            ) from None
        return {"bytes": stats.bytes, "sync_s": stats.seconds}

    # ---- checkpoints and evaluation ------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """As `LearnerStage.save_checkpoint`, recording the data position from before a
        prefetched batch (a resumed run generates it again rather than skip its records)."""
        if self.prefetch is None:
            return super().save_checkpoint()
        ahead = self.sampler.state()
        self.sampler.restore(self.prefetch.sampler_before)
        try:
            return super().save_checkpoint()
        finally:
            self.sampler.restore(ahead)

    def evaluate(self) -> dict[str, float]:
        from rft.eval.runner import evaluate_splits

        return evaluate_splits(self.cfg, self.task, self.processor, self.workers.rollout, self.data, self.run_dir / "eval" / f"step_{self.step}")
