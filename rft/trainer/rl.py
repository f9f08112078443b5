"""The GRPO controller (`stage=rl`, `stage=zero`, and stage 2 of `reason_rft`).

One step: take `trainer.prompts_per_step` records; the rollout actors generate
`algo.num_generations` completions each and score them; group advantages are computed by
explicit group id; reference (and, with several PPO epochs, old) log-probs come from the
learners; the learners update; the new weights are pushed to the rollout actors. The controller
owns this loop and nothing else.

    trainer = RLTrainer(cfg, run_dir, model_path, data)
    trainer.setup(); result = trainer.train(); trainer.cleanup()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from rft.algo import AlgoSettings, compute_advantages, filter_groups
from rft.data.splits import DataSplits
from rft.errors import UserError
from rft.placement.workers import engine_settings, learner_settings, start_workers
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

    # ---- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resume_from = self._resume_point()
        self.workers = start_workers(
            self.cfg,
            learner=learner_settings(self.cfg, self.model_path, sft=False, total_steps=self.cfg.trainer.max_steps, need_reference=self.algo.needs_reference),
            engine=engine_settings(self.cfg, self.model_path, seed=self.cfg.trainer.seed, weight_sync=resolve_mode(self.cfg)),
        )
        self.weight_sync = WeightSyncer(resolve_mode(self.cfg), self.workers.learners, self.workers.rollout, run_sync_dir(self.run_dir))
        self.weight_sync.open()
        if resume_from is not None:
            self._resume(resume_from)
        self.tracker = make_tracker(self.cfg, self.run_dir, self.run_name, self.parent_run_id)

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
                last = self.train_step()
                self.tracker.log(self.step, last)
                self._stop_if_diverged()
                bar.update(1, reward=last["reward/mean"], step_s=last["timing/step_s"])
                if self.step % self.cfg.trainer.save_every == 0 or self.step == self.cfg.trainer.max_steps:
                    self.save_checkpoint()
                if self.cfg.trainer.eval_every and self.step % self.cfg.trainer.eval_every == 0:
                    self.tracker.log(self.step, self.evaluate())
        return last

    def cleanup(self, status: str = "FINISHED") -> None:
        super().cleanup(status)
        if self.weight_sync is not None:
            self.weight_sync.close()

    # ---- one step -----------------------------------------------------------------------------
    def _generate(self, count: int, group_offset: int) -> tuple[list[PromptItem], list[Completion], dict[str, float]]:
        records = self.sampler.take(count)
        items = prompt_items(self.task, self.processor, records, prompt_style(self.cfg.stage.name, Purpose.train, self.cfg), self.cfg.model)
        for item in items:
            item.group += group_offset
        self.sampling.seed = self.cfg.trainer.seed * 100003 + self.step * 101 + group_offset
        completions, timings = self.workers.rollout.generate(items, self.sampling)
        return items, completions, timings

    def _rollouts(self) -> tuple[list[PromptItem], list[Completion], dict[str, float], dict[str, float]]:
        """Completions for this step, the rollout's times, and with dynamic sampling its counts
        (rounds, kept groups): zero-variance groups are dropped and the batch is refilled with
        new prompts for up to `max_refill_rounds` rounds."""
        want = self.cfg.trainer.prompts_per_step
        items, completions, timings = self._generate(want, 0)
        if not self.algo.dynamic_sampling:
            return items, completions, timings, {}
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
            return items, completions, timings, counts
        return kept_items, kept, timings, counts

    def _keep_informative(self, items, completions):
        rewards = torch.tensor([c.rewards["total"] for c in completions])
        result = filter_groups(rewards, [c.group for c in completions])
        keep = set(result.kept_groups)
        return [i for i in items if i.group in keep], [c for c in completions if c.group in keep]

    def train_step(self) -> dict[str, Any]:
        step = Timer()
        items, completions, timings, dynamic = self._rollouts()
        rollout = rollout_metrics(completions, self.cfg.rollout.max_tokens, self.weights)
        samples = self._samples(items, completions)

        self._rollout_sleep()
        with timer() as logprob:
            if self.algo.needs_reference:
                for sample, ref in zip(samples, self.workers.learners.logprobs(samples, "ref")):
                    sample.ref_logprobs = ref
            if self.algo.ppo_epochs > 1:
                for sample, old in zip(samples, self.workers.learners.logprobs(samples, "policy")):
                    sample.old_logprobs = old

        with timer() as learn:
            update = {}
            for _ in range(self.algo.ppo_epochs):
                update = self.workers.learners.train_rl(samples, self.algo.loss)
        self._check_update(update)

        self._rollout_wake()
        sync = self._sync_weights()
        step.stop()
        times = StepTimes(
            generate_s=timings.get("generate_s", 0.0),
            reward_s=timings.get("reward_s", 0.0),
            logprob_s=logprob.seconds,
            update_s=learn.seconds,
            sync_s=sync["sync_s"],
            step_s=step.seconds,
        )
        counts = RolloutCounts(
            generated_tokens=sum(len(c.token_ids) for c in completions),
            learner_tokens=sum(len(s.completion_ids) for s in samples),
            samples=len(samples),
            dynamic_sampling=dynamic,
        )
        return rl_step_row(rollout, update, times, counts, sync_bytes=sync["bytes"], ppo_epochs=self.algo.ppo_epochs, weight_version=self.step)

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
    def evaluate(self) -> dict[str, float]:
        from rft.eval.runner import evaluate_splits

        return evaluate_splits(self.cfg, self.task, self.processor, self.workers.rollout, self.data, self.run_dir / "eval" / f"step_{self.step}")
