"""The folder transport (`rollout.weight_sync=folder`, the CPU default): where the folders go, and
the one-node check it needs.

Learner rank 0 writes the weights as a complete safetensors checkpoint into `<root>/v<version>`
(in `/dev/shm` when the OS has it: a copy in memory, no disk), each engine reloads it in place
(`rft.weights.vllm_worker.reload_vllm_weights`, or the HF engine's `load_weights`), and older
versions are deleted. The path is handed over by name, so the controller, learner rank 0 and
every rollout actor must share one node.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from rft.errors import ConfigError
from rft.weights.modes import KEY


def sync_root() -> Path:
    """Where weight-sync folders go: shared memory when the OS has it."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))


def run_sync_dir(run_dir: str | os.PathLike) -> Path:
    """The sync folder of one run: its own name under `sync_root()`, so runs never share one."""
    digest = hashlib.sha1(str(Path(run_dir)).encode()).hexdigest()[:12]
    return sync_root() / f"rft-sync-{digest}"


def version_dir(root: Path, version: int) -> Path:
    return root / f"v{version}"


def drop_other_versions(root: Path, keep: Path) -> None:
    """Delete every version folder under `root` but `keep` (the engines have loaded it)."""
    for old in root.glob("v*"):
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def check_one_node(root: Path, parties: dict[str, set[str]]) -> None:
    """ConfigError naming `rollout.weight_sync` unless every party (name -> addresses of the
    nodes it runs on) is on one node: the folder is handed over by path."""
    addresses = set().union(*parties.values())
    if len(addresses) > 1:
        where = "; ".join(f"{name} on {', '.join(sorted(nodes))}" for name, nodes in parties.items())
        raise ConfigError(
            f"{KEY}: folder passes weights through {root}, but the controller, learner rank 0 and the rollout actors "
            f"run on several nodes ({where}); use rollout.weight_sync=gloo (or nccl on GPUs)"
        )
