"""Progress helper: off when not a terminal, plain lines on request, bar when forced."""

import io

import torch

from rft.tracking import progress_bar
from rft.tracking.progress import progress_enabled


def test_disabled_on_non_tty_prints_plain_lines_when_asked():
    stream = io.StringIO()
    with progress_bar(total=4, stream=stream, log_every=2, description="rl") as bar:
        assert not bar.enabled
        for step in range(1, 5):
            bar.update(1, reward=0.25 * step, step_s=torch.tensor(1.5))
    assert stream.getvalue().splitlines() == [
        "[rl] step 2/4 reward=0.5 step_s=1.5",
        "[rl] step 4/4 reward=1 step_s=1.5",
    ]


def test_show_metrics_moves_to_absolute_step():
    stream = io.StringIO()
    with progress_bar(total=10, initial=4, stream=stream, log_every=1) as bar:
        bar.show_metrics(6, {"reward/mean": 0.125, "timing/step_s": 3.0, "kl": 1.0})
    assert bar.step == 6
    assert stream.getvalue().strip() == "[train] step 6/10 reward=0.125 step_s=3"


def test_silent_by_default_off_tty():
    stream = io.StringIO()
    with progress_bar(total=3, stream=stream) as bar:
        bar.update(1, reward=0.1)
    assert stream.getvalue() == ""


def test_forced_bar_shows_reward_and_step_time():
    stream = io.StringIO()
    with progress_bar(total=10, initial=2, stream=stream, enabled=True) as bar:
        bar.update(1, reward=0.75, step_s=12.0)
    text = stream.getvalue()
    assert "3/10" in text and "reward=0.75" in text and "step_s=12" in text


def test_env_override(monkeypatch):
    monkeypatch.setenv("RFT_PROGRESS", "1")
    assert progress_enabled(io.StringIO())
    monkeypatch.setenv("RFT_PROGRESS", "0")
    assert not progress_enabled(io.StringIO())
    assert progress_enabled(io.StringIO(), enabled=True)
