"""Whether RL had signal, from a synthetic metrics.jsonl: the informative-group share per step and
the evaluation per checkpoint, in report.html and in a Reason-RFT run's summary.md."""

from __future__ import annotations

import json

from rft.tracking import write_report
from rft.tracking.report import eval_keys, read_metrics, signal_markdown, signal_tables
from rft.trainer.reason_rft import rl_signal


def _write_stage2(run_dir):
    """Stage 2 as the RL trainer logs it: eval at step 0, steps 1-4, eval at step 2 and step 4."""
    rows = [{"step": 0, "eval/id/score": 80.0, "eval/id/format": 100.0, "eval/ood/score": 60.0, "eval/ood/format": 99.0, "eval/id/small/score": 1.0}]
    for step, frac in zip(range(1, 5), (0.75, 0.5, 0.25, 0.125)):
        rows.append({"step": step, "reward/mean": 1.0 + step / 10, "adv/informative_groups": frac, "timing/step_s": 1.0})
    rows.append({"step": 2, "eval/id/score": 82.0, "eval/id/format": 100.0, "eval/ood/score": 64.0, "eval/ood/format": 100.0})
    rows.append({"step": 4, "eval/id/score": 85.0, "eval/id/format": 100.0, "eval/ood/score": 70.0, "eval/ood/format": 100.0})
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return read_metrics(run_dir / "metrics.jsonl")


def test_signal_tables_per_step_and_per_checkpoint(tmp_path):
    rows = _write_stage2(tmp_path / "stage2_rl")
    assert eval_keys(rows) == ["eval/id/score", "eval/id/format", "eval/ood/score", "eval/ood/format"]  # no subsets
    (title1, header1, body1), (title2, header2, body2) = signal_tables(rows)
    assert title1 == "RL signal per step" and header1[1] == "groups with non-zero advantage (%)"
    assert body1 == [[1, 75.0, 1.1], [2, 50.0, 1.2], [3, 25.0, 1.3], [4, 12.5, 1.4]]
    assert title2 == "Evaluation per checkpoint"
    assert [row[0] for row in body2] == [0, 2, 4] and body2[-1][1:] == [85.0, 100.0, 70.0, 100.0]


def test_summary_and_html_show_the_signal(tmp_path):
    rows = _write_stage2(tmp_path / "stage2_rl")
    markdown = rl_signal(tmp_path / "stage2_rl")
    assert markdown == signal_markdown(rows)
    assert "| 3 | 25 | 1.3 |" in markdown and "| 4 | 85 | 100 | 70 | 100 |" in markdown
    page = write_report(tmp_path / "stage2_rl").read_text()
    assert "RL signal per step" in page and "<td>12.5</td>" in page and "Evaluation per checkpoint" in page


def test_nothing_to_show_for_an_sft_run(tmp_path):
    assert signal_tables([{"step": 1, "loss": 0.3}]) == []
    assert rl_signal(tmp_path / "missing") == ""
