"""The folder transport's pieces that need no actors: where a run's folders go, which versions
survive a push, and the one-node check (ConfigError naming `rollout.weight_sync`)."""

from __future__ import annotations

import pytest

from rft.config import ConfigError
from rft.weights.folder import check_one_node, drop_other_versions, run_sync_dir, sync_root, version_dir


def test_each_run_gets_its_own_folder_in_shared_memory(tmp_path):
    first, second = run_sync_dir(tmp_path / "a"), run_sync_dir(tmp_path / "b")
    assert first.parent == second.parent == sync_root() and first != second
    assert run_sync_dir(tmp_path / "a") == first, "the same run finds the same folder again"
    assert first.name.startswith("rft-sync-")


def test_only_the_loaded_version_is_kept(tmp_path):
    for version in (1, 2, 3):
        version_dir(tmp_path, version).mkdir()
        (version_dir(tmp_path, version) / "model.safetensors").write_bytes(b"x")
    drop_other_versions(tmp_path, keep=version_dir(tmp_path, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v3"]


def test_one_node_passes(tmp_path):
    check_one_node(tmp_path, {"the controller": {"10.0.0.1"}, "learner rank 0": {"10.0.0.1"}, "the rollout actors": {"10.0.0.1"}})


def test_several_nodes_fail_naming_the_key_and_the_nodes(tmp_path):
    parties = {"the controller": {"10.0.0.1"}, "learner rank 0": {"10.0.0.1"}, "the rollout actors": {"10.0.0.1", "10.0.0.2"}}
    with pytest.raises(ConfigError, match=r"^rollout\.weight_sync: folder passes weights through") as err:
        check_one_node(tmp_path, parties)
    assert "the rollout actors on 10.0.0.1, 10.0.0.2" in str(err.value) and "rollout.weight_sync=gloo" in str(err.value)
