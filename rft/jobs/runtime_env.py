"""The runtime environment every rft Ray Job gets, and merging a user's template over it.

- `working_dir`: the project checkout (the folder holding `rft/` and `conf/`), uploaded by Ray and
  unpacked into a throwaway folder per job, minus `EXCLUDES` (the venv, caches, outputs, git).
  That copy has no venv: the entrypoint names an interpreter (see `rft.jobs.entrypoint`).
- `env_vars`: `RFT_OUTPUTS` (absolute, so run folders land where the submitter expects), and every
  variable of `FORWARDED_ENV` that is set where the job is submitted, except `RAY_AUTH_MODE`: the
  job's driver takes the cluster's own authentication mode (a laptop's would not fit it). `RAY_OVERRIDE_JOB_RUNTIME_ENV`
  lets the job's driver pass its own `runtime_env` to `ray.init` (rft's trainer forwards the same
  variables to its actors) without Ray refusing the merge.

A template (`jobs/runtime_env.yaml`) may add keys (`pip`, `py_modules`, ...), more `excludes`,
and `env_vars` (which win over forwarded ones). Secrets belong in the cluster's environment, not
in a template: runtime environments are visible in the dashboard.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rft.paths import FORWARDED_ENV, PATH_ENV

CLUSTER_OWNED_ENV = ("RAY_AUTH_MODE",)  # the cluster's setting, never the submitter's
EXCLUDES = [
    ".venv", "outputs", ".cache", "multirun", ".git", "__pycache__", "*.egg-info", ".pytest_cache",
    ".hypothesis", "mlruns", "wandb", "bench_results",
]  # fmt: skip


def project_root() -> Path | None:
    """The checkout holding `rft/` and `conf/`, or None when rft is installed without one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "rft").is_dir() and (root / "conf").is_dir() else None


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The FORWARDED_ENV variables set in `environ` (default: this process), paths made absolute."""
    environ = os.environ if environ is None else environ
    env = {key: environ[key] for key in FORWARDED_ENV if environ.get(key) and key not in CLUSTER_OWNED_ENV}
    for key in PATH_ENV:
        if key in env:
            env[key] = os.path.abspath(os.path.expanduser(env[key]))
    return env


def _excludes_for(root: Path, outputs_root: Path) -> list[str]:
    excludes = list(EXCLUDES)
    try:
        inside = outputs_root.resolve().relative_to(root.resolve())
    except ValueError:
        return excludes
    if str(inside) != ".":
        excludes.append(inside.as_posix())
    return excludes


def build_runtime_env(
    outputs_root: str | os.PathLike,
    template: Mapping[str, Any] | None = None,
    env_vars: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The runtime_env for one rft job; `template` and `env_vars` are merged over the default."""
    outputs = Path(outputs_root).expanduser().resolve()
    env = {**forwarded_env(environ), "RFT_OUTPUTS": str(outputs), "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1", "PYTHONUNBUFFERED": "1"}
    runtime_env: dict[str, Any] = {"env_vars": env}
    root = project_root()
    if root is not None:
        runtime_env["working_dir"] = str(root)
        runtime_env["excludes"] = _excludes_for(root, outputs)
    return merge_runtime_env(runtime_env, {**(template or {}), "env_vars": {**dict((template or {}).get("env_vars") or {}), **dict(env_vars or {})}})


def merge_runtime_env(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`: env_vars merged per key, excludes appended, other keys replaced."""
    merged = {key: value for key, value in base.items()}
    for key, value in extra.items():
        if key == "env_vars":
            merged["env_vars"] = {**merged.get("env_vars", {}), **{str(k): str(v) for k, v in (value or {}).items()}}
        elif key == "excludes":
            merged["excludes"] = list(merged.get("excludes", [])) + [e for e in (value or []) if e not in merged.get("excludes", [])]
        elif value is not None:
            merged[key] = value
    return merged


def load_template(path: str | os.PathLike) -> dict[str, Any]:
    """A runtime-env template (YAML mapping); ValueError naming the file when it is not one."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"runtime env template {file} does not exist")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"runtime env template {file} must hold a mapping (working_dir, env_vars, ...), not {type(data).__name__}")
    return data
