"""A progress bar for training loops: step, reward and step time at a glance.

    with progress_bar(total=max_steps, initial=step, description="rl") as bar:
        while step < max_steps:
            ...
            bar.update(1, reward=metrics["reward/mean"], step_s=metrics["timing/step_s"])
            # or: bar.show_metrics(step, metrics)  -> picks reward/mean and timing/step_s itself

On a terminal it is a tqdm bar. Elsewhere (Ray job logs, CI, files) a bar's carriage returns make a
mess, so it is off by default there; with `log_every=N` it prints one plain line every N steps
instead. `enabled=True/False` or `$RFT_PROGRESS=1/0` overrides the terminal check.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from rft.tracking.params import to_number

# label shown -> metric name, for show_metrics
DEFAULT_FIELDS = {"reward": "reward/mean", "step_s": "timing/step_s"}


def progress_enabled(stream: TextIO, enabled: bool | None = None) -> bool:
    """Explicit choice, else $RFT_PROGRESS, else whether the stream is a terminal."""
    if enabled is not None:
        return enabled
    env = os.environ.get("RFT_PROGRESS")
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "off", "")
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressBar:
    def __init__(
        self,
        total: int | None = None,
        *,
        initial: int = 0,
        description: str = "train",
        enabled: bool | None = None,
        log_every: int = 0,
        stream: TextIO | None = None,
    ):
        self.stream = stream or sys.stderr
        self.enabled = progress_enabled(self.stream, enabled)
        self.total, self.description, self.log_every = total, description, log_every
        self.step = initial
        self._bar = None
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1, **fields: Any) -> None:
        """Advance by n steps and show the given fields (numbers are shortened to 3 digits)."""
        self.step += n
        shown = {k: _short(v) for k, v in fields.items() if v is not None}
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(n)
        elif self.log_every and self.step % self.log_every == 0:
            total = f"/{self.total}" if self.total else ""
            extras = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"[{self.description}] step {self.step}{total} {extras}".rstrip(), file=self.stream, flush=True)

    def show_metrics(self, step: int, metrics: Mapping[str, Any], fields: Mapping[str, str] = DEFAULT_FIELDS) -> None:
        """Move to absolute `step`, showing the metrics named in `fields` (label -> metric name)."""
        self.update(step - self.step, **{label: metrics.get(key) for label, key in fields.items()})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(
    total: int | None = None,
    *,
    initial: int = 0,
    description: str = "train",
    enabled: bool | None = None,
    log_every: int = 0,
    stream: TextIO | None = None,
) -> ProgressBar:
    """A `ProgressBar` (usable as a context manager); see the module docstring."""
    return ProgressBar(total, initial=initial, description=description, enabled=enabled, log_every=log_every, stream=stream)


def _short(value: Any) -> str:
    number = to_number(value)
    return f"{number:.3g}" if number is not None else str(value)
