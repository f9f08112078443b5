"""`python -m rft.bench learner`: the learner alone in one process (a real DeepSpeed rank on the
tiny model), two variants timed round after round, the table and the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_bench_learner_times_variants_side_by_side(tmp_path):
    out = tmp_path / "learner.json"
    command = [sys.executable, "-m", "rft.bench", "learner", "--size", "tiny", "--prompts", "2", "--max-tokens", "8", "--rounds", "2"]
    command += ["--variants", "", "learner.shared_prefix=false", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "learner alone" in done.stdout
    payload = json.loads(out.read_text())
    assert [v["variant"] for v in payload["variants"]] == ["default", "learner.shared_prefix=false"]
    for variant in payload["variants"]:
        assert len(variant["rounds"]["logprob_s"]) == len(variant["rounds"]["update_s"]) == 2
        assert variant["update_s"] == variant["rounds"]["update_s"][1] > 0 and variant["logprob_s"] > 0
        assert variant["learner_tok_s"] == pytest.approx(2 * 8 * 8 / variant["update_s"])  # 2 prompts x G = 8 x 8 tokens
    assert payload["peak_rss_gb"] > 0
