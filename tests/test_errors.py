"""Errors with a complete message end a command as one line on stderr and status 2; bugs keep
their traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rft.errors import USER_ERROR_STATUS, UserError, user_errors_as_one_line


def test_a_user_error_becomes_one_line_and_status_2(capsys):
    from rft.config import ConfigError

    with pytest.raises(SystemExit) as exit_info, user_errors_as_one_line():
        raise ConfigError("algo.beta: must be >= 0")
    assert exit_info.value.code == USER_ERROR_STATUS == 2
    assert capsys.readouterr().err == "error: ConfigError: algo.beta: must be >= 0\n"


def test_other_exceptions_keep_their_traceback():
    with pytest.raises(KeyError), user_errors_as_one_line():
        raise KeyError("a bug")


def test_rfts_input_and_stop_errors_are_user_errors_and_keep_their_builtin_bases():
    from rft.config import ConfigError
    from rft.data.readers import DataError
    from rft.eval.journal import EvalSettingsError
    from rft.models.loading import ModelNotFoundError
    from rft.placement.cluster import ResourceError
    from rft.rewards.common import RewardConfigError
    from rft.trainer.rl import TrainingStopped
    from rft.trainer.sft import SFTDataError

    bases = {
        ConfigError: ValueError, DataError: ValueError, SFTDataError: ValueError, RewardConfigError: ValueError,
        ModelNotFoundError: FileNotFoundError, ResourceError: RuntimeError, TrainingStopped: RuntimeError, EvalSettingsError: RuntimeError,
    }  # fmt: skip
    for error, builtin in bases.items():
        assert issubclass(error, UserError) and issubclass(error, builtin), error


def test_launch_names_a_missing_model_in_one_line(repo_root, tmp_path):
    env = {**os.environ, "RFT_OUTPUTS": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rft.launch", "stage=rl", f"model.path={tmp_path}/missing"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: ModelNotFoundError: model.path={tmp_path}/missing: folder {tmp_path}/missing does not exist")
    assert "Traceback" not in done.stderr + done.stdout
