"""The evaluation's report files: `results.json`, `results.md` and `score_vs_step.png`.

`results.md` holds two tables: scores with one row per checkpoint and one column per split
(the comparison researchers read), then every split and subset with n, unparsed and format.
The plot draws the score of each split against the training step, one line per split (and per
run and stage when several are compared); checkpoints without a step are left out of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rft.eval.runner import ALL

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
PLOT_PNG = "score_vs_step.png"


def write_results(out_dir: Path, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """results.json and results.md (and the plot when a checkpoint has a step); their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_JSON).write_text(json.dumps(list(rows), indent=1))
    (out_dir / RESULTS_MD).write_text(markdown(rows))
    paths = [out_dir / RESULTS_JSON, out_dir / RESULTS_MD]
    plot = plot_scores(rows, out_dir / PLOT_PNG)
    return paths + ([plot] if plot else [])


def _targets(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return list(dict.fromkeys((r["model"], r["checkpoint"], r["step"]) for r in rows))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value).replace("|", "\\|")


def _table(header: list[str], body: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison table (checkpoints x splits) and the detailed table."""
    if not rows:
        return "No results.\n"
    splits = list(dict.fromkeys(r["split"] for r in rows))
    overall = {(r["model"], r["checkpoint"], r["split"]): r for r in rows if r["subset"] == ALL}
    body = [[m, c, s, *(overall.get((m, c, sp), {}).get("score") for sp in splits)] for m, c, s in _targets(rows)]
    detail = [[r["model"], r["checkpoint"], r["step"], r["split"], r["subset"], r["score"], r["n"], r["n_unparsed"], r["format"]] for r in rows]
    return (
        f"# Evaluation: {rows[0]['task']}\n\nScore (0-100) per split.\n\n"
        + _table(["model", "checkpoint", "step", *splits], body)
        + "\n\n## Per split and subset\n\n"
        + _table(["model", "checkpoint", "step", "split", "subset", "score", "n", "unparsed", "format %"], detail)
        + "\n"
    )


def _series_name(row: dict[str, Any], several_models: bool) -> str:
    parts = [Path(row["model"]).name] if several_models else []
    if "/" in row["checkpoint"]:
        parts.append(row["checkpoint"].rsplit("/", 1)[0])
    return " ".join([*parts, row["split"]])


def plot_scores(rows: Sequence[dict[str, Any]], out: Path) -> Path | None:
    """Score vs training step, one line per split (and run/stage); None when no row has a step."""
    from rft.tracking.report import plot_series

    stepped = [r for r in rows if r["subset"] == ALL and r["step"] is not None]
    if not stepped:
        return None
    several = len({r["model"] for r in stepped}) > 1
    points = [{"step": r["step"], _series_name(r, several): r["score"]} for r in stepped]
    names = list(dict.fromkeys(k for p in points for k in p if k != "step"))
    return plot_series(points, [_escape(n) for n in names], out, title=f"{rows[0]['task']}: evaluation score", xlabel="training step", ylabel="score (0-100)")


def _escape(name: str) -> str:
    """A name as an fnmatch pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
