"""A run's report from its metrics.jsonl: `report.png` (one panel per metric family) and
`report.html` (that image embedded, whether RL had signal, plus the last value of every metric).
No server needed.

    write_report("outputs/rl/counting-grpo")          # -> .../report.html
    plot_series(rows, ["eval/*/score"], "scores.png")  # one panel, e.g. eval score vs step

"Whether RL had signal" (`signal_tables`, also in a Reason-RFT run's summary.md): the share of
prompt groups with a non-zero advantage and the mean reward per step (all-correct or all-wrong
groups teach GRPO nothing), and the ID/OOD evaluation at every evaluated step.

Panels whose metrics a run never logged are skipped. Patterns use shell-style wildcards
(`eval/*/score`). When a step was logged twice (a resumed run), the later row wins.
Rendering uses matplotlib's Agg canvas directly, without pyplot, so the process-wide backend is
left alone and no display is needed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import html
import json
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rft.tracking.params import to_number

# (panel title, metric name patterns): a panel draws every metric matching any of its patterns.
DEFAULT_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("reward/mean",)),
    ("accuracy", ("accuracy/mean", "*/accuracy/mean")),
    ("format", ("format/mean", "*/format/mean")),
    ("kl", ("kl", "*/kl")),
    ("response length", ("response_length/mean",)),
    ("step time (s)", ("timing/step_s",)),
    ("eval score", ("eval/*/score",)),
    ("groups with a non-zero advantage", ("adv/informative_groups",)),
)
SIGNAL_KEYS = ("adv/informative_groups", "reward/mean")
_SKIP = {"step", "wall_time"}


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a torn or corrupt line (a crash mid-write) is skipped with a warning."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            warnings.warn(f"{path}:{number}: skipping a line that is not JSON", RuntimeWarning, stacklevel=2)
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def match_keys(rows: Iterable[dict[str, Any]], patterns: Iterable[str]) -> list[str]:
    """Metric names in `rows` that match any of the patterns, sorted."""
    names = {k for row in rows for k in row if k not in _SKIP}
    patterns = list(patterns)
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def series(rows: Iterable[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric: numeric finite values only, the last row per step, by step."""
    by_step: dict[float, float] = {}
    for row in rows:
        value = to_number(row.get(key))
        step = to_number(row.get("step"))
        if value is not None and step is not None and math.isfinite(value):
            by_step[step] = value
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def last_values(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Each metric's last logged (step, value), numbers or not, sorted by name."""
    last: dict[str, tuple[Any, Any]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in _SKIP and value is not None:
                last[key] = (row.get("step"), value)
    return dict(sorted(last.items()))


def step_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[list[Any]]:
    """[step, value per key (None where absent)] for every step that logged any of `keys`; a
    step logged twice keeps its later values."""
    by_step: dict[Any, dict[str, Any]] = {}
    for row in rows:
        values = {k: to_number(row.get(k)) for k in keys if to_number(row.get(k)) is not None}
        if values:
            by_step.setdefault(row["step"], {}).update(values)
    return [[step, *(by_step[step].get(k) for k in keys)] for step in sorted(by_step)]


def eval_keys(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Whole-split evaluation metrics (`eval/<split>/score|format`, no subsets), score first."""
    names = {k for row in rows for k in row if k.startswith("eval/") and k.count("/") == 2 and k.rsplit("/", 1)[1] in ("score", "format")}
    return sorted(names, key=lambda k: (k.split("/")[1], k.endswith("format")))


def signal_tables(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """Whether RL had signal: (title, header, rows) for the share of groups with a non-zero
    advantage and the mean reward per step, and the evaluation at each evaluated step
    (before the first update, every `trainer.eval_every` steps, after the last). Tables a run
    never logged are left out."""
    tables = []
    signal = step_table(rows, SIGNAL_KEYS)
    if any(r[1] is not None for r in signal):
        tables.append(("RL signal per step", ["step", "groups with non-zero advantage (%)", "mean reward"], [[r[0], _pct(r[1]), r[2]] for r in signal]))
    keys = eval_keys(rows)
    if keys:
        tables.append(("Evaluation per checkpoint", ["step", *keys], step_table(rows, keys)))
    return tables


def signal_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """`signal_tables` as Markdown (for summary.md); empty when there is nothing to show."""
    parts = []
    for title, header, body in signal_tables(rows):
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_fmt_cell(v) for v in row) + " |" for row in body]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _signal_html(rows: Sequence[dict[str, Any]]) -> str:
    parts = []
    for title, header, body in signal_tables(rows):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        cells = "\n".join("<tr>" + "".join(f"<td>{html.escape(_fmt_cell(v))}</td>" for v in row) + "</tr>" for row in body)
        parts.append(f"<h2>{html.escape(title)}</h2>\n<table><tr>{head}</tr>\n{cells}\n</table>")
    return "\n".join(parts)


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _fmt_cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_series(
    rows: Sequence[dict[str, Any]],
    keys: Iterable[str],
    out: str | Path,
    *,
    title: str | None = None,
    xlabel: str = "step",
    ylabel: str | None = None,
) -> Path:
    """One panel with a line per metric matching `keys` (names or patterns), saved as a PNG."""
    fig, canvas = figure(1, 1, width=6.0, height=4.0)
    ax = fig.add_subplot(1, 1, 1)
    _draw(ax, rows, match_keys(rows, keys), title=title, xlabel=xlabel, ylabel=ylabel, legend=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.print_png(str(out))
    return out


def write_report(
    run_dir: str | Path,
    panels: Sequence[tuple[str, Sequence[str]]] = DEFAULT_PANELS,
    *,
    title: str | None = None,
) -> Path:
    """Write `report.png` and `report.html` into run_dir from its metrics.jsonl; return the HTML path."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    rows = read_metrics(metrics_path) if metrics_path.exists() else []
    title = title or run_dir.name
    png = _write_panels(rows, panels, run_dir / "report.png", title)
    out = run_dir / "report.html"
    out.write_text(_html(title, png, rows), encoding="utf-8")
    return out


def _write_panels(rows, panels, out: Path, title: str) -> Path:
    present = [(name, keys) for name, patterns in panels if (keys := match_keys(rows, patterns))]
    ncols = min(3, max(1, len(present)))
    nrows = max(1, math.ceil(len(present) / ncols))
    fig, canvas = figure(nrows, ncols, width=4.5, height=3.2)
    fig.suptitle(title)
    for i, (name, keys) in enumerate(present):
        _draw(fig.add_subplot(nrows, ncols, i + 1), rows, keys, title=name, xlabel="step", legend=len(keys) > 1 or keys[0] != name)
    if not present:
        fig.text(0.5, 0.5, "no metrics to plot yet", ha="center", va="center")
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.print_png(str(out))
    return out


def figure(nrows: int, ncols: int, *, width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), dpi=100, layout="constrained")
    return fig, FigureCanvasAgg(fig)


def _draw(ax, rows, keys: Sequence[str], *, title: str | None, xlabel: str, ylabel: str | None = None, legend: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    for key in keys:
        steps, values = series(rows, key)
        if steps:
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=key)
    if title:
        ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if legend and ax.lines:
        ax.legend(fontsize="small")


def _html(title: str, png: Path, rows: Sequence[dict[str, Any]]) -> str:
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    table = "\n".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(step))}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, (step, v) in last_values(rows).items()
    )
    steps = [r["step"] for r in rows]
    span = f"{len(rows)} rows, steps {min(steps)}–{max(steps)}" if steps else "no rows"
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}} img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{html.escape(span)}; written {stamp}</p>
<img alt="metrics" src="data:image/png;base64,{image}">
{_signal_html(rows)}
<h2>Last values</h2>
<table><tr><th>metric</th><th>step</th><th>value</th></tr>
{table}
</table></body></html>
"""


def _fmt(value: Any) -> str:
    number = to_number(value)
    if number is None:
        return str(value)
    return f"{number:.6g}"
