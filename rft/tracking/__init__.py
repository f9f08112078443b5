"""Run tracking: metrics.jsonl (always), mlflow and wandb sinks, HTML/PNG reports, progress bar.

mlflow, wandb and matplotlib are imported only when a sink or report needs them.
"""

from rft.tracking.factory import make_tracker
from rft.tracking.params import flatten_config, mlflow_key
from rft.tracking.progress import ProgressBar, progress_bar
from rft.tracking.report import plot_series, read_metrics, series, write_report
from rft.tracking.tracker import Tracker, default_mlflow_uri

__all__ = [
    "ProgressBar",
    "Tracker",
    "default_mlflow_uri",
    "flatten_config",
    "make_tracker",
    "mlflow_key",
    "plot_series",
    "progress_bar",
    "read_metrics",
    "series",
    "write_report",
]
