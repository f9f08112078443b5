"""`LearnerGroup`: the DeepSpeed ranks as Ray actors in placement-group bundles, driven together.

The controller hands it whole batches; the group shards them over ranks (contiguous slices, so a
group's completions mostly stay on one rank and share prompt features), calls every rank, and
reassembles results in the original order.

A rank whose process dies (killed, out of memory) leaves the others waiting in a collective, and
DeepSpeed cannot take a new rank into a running group. Every call therefore waits for the ranks'
answers one at a time; when one of them is a dead actor, the group kills the survivors and raises
`LearnerLost`. `restart()` then starts the whole group afresh in the same placement bundles (the
controller reloads a checkpoint into it: `rft.trainer.rl`).
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rft.algo.config import LossSettings
from rft.learner.worker import LearnerSettings, LearnerWorker
from rft.tracking.stats import LEARNER_STATS, merge_stats
from rft.types import TrainSample

log = logging.getLogger(__name__)
_DEAD = (ActorDiedError, ActorUnavailableError, RayActorError)


class LearnerLost(RuntimeError):
    """A learner rank's process died during a call; the group's survivors were stopped."""


def shard_bounds(n: int, world_size: int) -> list[tuple[int, int]]:
    if n < world_size:
        raise ValueError(f"{n} samples cannot be shared by {world_size} learner ranks; give each rank at least one")
    return [(r * n // world_size, (r + 1) * n // world_size) for r in range(world_size)]


class LearnerGroup:
    def __init__(
        self,
        settings: LearnerSettings,
        num_workers: int,
        placement_group,
        bundle_indices: list[int],
        cpus: float,
        gpus: float,
        env_vars: dict[str, str] | None = None,
    ):
        self.settings = settings
        self.world_size = num_workers
        self._options = dict(
            placement_group=placement_group,
            bundle_indices=bundle_indices,
            cpus=cpus,
            gpus=gpus,
            env={"DS_ACCELERATOR": "cuda" if gpus > 0 else "cpu", **(env_vars or {})},
        )
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        actor_cls = ray.remote(LearnerWorker)
        opts = self._options
        self.workers = [
            actor_cls.options(
                num_cpus=opts["cpus"],
                num_gpus=opts["gpus"],
                scheduling_strategy=PlacementGroupSchedulingStrategy(opts["placement_group"], placement_group_bundle_index=opts["bundle_indices"][rank]),
                runtime_env={"env_vars": opts["env"]},
            ).remote(rank, self.world_size, self.settings)
            for rank in range(self.world_size)
        ]
        master_addr, master_port = ray.get(self.workers[0].address.remote())
        self.rank0_node = master_addr
        self.info = ray.get([w.setup.remote(master_addr, master_port) for w in self.workers])

    def restart(self) -> None:
        """Stop every rank and start the group afresh (initial weights, new optimizer) in the same bundles."""
        self.shutdown()
        self.restarts += 1
        self._start()

    def _gather(self, refs: list[Any]) -> list[Any]:
        """`ray.get(refs)`, but a dead rank is noticed at once: a plain `ray.get` in rank order
        would wait on a survivor stuck in a collective with the dead one."""
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                ray.get(ready)
        except _DEAD as err:
            self.shutdown()
            raise LearnerLost(f"a learner rank died: {err}") from err
        except Exception:
            if self._some_rank_died():
                self.shutdown()
                raise LearnerLost("a learner rank died (the others failed in a collective with it)") from None
            raise
        return ray.get(refs)

    def run_on_ranks(self, fn, per_rank_args: list[tuple] | None = None) -> list[Any]:
        """`fn(worker, *args)` on every rank (Ray's `__ray_call__`), waited for like every call."""
        args = per_rank_args or [()] * self.world_size
        return self._gather([w.__ray_call__.remote(fn, *a) for w, a in zip(self.workers, args)])

    def _some_rank_died(self) -> bool:
        for worker in self.workers:
            try:
                ray.get(worker.__ray_ready__.remote(), timeout=30)
            except _DEAD:
                return True
            except ray.exceptions.GetTimeoutError:
                continue
        return False

    def _sharded(self, method: str, samples: list[TrainSample], *args) -> list[Any]:
        bounds = shard_bounds(len(samples), self.world_size)
        return self._gather([getattr(w, method).remote(samples[a:b], *args) for w, (a, b) in zip(self.workers, bounds)])

    def logprobs(self, samples: list[TrainSample], which: str = "policy") -> list[list[float]]:
        return [row for shard in self._sharded("logprobs", samples, which) for row in shard]

    def train_rl(self, samples: list[TrainSample], loss: LossSettings) -> dict[str, float]:
        totals = {"tokens": float(sum(len(s.completion_ids) for s in samples)), "seqs": float(len(samples))}
        return merge_rank_metrics(self._sharded("train_rl", samples, loss, totals))

    def train_sft(self, samples: list[TrainSample]) -> dict[str, float]:
        totals = {"tokens": float(sum(len(s.completion_ids) for s in samples)), "seqs": float(len(samples))}
        return merge_rank_metrics(self._sharded("train_sft", samples, totals))

    def eval_sft_loss(self, samples: list[TrainSample]) -> float:
        parts = self._sharded("eval_sft_loss", samples)
        return sum(p[0] for p in parts) / max(1.0, sum(p[1] for p in parts))

    def export_weights(self, folder: str) -> dict[str, float]:
        return self._gather([w.export_weights.remote(folder) for w in self.workers])[0]

    def init_weight_transfer(self, backend: str, num_engine_ranks: int, client) -> None:
        """Open the streaming group: learner rank 0 is its rank 0, the engines' ranks follow."""
        master_addr, master_port = ray.get(self.workers[0].address.remote())
        self._gather([w.init_weight_transfer.remote(backend, master_addr, master_port, 1 + num_engine_ranks, client) for w in self.workers])

    def send_weights(self) -> dict[str, float]:
        return self._gather([w.send_weights.remote() for w in self.workers])[0]

    def save(self, folder: str) -> None:
        self._gather([w.save.remote(folder) for w in self.workers])

    def load(self, folder: str) -> None:
        self._gather([w.load.remote(folder) for w in self.workers])

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker, no_restart=True)


def merge_rank_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """One update's statistics from every rank's, each by its `Reduce` kind (`rft.tracking.stats`)."""
    return merge_stats(per_rank, LEARNER_STATS)
