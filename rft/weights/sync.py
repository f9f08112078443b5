"""`WeightSyncer`: the one component that moves the learners' weights into the rollout engines.

The controller builds it once both actor groups exist and then only calls

    sync = WeightSyncer(resolve_mode(cfg), learners, rollout, run_sync_dir(run_dir))
    sync.open()                 # ready the transport; the rollout group restores restarts through it
    stats = sync.push(version)  # every step (and on resume): learners -> every engine
    sync.close()

`open` readies the mode's transport: for `folder` it checks that all parties share a node (the
folder is passed by path); for `gloo`/`nccl`/`ipc` the learners and every engine join one
transfer group. `push` runs the learners' NaN/inf check, moves the weights and records the
version on the engines; a `NonFiniteWeights` raised on a learner rank comes out as itself.
`restore(worker)` gives an actor that Ray restarted the latest weights: it reloads the folder,
or rebuilds the transfer group (a fresh process has left it) and streams again.

The groups are duck-typed (this layer does not import `rft.learner` or `rft.rollout`):
learners have `rank0_node`, `export_weights(folder)`, `init_weight_transfer(mode, engines,
client)` and `send_weights()`; the rollout group has `workers` (actor handles), `nodes()`,
`load_weights(folder, version)`, `set_weight_version(version)`, `received_bytes()` and
`use_weight_sync(sync)`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from rft.weights.errors import NonFiniteWeights, remote_cause
from rft.weights.folder import check_one_node, drop_other_versions, version_dir
from rft.weights.modes import WeightSync


@dataclass(frozen=True)
class SyncStats:
    """What one push moved: bytes of weights each engine received (as the engines count them:
    the weight files a folder reload read, the buffers a stream delivered) and seconds until
    every engine had them."""

    bytes: float
    seconds: float


class WeightSyncer:
    """See the module docstring."""

    def __init__(self, mode: WeightSync | str, learners: Any, rollout: Any, folder: Path):
        self.mode = WeightSync(mode)
        if self.mode == WeightSync.auto:
            raise ValueError("resolve rollout.weight_sync=auto first (rft.weights.modes.resolve_mode)")
        self.learners = learners
        self.rollout = rollout
        self.folder = Path(folder)
        self.version: int | None = None  # of the latest weights pushed; None: the engines' initial ones

    @property
    def streamed(self) -> bool:
        return self.mode != WeightSync.folder

    def open(self) -> None:
        if self.streamed:
            self._open_stream()
        else:
            check_one_node(self.folder, self._parties())
        self.rollout.use_weight_sync(self)

    def push(self, version: int) -> SyncStats:
        """The learners' current weights into every engine, as weight version `version`."""
        start = time.perf_counter()
        try:
            if self.streamed:
                self._stream(version)
            else:
                self._through_folder(version)
            received = self.rollout.received_bytes()
        except ray.exceptions.RayTaskError as err:
            cause = remote_cause(err)
            if isinstance(cause, NonFiniteWeights):
                raise cause from None
            raise
        self.version = version
        return SyncStats(bytes=float(received), seconds=time.perf_counter() - start)

    def restore(self, worker: Any) -> None:
        """Give a restarted rollout actor the latest weights (nothing before the first push)."""
        if self.version is None:
            return
        if self.streamed:
            self._client().shutdown()
            self._open_stream()
            self._stream(self.version)
        else:
            ray.get(worker.load_weights.remote(str(version_dir(self.folder, self.version)), self.version))

    def learners_restarted(self) -> None:
        """The learner group was started afresh: the engines leave the old transfer group and
        join one with the new ranks (folders need nothing). The next push brings the weights."""
        if self.streamed:
            self._client().shutdown()
            self._open_stream()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- folder ----
    def _parties(self) -> dict[str, set[str]]:
        return {
            "the controller": {ray.util.get_node_ip_address()},
            "learner rank 0": {self.learners.rank0_node},
            "the rollout actors": set(self.rollout.nodes()),
        }

    def _through_folder(self, version: int) -> dict[str, float]:
        folder = version_dir(self.folder, version)
        exported = self.learners.export_weights(str(folder))
        self.rollout.load_weights(str(folder), version)
        drop_other_versions(self.folder, keep=folder)
        return exported

    # ---- streamed ----
    def _client(self) -> EngineTransferClient:
        return EngineTransferClient(self.rollout.workers)

    def _open_stream(self) -> None:
        self.learners.init_weight_transfer(self.mode.value, len(self.rollout.workers), self._client())

    def _stream(self, version: int) -> dict[str, float]:
        sent = self.learners.send_weights()
        self.rollout.set_weight_version(version)
        return sent


class EngineTransferClient:
    """vLLM's `VLLMWeightSyncClient` protocol over the rollout actors (`RolloutWorker`'s
    `init_weight_transfer`, `start_weight_update`, `update_weights`, `finish_weight_update`).

    Each actor is a vLLM engine of its own and so thinks it is data-parallel rank 0; the client
    gives each its own ranks in the transfer group. Picklable: the controller hands it to the
    sending learner rank, which drives the handshake (`rft.weights.stream`).
    """

    def __init__(self, actors: list, ranks_per_engine: int = 1):
        self.actors = list(actors)
        self.ranks_per_engine = ranks_per_engine

    def init_weight_transfer_engine(self, init_info: dict[str, Any]) -> None:
        ray.get([actor.init_weight_transfer.remote(self._for_actor(init_info, index)) for index, actor in enumerate(self.actors)])

    def _for_actor(self, init_info: dict[str, Any], index: int) -> dict[str, Any]:
        if "rank_offset" not in init_info:  # no process group (ipc)
            return init_info
        return dict(init_info, rank_offset=int(init_info["rank_offset"]) + index * self.ranks_per_engine)

    def start_weight_update(self) -> None:
        self._all("start_weight_update")

    def update_weights(self, update_info) -> None:
        self._all("update_weights", update_info)

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._all("finish_weight_update")

    def shutdown(self) -> None:
        """Every engine leaves the transfer group (before it is rebuilt)."""
        self._all("shutdown_weight_transfer")

    def _all(self, method: str, *args) -> None:
        ray.get([getattr(actor, method).remote(*args) for actor in self.actors])
