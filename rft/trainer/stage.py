"""One lifecycle for every stage: the `Stage` protocol and `run_stage`, the runner that owns a
run's status, cleanup, report and `result.json`.

A stage is set up, trained, saved and cleaned up; `run_stage` decides the status once:
FINISHED when `train` and `save` returned, KILLED on Ctrl-C (KeyboardInterrupt), FAILED on any
other exception (which propagates after cleanup). Cleanup always runs, with that status (the
trackers record it); the report is written either way (it never fails a run); `result.json`
only for a finished run. SFT, RL and the Reason-RFT chain all run through it.

The optimised metric (`trainer.optimized_metric` and `trainer.optimized_direction`; null: the
stage's own, `DEFAULT_TARGETS`) is looked up in the result and recorded with its direction, so a
sweep across stages never mixes a loss to minimise with a reward to maximise unknowingly.

`LearnerStage` holds what the SFT and RL trainers share: the processor and task, resuming from
the latest checkpoint, writing checkpoints, and cleanup.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig

from rft.tracking.result import Direction, Optimized, RunResult, write_result
from rft.trainer import checkpoint as ckpt

log = logging.getLogger(__name__)


class RunStatus(StrEnum):
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


class Stage(Protocol):
    name: str  # as recorded in result.json: ans_sft, cot_sft, rl, reason_rft
    run_dir: Path

    def setup(self) -> None:
        """Start what the stage needs (workers, trackers); resume if there is a checkpoint."""

    def train(self) -> RunResult:
        """Train to the end; the result's metrics, evaluations and nested stages (the runner fills
        in the checkpoint, status and optimised metric)."""

    def save(self) -> Path:
        """The final checkpoint folder (written now if the last step has none)."""

    def cleanup(self, status: RunStatus) -> None:
        """Release everything `setup` started; close trackers with `status`. Safe after a failed setup."""


# stage -> (metric names tried in order, direction) when `trainer.optimized_metric` is null.
DEFAULT_TARGETS: dict[str, tuple[tuple[str, ...], Direction]] = {
    "ans_sft": (("eval/loss", "loss"), Direction.minimize),  # the held-out loss; the last training loss without one
    "cot_sft": (("eval/loss", "loss"), Direction.minimize),
    "rl": (("reward/mean",), Direction.maximize),
    "zero": (("reward/mean",), Direction.maximize),
    "reason_rft": (("eval/id/score", "reward/mean"), Direction.maximize),  # ID accuracy after RL
}


def optimized_target(cfg: DictConfig, stage: str) -> tuple[tuple[str, ...], Direction]:
    """The metric names to try, in order, and the direction, for `stage` under `cfg.trainer`."""
    name = cfg.trainer.get("optimized_metric")
    if name:
        return (str(name),), Direction(str(cfg.trainer.optimized_direction))
    return DEFAULT_TARGETS[str(stage)]


def pick_optimized(result: RunResult, names: tuple[str, ...], direction: Direction) -> Optimized:
    """The first of `names` the result reports; the first name with no value when none is."""
    for name in names:
        value = result.lookup(name)
        if value is not None:
            return Optimized(name, direction, value)
    log.warning("the optimised metric %s is not in the %s result", " / ".join(names), result.stage)
    return Optimized(names[0], direction, None)


def run_stage(stage: Stage, target: tuple[tuple[str, ...], Direction]) -> RunResult:
    """Run `stage` through its lifecycle; write its report and `<run_dir>/result.json`."""
    status = RunStatus.FAILED
    try:
        stage.setup()
        result = stage.train()
        result.checkpoint = str(stage.save())
        status = RunStatus.FINISHED
    except KeyboardInterrupt:
        status = RunStatus.KILLED
        raise
    finally:
        try:
            stage.cleanup(status)
        finally:
            write_report(stage.run_dir)
    result.status = str(status)
    result.optimized = pick_optimized(result, *target)
    write_result(stage.run_dir, result)
    return result


def write_report(run_dir: Path) -> None:
    from rft.tracking.report import read_metrics
    from rft.tracking.report import write_report as write

    try:
        metrics = Path(run_dir) / "metrics.jsonl"
        if not metrics.exists() or not read_metrics(metrics):
            return  # no step was logged (the stage failed early, or only runs others: reason_rft)
        write(run_dir)
    except Exception as err:  # a report must never fail (or mask the failure of) a run
        log.warning("could not write the report for %s: %s", run_dir, err)


class LearnerStage:
    """Shared by the SFT and RL trainers: processor and task, resume, checkpoints, cleanup."""

    name: str = ""

    def __init__(self, cfg: DictConfig, run_dir: Path, model_path: str, *, run_name: str, parent_run_id: str | None):
        from rft.models.loading import load_processor
        from rft.tasks.prompting import task_for

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.model_path = model_path
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.task = task_for(cfg)
        self.processor = load_processor(model_path, min_pixels=cfg.model.min_pixels, max_pixels=cfg.model.max_pixels)
        self.step = 0
        self.resumed = False  # from a checkpoint of this run folder
        self.workers: Any = None
        self.tracker: Any = None
        self.sampler: Any = None  # an EpochSampler, set by the subclass

    def _resume_point(self) -> Path | None:
        """The latest checkpoint of this run folder when `trainer.resume=auto`."""
        return ckpt.latest(self.run_dir) if str(self.cfg.trainer.resume) == "auto" else None

    def _restore(self, checkpoint: Path) -> None:
        """Learner state, step, data position and RNG states (controller and learner ranks) from
        `checkpoint`: a resumed run continues as the uninterrupted one would have."""
        state = ckpt.read_state(checkpoint)
        self.workers.learners.load(str(checkpoint))
        self.step = int(state["step"])
        self.sampler.restore(state["sampler"])
        ckpt.set_rng_state(state["rng"])
        if "learner_rng" in state:  # absent from checkpoints written before it was saved
            ckpt.set_learner_rng_states(self.workers.learners, state["learner_rng"])
        self.resumed = True

    def tracker_resume_step(self) -> int:
        """For `make_tracker(resume_step=...)`: an earlier attempt's records up to the checkpoint
        resumed from are kept and the steps after it are dropped, as they are redone (all of them,
        -1, when the run starts over), so every step is recorded once."""
        return self.step if self.resumed else -1

    def save_checkpoint(self) -> Path:
        staging = ckpt.staging_dir(self.run_dir, self.step)
        self.workers.learners.save(str(staging))
        state = {
            "step": self.step,
            "sampler": self.sampler.state(),
            "rng": ckpt.rng_state(),
            "learner_rng": self.workers.learners.run_on_ranks(ckpt.rng_state),
            "stage": self.name,
            "model_path": self.model_path,
        }
        return ckpt.finalize(self.run_dir, self.step, state, self.cfg.trainer.keep_last)

    def save(self) -> Path:
        latest = ckpt.latest(self.run_dir)
        if latest is not None and ckpt.read_state(latest)["step"] == self.step:
            return latest
        return self.save_checkpoint()

    def cleanup(self, status: str = "FINISHED") -> None:
        if self.tracker is not None:
            self.tracker.close(str(status))
        if self.workers is not None:
            self.workers.shutdown()
