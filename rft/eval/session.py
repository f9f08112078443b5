"""`EvalSession`: rollout actors started once and pointed at one checkpoint after another.

Starting an engine costs tens of seconds (vLLM on CPU) to minutes (a large model on GPU), and
swapping weights costs about the time to read them, so the session keeps its actors: a checkpoint
with the same architecture is loaded with `RolloutGroup.load_weights` (vLLM's in-place reload, which
also drops the encoder and prefix caches); another architecture, or other engine settings, restart
the actors. A session can outlive one evaluation (tests share one across evaluations); whoever
created it closes it.
"""

from __future__ import annotations

import dataclasses
import logging

from omegaconf import DictConfig

from rft.eval.runner import generate_texts
from rft.eval.targets import Target, arch_key

log = logging.getLogger(__name__)


def engine_key(cfg: DictConfig) -> tuple:
    """What the actors were built with, apart from the model folder."""
    from rft.placement.workers import engine_settings

    settings = dataclasses.asdict(engine_settings(cfg, "", seed=cfg.trainer.seed))
    settings.pop("model_path")
    rollout = (cfg.rollout.num_workers, cfg.rollout.cpus_per_worker, cfg.rollout.gpus_per_worker)
    return tuple(sorted(settings.items())) + rollout


class EvalSession:
    def __init__(self) -> None:
        self.workers = None
        self.processor = None
        self.folder: str | None = None  # the weights the actors hold now
        self.version = 0
        self.starts = 0  # engine starts, for tests and logs
        self._key: tuple | None = None

    def use(self, target: Target, cfg: DictConfig) -> None:
        """Make the actors serve `target`'s weights."""
        key = (engine_key(cfg), arch_key(target.folder))
        if self.workers is None or key != self._key:
            self._start(target.folder, cfg)
            self._key = key
        elif self.folder != target.folder:
            self.version += 1
            seconds = self.workers.rollout.load_weights(target.folder, self.version)
            log.info("loaded %s into the rollout actors in %.1fs", target.folder, seconds)
        self.folder = target.folder

    def _start(self, folder: str, cfg: DictConfig) -> None:
        from rft.models.loading import load_processor
        from rft.placement.workers import engine_settings, start_workers

        self.close()
        log.info("starting %d %s rollout actor(s) on %s", cfg.rollout.num_workers, cfg.rollout.engine, folder)
        self.processor = load_processor(folder, min_pixels=cfg.model.min_pixels, max_pixels=cfg.model.max_pixels)
        self.workers = start_workers(cfg, learner=None, engine=engine_settings(cfg, folder, seed=cfg.trainer.seed))
        self.starts += 1
        self.version = 0

    def generate(self, items, sampling) -> list[str]:
        return generate_texts(self.workers.rollout, items, sampling)

    def close(self) -> None:
        if self.workers is not None:
            self.workers.shutdown()
        self.workers, self.folder, self._key = None, None, None
