"""Keep tracking tests hermetic: offline wandb under tmp, no inherited mlflow URI, outputs in tmp."""

import pytest


@pytest.fixture(autouse=True)
def _tracking_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.setenv("RFT_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RFT_PROGRESS", raising=False)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """One SQLite store for the session: creating its tables costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
