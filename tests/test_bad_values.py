"""Every bad value gets one line: `error: ConfigError: <key>: ...`, status 2, never a traceback.

The table is the schema itself (`rft.config.RFTConfig`), walked here: every int and float key
gets a negative value, zero where zero is refused, a huge value and a string; every choice key
an unknown choice; every flag a string. A new key is covered without touching this file (a
numeric key without `rft.config.BOUNDS` fails the first test).

Each case is checked as `python -m rft.launch <key>=<value>` checks it: the value is set on the
composed default configuration with OmegaConf's typed update (what Hydra does for a `key=value`
override), composition errors become one line (`rft.config.config_error`) and `validate` runs.
Composing anew per case would take ~0.3 s each; a sample of cases goes through the launcher's
own composition (`rft.launch.preflight`), and three through a real `python -m rft.launch`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import typing
from enum import Enum

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rft.config import (
    BOUNDS,
    FLOAT_MAX,
    INT_MAX,
    RFTConfig,
    check_model_limits,
    config_error,
    numeric_keys,
    rollout_max_model_len,
    schema_fields,
    validate,
)
from rft.errors import ConfigError, user_errors_as_one_line
from rft.launch import preflight

HUGE = {int: 2**40, float: 1e30}


def choice_keys(schema: type = RFTConfig, prefix: str = "") -> dict[str, object]:
    """Every Enum-typed key (or list of Enums) of the schema, with an unknown value for it."""
    keys: dict[str, object] = {}
    for name, kind in schema_fields(schema).items():
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(kind):
            keys.update(choice_keys(kind, f"{key}."))
        elif isinstance(kind, type) and issubclass(kind, Enum):
            keys[key] = "no_such_choice"
        elif typing.get_origin(kind) is list and any(isinstance(arg, type) and issubclass(arg, Enum) for arg in typing.get_args(kind)):
            keys[key] = ["no_such_choice"]
    return keys


def flag_keys(schema: type = RFTConfig, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, kind in schema_fields(schema).items():
        if dataclasses.is_dataclass(kind):
            keys += flag_keys(kind, f"{prefix}{name}.")
        elif kind is bool:
            keys.append(f"{prefix}{name}")
    return keys


def bad_values() -> list[tuple[str, object]]:
    """(key, value) for every case of the table."""
    cases: list[tuple[str, object]] = []
    for key, kind in numeric_keys().items():
        bound = BOUNDS[key]
        high = bound.high if bound.high is not None else (INT_MAX if kind is int else FLOAT_MAX)
        cases += [(key, -1), (key, HUGE[kind]), (key, "abc")]
        if not bound.admits(0, high):
            cases.append((key, 0))
    cases += [(key, value) for key, value in choice_keys().items()]
    cases += [(key, "maybe_not") for key in flag_keys()]
    return cases


CASES = bad_values()


@pytest.fixture(scope="module")
def default_config():
    from rft.config import compose_checked

    return compose_checked([])


def one_line_error(capsys, check) -> str:
    """Run `check` as an entry point does; the single stderr line it ended with."""
    with pytest.raises(SystemExit) as stopped, user_errors_as_one_line():
        check()
    err = capsys.readouterr().err
    assert stopped.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ConfigError: "), err
    assert "Traceback" not in err
    return lines[0]


def set_and_validate(base, key: str, value) -> None:
    cfg = copy.deepcopy(base)
    try:
        OmegaConf.update(cfg, key, value, merge=True)
    except OmegaConfBaseException as err:
        raise config_error(err) from None
    validate(cfg)


def test_every_numeric_key_has_bounds():
    assert set(numeric_keys()) == set(BOUNDS), "give each new numeric key its accepted values in rft.config.BOUNDS"
    assert len(CASES) > 200 and len(choice_keys()) >= 15


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{key}={value}" for key, value in CASES])
def test_bad_value_is_one_line_naming_the_key(default_config, capsys, key, value):
    line = one_line_error(capsys, lambda: set_and_validate(default_config, key, value))
    assert line.startswith(f"error: ConfigError: {key}"), line


SAMPLE = [
    "rollout.max_tokens=0",
    "trainer.seed=-1",
    "algo.lr=1e30",
    "learner.num_workers=abc",
    "algo.name=no_such_choice",
    "tracking.sinks=[no_such_choice]",
    "rollout.no_such_key=1",
    "cluster.address=http://127.0.0.1:8265",
]


@pytest.mark.parametrize("override", SAMPLE)
def test_launcher_composition_gives_one_line(capsys, override):
    line = one_line_error(capsys, lambda: preflight([override]))
    assert line.startswith(f"error: ConfigError: {override.split('=')[0]}"), line


def test_unknown_group_option_names_the_group(capsys):
    line = one_line_error(capsys, lambda: preflight(["model=no_such_model"]))
    assert "model/no_such_model" in line and "tiny_qwen2vl" in line


def test_sweep_keeps_its_job_server_address_but_not_bad_values(capsys):
    preflight(["-m", "hydra/launcher=ray_jobs", "cluster.address=http://127.0.0.1:8265", "trainer.seed=1,2"])
    line = one_line_error(capsys, lambda: preflight(["-m", "rollout.max_tokens=0", "trainer.seed=1,2"]))
    assert "rollout.max_tokens" in line


def test_python_m_rft_launch_exits_2_with_one_line(repo_root):
    """The real command line: three at once (each starts Python and Hydra, ~4 s)."""
    overrides = ["rollout.max_tokens=0", "cluster.address=http://127.0.0.1:8265", "algo.advantage=no_such_choice"]
    runs = [
        subprocess.Popen([sys.executable, "-m", "rft.launch", o], cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in overrides
    ]
    for override, proc in zip(overrides, runs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (override, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: ConfigError: {override.split('=')[0]}: "), (override, err)
        assert not override.startswith("cluster.address") or "python -m rft.jobs submit" in lines[0], lines[0]


def _model_folder(tmp_path, limit: int, nested: bool = False):
    config = {"text_config": {"max_position_embeddings": limit}} if nested else {"max_position_embeddings": limit}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_max_model_len_follows_the_models_limit(tmp_path):
    folder = _model_folder(tmp_path, 2048)
    assert rollout_max_model_len(None, folder) == 2048
    assert rollout_max_model_len(1024, folder) == 1024
    assert rollout_max_model_len(None, _model_folder(tmp_path, 32768, nested=True)) == 4096
    assert rollout_max_model_len(None, "") == 4096  # no model at hand (e.g. comparing engine settings)
    with pytest.raises(ConfigError, match=r"rollout.max_model_len: 4096 is beyond the model's position limit, 2048"):
        rollout_max_model_len(4096, _model_folder(tmp_path, 2048, nested=True))


def test_max_model_len_beyond_the_model_is_one_line_before_ray(default_config, tmp_path, capsys):
    cfg = copy.deepcopy(default_config)
    cfg.model.path = _model_folder(tmp_path, 2048)
    cfg.rollout.max_model_len = 4096
    line = one_line_error(capsys, lambda: check_model_limits(cfg))
    assert line.startswith("error: ConfigError: rollout.max_model_len: 4096 is beyond")
