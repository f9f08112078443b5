"""`LearnerGroup`: the DeepSpeed ranks as Ray actors in placement-group bundles, driven together.

The controller hands it whole batches; the group shards them over ranks (contiguous slices, so a
group's completions mostly stay on one rank and share prompt features), calls every rank, and
reassembles results in the original order.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rft.algo.config import LossSettings
from rft.learner.worker import LearnerSettings, LearnerWorker
from rft.tracking.stats import LEARNER_STATS, merge_stats
from rft.types import TrainSample


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
        actor_cls = ray.remote(LearnerWorker)
        self.world_size = num_workers
        self.workers = [
            actor_cls.options(
                num_cpus=cpus,
                num_gpus=gpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group, placement_group_bundle_index=bundle_indices[rank]),
                runtime_env={"env_vars": {"DS_ACCELERATOR": "cuda" if gpus > 0 else "cpu", **(env_vars or {})}},
            ).remote(rank, num_workers, settings)
            for rank in range(num_workers)
        ]
        master_addr, master_port = ray.get(self.workers[0].address.remote())
        self.rank0_node = master_addr
        self.info = ray.get([w.setup.remote(master_addr, master_port) for w in self.workers])

    def _sharded(self, method: str, samples: list[TrainSample], *args) -> list[Any]:
        bounds = shard_bounds(len(samples), self.world_size)
        return ray.get([getattr(w, method).remote(samples[a:b], *args) for w, (a, b) in zip(self.workers, bounds)])

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
        return ray.get([w.export_weights.remote(folder) for w in self.workers])[0]

    def init_weight_transfer(self, backend: str, num_engine_ranks: int, client) -> None:
        """Open the streaming group: learner rank 0 is its rank 0, the engines' ranks follow."""
        master_addr, master_port = ray.get(self.workers[0].address.remote())
        ray.get([w.init_weight_transfer.remote(backend, master_addr, master_port, 1 + num_engine_ranks, client) for w in self.workers])

    def send_weights(self) -> dict[str, float]:
        return ray.get([w.send_weights.remote() for w in self.workers])[0]

    def save(self, folder: str) -> None:
        ray.get([w.save.remote(folder) for w in self.workers])

    def load(self, folder: str) -> None:
        ray.get([w.load.remote(folder) for w in self.workers])

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)


def merge_rank_metrics(per_rank: list[dict[str, float]]) -> dict[str, float]:
    """One update's statistics from every rank's, each by its `Reduce` kind (`rft.tracking.stats`)."""
    return merge_stats(per_rank, LEARNER_STATS)
