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
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from rft.algo import AlgoSettings, compute_advantages, filter_groups
from rft.errors import UserError
from rft.types import TrainSample
from rft.types import Completion, PromptItem, SamplingSettings
from rft.trainer import checkpoint as ckpt
from rft.config import ResumeMode
from rft.data.splits import DataSplits
from rft.tasks.prompting import Purpose, prompt_items, prompt_style, task_for
from rft.tracking import make_tracker
from rft.trainer.sampler import EpochSampler
from rft.placement.workers import Workers, engine_settings, learner_settings, start_workers
from rft.weights.errors import NonFiniteWeights
from rft.weights.folder import run_sync_dir
from rft.weights.modes import resolve_mode
from rft.weights.sync import WeightSyncer

log = logging.getLogger(__name__)


class TrainingStopped(UserError, RuntimeError):
    """The run stopped on purpose (e.g. repeated non-finite updates); a checkpoint was written."""


def primary_reward(weights: dict[str, float]) -> str | None:
    """The task-score reward reported as `accuracy/mean` (the first one that is not `format`)."""
    return next((name for name in weights if name != "format"), None)


def rollout_metrics(completions: list[Completion], max_tokens: int, weights: dict[str, float]) -> dict[str, float]:
    totals = np.array([c.rewards.get("total", 0.0) for c in completions])
    lengths = np.array([len(c.token_ids) for c in completions])
    out = {
        "reward/mean": float(totals.mean()),
        "reward/std": float(totals.std()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "response_length/clip_rate": float(np.mean([c.finish_reason == "length" for c in completions])),
    }
    for name in weights:
        out[f"reward/{name}/mean"] = float(np.mean([c.rewards.get(name, 0.0) for c in completions]))
    main = primary_reward(weights)
    out["accuracy/mean"] = out[f"reward/{main}/mean"] if main else float("nan")
    out["format/mean"] = out.get("reward/format/mean", float("nan"))
    return out


class RLTrainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, model_path: str, data: DataSplits, *, run_name: str = "rl", parent_run_id: str | None = None):
        from rft.models.loading import load_processor
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.model_path = model_path
        self.data = data
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.task = task_for(cfg)
        self.algo = AlgoSettings.from_config(cfg.algo, max_completion_len=cfg.rollout.max_tokens)
        self.weights = dict(cfg.reward.weights)
        self.processor = load_processor(model_path, min_pixels=cfg.model.min_pixels, max_pixels=cfg.model.max_pixels)
        self.sampler = EpochSampler(data.train, seed=cfg.trainer.seed)
        self.sampling = SamplingSettings(
            n=cfg.algo.num_generations,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=cfg.rollout.top_k,
            max_tokens=cfg.rollout.max_tokens,
        )
        self.step = 0
        self.bad_updates = 0
        self.workers: Workers | None = None
        self.tracker = None
        self.weight_sync: WeightSyncer | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def setup(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resume_from = ckpt.latest(self.run_dir) if self.cfg.trainer.resume == ResumeMode.auto else None
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
        state = ckpt.read_state(checkpoint)
        self.workers.learners.load(str(checkpoint))
        self.step = int(state["step"])
        self.sampler.restore(state["sampler"])
        ckpt.set_rng_state(state["rng"])
        self._sync_weights()
        log.info("resumed from %s at step %d", checkpoint, self.step)

    def train(self) -> dict[str, float]:
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
        if self.tracker is not None:
            self.tracker.close(status)
        if self.workers is not None:
            self.workers.shutdown()
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

    def _rollouts(self) -> tuple[list[PromptItem], list[Completion], dict[str, float]]:
        """Completions for this step; with dynamic sampling, zero-variance groups are dropped and
        the batch is refilled with new prompts for up to `max_refill_rounds` rounds."""
        want = self.cfg.trainer.prompts_per_step
        items, completions, timings = self._generate(want, 0)
        if not self.algo.dynamic_sampling:
            return items, completions, timings
        all_completions = list(completions)  # for metrics: everything that was generated
        kept_items, kept = self._keep_informative(items, completions)
        rounds = 1
        while len(kept_items) < want and rounds < self.algo.max_refill_rounds:
            more_items, more, more_timings = self._generate(want - len(kept_items), group_offset=rounds * want)
            all_completions += more
            for key, value in more_timings.items():
                timings[key] = timings.get(key, 0.0) + value
            new_items, new_kept = self._keep_informative(more_items, more)
            kept_items, kept = kept_items + new_items, kept + new_kept
            rounds += 1
        timings["dynamic_sampling_rounds"] = float(rounds)
        timings["dynamic_sampling_kept_groups"] = float(len(kept_items))
        if not kept_items:  # nothing informative: train on the first batch (zero advantages)
            return items, completions, timings
        return kept_items, kept, timings

    def _keep_informative(self, items, completions):
        rewards = torch.tensor([c.rewards["total"] for c in completions])
        result = filter_groups(rewards, [c.group for c in completions])
        keep = set(result.kept_groups)
        return [i for i in items if i.group in keep], [c for c in completions if c.group in keep]

    def train_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        metrics: dict[str, Any] = {}
        items, completions, timings = self._rollouts()
        metrics.update(rollout_metrics(completions, self.cfg.rollout.max_tokens, self.weights))
        samples = self._samples(items, completions)

        self._rollout_sleep()
        t0 = time.perf_counter()
        if self.algo.needs_reference:
            for sample, ref in zip(samples, self.workers.learners.logprobs(samples, "ref")):
                sample.ref_logprobs = ref
        if self.algo.ppo_epochs > 1:
            for sample, old in zip(samples, self.workers.learners.logprobs(samples, "policy")):
                sample.old_logprobs = old
        logprob_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        update = {}
        for _ in range(self.algo.ppo_epochs):
            update = self.workers.learners.train_rl(samples, self.algo.loss)
        update_s = time.perf_counter() - t0
        self._check_update(update)

        self._rollout_wake()
        sync = self._sync_weights()
        step_s = time.perf_counter() - start
        gen_tokens = sum(len(c.token_ids) for c in completions)
        learn_tokens = sum(len(s.completion_ids) for s in samples)
        metrics.update(
            {
                "kl": update.get("kl", 0.0),
                "entropy": update.get("entropy", float("nan")),
                "clip_frac": update.get("clip_frac", 0.0),
                "grad_norm": update.get("grad_norm", float("nan")),
                "lr": update.get("lr", float("nan")),
                "loss": update.get("loss", float("nan")),
                "skipped_update": update.get("skipped_update", 0.0),
                "rollout/logprob_gap": update.get("rollout_logprob_gap", float("nan")),
                "timing/generate_s": timings.get("generate_s", 0.0),
                "timing/reward_s": timings.get("reward_s", 0.0),
                "timing/logprob_s": logprob_s,
                "timing/update_s": update_s,
                "timing/sync_s": sync["sync_s"],
                "timing/step_s": step_s,
                "rollout/tokens_per_s": gen_tokens / max(timings.get("generate_s", 0.0), 1e-9),
                "learner/tokens_per_s": learn_tokens * self.algo.ppo_epochs / max(update_s, 1e-9),
                "memory/learner_peak_rss_gb": update.get("peak_rss_gb", float("nan")),
                "sync/mb_per_s": sync["bytes"] / 1e6 / max(sync["sync_s"], 1e-9),
                "weight_version": float(self.step),
                "samples": float(len(samples)),
            }
        )
        for key in ("dynamic_sampling_rounds", "dynamic_sampling_kept_groups"):
            if key in timings:
                metrics[f"dapo/{key}"] = timings[key]
        return metrics

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
        staging = ckpt.staging_dir(self.run_dir, self.step)
        self.workers.learners.save(str(staging))
        state = {"step": self.step, "sampler": self.sampler.state(), "rng": ckpt.rng_state(), "stage": "rl", "model_path": self.model_path}
        return ckpt.finalize(self.run_dir, self.step, state, self.cfg.trainer.keep_last)

    def evaluate(self) -> dict[str, float]:
        from rft.eval.runner import evaluate_splits

        return evaluate_splits(self.cfg, self.task, self.processor, self.workers.rollout, self.data, self.run_dir / "eval" / f"step_{self.step}")
