"""Reports from a synthetic metrics.jsonl: PNG and HTML produced, missing panels skipped."""

import json
import math

import pytest

from rft.tracking import plot_series, read_metrics, series, write_report
from rft.tracking.report import DEFAULT_PANELS, last_values, match_keys

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _synthetic_rows():
    rows = [{"step": s, "reward/mean": s / 10, "kl": 0.01 * s, "timing/step_s": 3.0, "format/mean": 1.0} for s in range(10)]
    rows[4]["eval/counting_id/score"] = 80.0
    rows[9]["eval/counting_id/score"] = 85.0
    rows[9]["eval/counting_ood/score"] = 40.0
    return rows


def test_report_files_produced(tmp_path):
    _write_metrics(tmp_path / "run", _synthetic_rows())
    html_path = write_report(tmp_path / "run")
    assert html_path == tmp_path / "run" / "report.html"
    assert (tmp_path / "run" / "report.png").read_bytes().startswith(PNG_MAGIC)
    page = html_path.read_text()
    assert "data:image/png;base64," in page
    assert "eval/counting_ood/score" in page and "<td>0.9</td>" in page  # last reward/mean


def test_missing_metrics_skip_their_panels():
    rows = _synthetic_rows()
    present = [name for name, patterns in DEFAULT_PANELS if match_keys(rows, patterns)]
    assert present == ["reward", "format", "kl", "step time (s)", "eval score"]
    assert match_keys(rows, ["eval/*/score"]) == ["eval/counting_id/score", "eval/counting_ood/score"]


def test_empty_or_absent_metrics_still_give_a_report(tmp_path):
    assert write_report(tmp_path / "nothing").exists()
    _write_metrics(tmp_path / "empty", [])
    assert "no rows" in write_report(tmp_path / "empty").read_text()
    assert (tmp_path / "empty" / "report.png").read_bytes().startswith(PNG_MAGIC)


def test_series_last_row_per_step_wins_and_skips_non_numbers():
    rows = [{"step": 0, "x": 1}, {"step": 1, "x": 2}, {"step": 1, "x": 5}, {"step": 2, "x": "n/a"}, {"step": 3, "x": float("nan")}, {"step": 4}]
    assert series(rows, "x") == ([0, 1], [1.0, 5.0])
    step, value = last_values(rows)["x"]
    assert step == 3 and math.isnan(value)


def test_plot_series_for_eval_scores(tmp_path):
    out = plot_series(_synthetic_rows(), ["eval/*/score"], tmp_path / "plots" / "scores.png", title="score vs step")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_read_metrics_skips_blank_and_non_row_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "x": 1}\n\n[1, 2]\n{"no_step": 1}\n')
    assert read_metrics(path) == [{"step": 0, "x": 1}]
    path.write_text('{"step": 0}\n{"step"\n')
    with pytest.warns(RuntimeWarning):
        assert len(read_metrics(path)) == 1
