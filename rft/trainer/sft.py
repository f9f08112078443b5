"""Supervised fine-tuning (`stage=ans_sft`, `stage=cot_sft`, stage 1 of `reason_rft`).

Runs on the same DeepSpeed learner ranks as RL; the loss is token-mean cross-entropy on the
assistant tokens only (the prompt and its image tokens are context). Vision tower and projector
are frozen by default (`model.freeze_vision`). A held-out slice gives an evaluation loss.
A record the stage cannot use (no chain of thought for COT-SFT) is counted and skipped; above
`data.max_bad_fraction` the run stops and names a few of them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from omegaconf import DictConfig

from rft.data.records import Record
from rft.errors import UserError
from rft.placement.workers import learner_settings, start_workers
from rft.tasks import PromptStyle
from rft.tasks.prompting import Purpose, prompt_items, prompt_style
from rft.tracking import make_tracker
from rft.tracking.result import RunResult
from rft.tracking.stats import timer
from rft.trainer.metrics import sft_step_row
from rft.trainer.sampler import EpochSampler
from rft.trainer.stage import LearnerStage
from rft.types import TrainSample

log = logging.getLogger(__name__)
END_OF_TURN = "<|im_end|>"


class SFTDataError(UserError, ValueError):
    """Too many records cannot be used for this SFT stage."""


def usable_records(task, records: list[Record], style: PromptStyle, max_bad_fraction: float) -> tuple[list[Record], dict[str, int]]:
    """Records that have an SFT target for `style`; the rest are counted by reason."""
    kept, skipped, examples = [], {}, []
    for record in records:
        try:
            task.sft_target(record, style)
            kept.append(record)
        except (ValueError, KeyError) as err:
            reason = "missing chain of thought" if style == "cot_sft" and not record.cot else type(err).__name__
            skipped[reason] = skipped.get(reason, 0) + 1
            if len(examples) < 3:
                examples.append(f"{record.id}: {err}")
    bad = sum(skipped.values())
    if records and bad / len(records) > max_bad_fraction:
        raise SFTDataError(
            f"{bad} of {len(records)} records have no {style} target (over data.max_bad_fraction={max_bad_fraction}); e.g. " + "; ".join(examples)
        )
    if bad:
        log.warning("%s: skipped %d of %d records: %s", style, bad, len(records), skipped)
    return kept, skipped


class SFTTrainer(LearnerStage):
    """A `Stage` (`rft.trainer.stage`): setup, train, save, cleanup."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        model_path: str,
        records: list[Record],
        style: PromptStyle,
        *,
        run_name: str = "sft",
        parent_run_id: str | None = None,
    ):
        super().__init__(cfg, run_dir, model_path, run_name=run_name, parent_run_id=parent_run_id)
        self.style = style
        self.name = str(style)
        usable, self.skipped = usable_records(self.task, records, style, cfg.data.max_bad_fraction)
        n_eval = int(len(usable) * cfg.sft.eval_fraction) if len(usable) > 20 else 0
        self.eval_records = usable[:n_eval]
        self.train_records = usable[n_eval:]
        self.sampler = EpochSampler(self.train_records, seed=cfg.trainer.seed)
        self.total_steps = self._total_steps()

    def _total_steps(self) -> int:
        if self.cfg.sft.max_steps is not None:
            return int(self.cfg.sft.max_steps)
        return max(1, self.cfg.sft.epochs * math.ceil(len(self.train_records) / self.cfg.sft.batch_size))

    def setup(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resume_from = self._resume_point()
        settings = learner_settings(self.cfg, self.model_path, sft=True, total_steps=self.total_steps, need_reference=False)
        self.workers = start_workers(self.cfg, learner=settings, engine=None)
        if resume_from is not None:
            self._restore(resume_from)
            log.info("resumed SFT from %s at step %d", resume_from, self.step)
        self.tracker = make_tracker(self.cfg, self.run_dir, self.run_name, self.parent_run_id, resume_step=self.tracker_resume_step())

    def prompt_style(self) -> PromptStyle:
        """COT-SFT trains on `sft.prompt` (the RL prompt by default); ANS-SFT on its own prompt."""
        return prompt_style(self.style, Purpose.train, self.cfg)

    def samples(self, records: list[Record]) -> list[TrainSample]:
        tokenizer = self.processor.tokenizer
        items = prompt_items(self.task, self.processor, records, self.prompt_style(), self.cfg.model)
        out = []
        for item, record in zip(items, records):
            target = self.task.sft_target(record, self.style) + END_OF_TURN
            out.append(TrainSample(item, tokenizer.encode(target, add_special_tokens=False)))
        return out

    def train(self) -> RunResult:
        return RunResult(self.name, self._train_steps())

    def _train_steps(self) -> dict[str, float]:
        """Step to `total_steps`; the last step's row."""
        from rft.tracking.progress import progress_bar

        metrics: dict[str, float] = {}
        with progress_bar(total=self.total_steps, initial=self.step, description=self.run_name, enabled=self.cfg.trainer.progress) as bar:
            while self.step < self.total_steps:
                self.step += 1
                metrics = self.train_step()
                if self.eval_records and (self.step % max(1, self.cfg.trainer.save_every) == 0 or self.step == self.total_steps):
                    metrics["eval/loss"] = self.workers.learners.eval_sft_loss(self.samples(self.eval_records))
                self.tracker.log(self.step, metrics)
                bar.update(1, loss=metrics["loss"], step_s=metrics["timing/step_s"])
                if self.step % self.cfg.trainer.save_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint()
        return metrics

    def train_step(self) -> dict[str, float]:
        with timer() as step:
            samples = self.samples(self.sampler.take(self.cfg.sft.batch_size))
            update = self.workers.learners.train_sft(samples)
        return sft_step_row(update, step.seconds, self.sampler.epoch)
