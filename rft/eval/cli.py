"""`python -m rft.eval`: score models and checkpoints on the task's ID and OOD splits.

    python -m rft.eval task=counting model.path=/models/Qwen2-VL-2B-Instruct eval.prompt=zero_shot
    python -m rft.eval task=structure eval.run=outputs/runs/2025-01-01_12-00-00_structure_reason_rft
    python -m rft.eval task=counting 'eval.checkpoints=[Qwen/Qwen2-VL-2B-Instruct,/runs/a,/runs/b/checkpoints/step_200]'
    python -m rft.eval <same arguments> hydra.run.dir=outputs/eval/my_eval    # resume into a folder

The same configuration tree as `rft.launch` (task, model, data, rollout, eval groups); the run
folder defaults to `${outputs_root}/eval/<time>_<task>`. Under `<run folder>/eval/`:
`predictions.jsonl` (one line per record and checkpoint, also the journal a resumed run skips),
`results.json` (rows: task, model, checkpoint, step, split, subset, score, n, n_unparsed, format),
`results.md` (the comparison table) and `score_vs_step.png` (when checkpoints have steps). The
tracking sinks (metrics.jsonl, mlflow by default) get `eval/<split>/score|format|n_unparsed` and
per subset `eval/<split>/<subset>/...` for each checkpoint, at its training step (prefixed with
the stage, `stage2_rl/eval/...`, for reason_rft runs), plus the files above as artifacts.

Checkpoints are resolved and data loaded before Ray starts, so a folder without a model fails at
once, naming it. The rollout actors start once, on the first checkpoint with work left, and load
each further checkpoint's weights in place (rft.eval.session). Records are generated in batches of
`eval.batch_size` (default 64 per rollout worker); each finished batch is appended to the journal.
With vLLM on GPU every request carries the sampling seed, so a resumed evaluation samples what an
uninterrupted one would; on CPU (vLLM's CPU build cannot rewind seeded generators) and with the
HF engine only greedy runs (`eval.greedy=true`) match exactly.

`eval.run` adds every checkpoint of a training run; `eval.batch_size` is the number of records
per generation call.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rft.config import ConfigError
from rft.data.records import Record
from rft.eval.journal import Journal, check_settings
from rft.eval.report import PLOT_PNG, markdown, write_results
from rft.eval.runner import (
    ALL,
    eval_sampling,
    items_kwargs,
    limited,
    prediction_rows,
    records_kwargs,
    result_rows,
    split_metrics,
)
from rft.eval.targets import PLAIN, Target, eval_targets
from rft.tasks import PromptStyle
from rft.types import SamplingSettings

log = logging.getLogger("rft.eval")
DEFAULT_RUN_DIR = "${outputs_root}/eval/${now:%Y-%m-%d_%H-%M-%S}_${task.name}"
DEFAULT_BATCH_SIZE = 64  # records per generation call and rollout worker
SPLIT_FILE = {"id": "data.test_id", "ood": "data.test_ood", "train": "data.train"}


@dataclass
class EvalPlan:
    task: Any
    targets: list[Target]
    splits: dict[str, list[Record]]
    kwargs: dict[str, dict[str, list[Any]]]  # per split: the scoring extras of its records
    style: PromptStyle
    sampling: SamplingSettings
    batch_size: int
    source: str


# ---- before Ray ---------------------------------------------------------------------------


def plan_eval(cfg: DictConfig) -> EvalPlan:
    """Targets, records and settings, with every check that needs no actor."""
    from rft.tasks.prompting import Purpose, prompt_style, task_for

    targets = eval_targets(cfg)
    splits, source = eval_records(cfg)
    task = task_for(cfg)
    batch_size = int(cfg.eval.batch_size or DEFAULT_BATCH_SIZE * cfg.rollout.num_workers)
    if batch_size < 1:
        raise ConfigError("eval.batch_size: must be >= 1")
    kwargs = {split: records_kwargs(task, records, cfg.model) for split, records in splits.items()}
    return EvalPlan(task, targets, splits, kwargs, prompt_style(cfg.stage.name, Purpose.eval, cfg), eval_sampling(cfg, cfg.trainer.seed), batch_size, source)


def eval_records(cfg: DictConfig) -> tuple[dict[str, list[Record]], str]:
    """{split: records} for `eval.splits` (after `eval.limit`), and where they came from."""
    if not cfg.eval.splits:  # each split is an EvalSplit: the schema rejects unknown ones
        raise ConfigError("eval.splits: at least one split is needed")
    if any(cfg.data.get(k) for k in ("train", "test_id", "test_ood")):
        splits = _file_records(cfg)
        source = ", ".join(f"{split} {cfg.data.get(SPLIT_FILE[split].split('.')[1])}" for split in splits)
    else:
        from rft.data.splits import load_data

        data = load_data(cfg)
        splits = {"id": data.test_id, "ood": data.test_ood, "train": data.train}
        splits, source = {s: splits[s] for s in cfg.eval.splits}, data.source
    splits = {split: limited(cfg, records) for split, records in splits.items()}
    for split in [s for s, records in splits.items() if not records]:
        log.warning("split %r has no records in %s; skipped", split, source)
        del splits[split]
    if not splits:
        raise ConfigError(f"eval.splits: none of {list(cfg.eval.splits)} has records in {source}")
    for split, records in splits.items():
        _check_ids(split, records)
    return splits, source


def _file_records(cfg: DictConfig) -> dict[str, list[Record]]:
    from rft.data import load_records

    out = {}
    for split in cfg.eval.splits:
        key = SPLIT_FILE[split]
        path = cfg.data.get(key.split(".")[1])
        if not path:
            raise ConfigError(f"{key}: eval.splits asks for {split!r} but {key} is not set")
        out[split] = load_records(path, image_root=cfg.data.image_root, fmt=cfg.data.format, max_bad_fraction=cfg.data.max_bad_fraction).records
        if not out[split]:
            raise ConfigError(f"{key}: no usable records in {path}")
    return out


def _check_ids(split: str, records: list[Record]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"split {split!r}: record id {record.id!r} appears twice; evaluation needs unique ids (they key predictions.jsonl)")
        seen.add(record.id)


def settings_of(cfg: DictConfig, plan: EvalPlan) -> dict[str, Any]:
    """What the completions depend on; a resumed evaluation must match it."""
    return {
        "task": cfg.task.name,
        "prompt_style": plan.style,
        "sampling": dataclasses.asdict(plan.sampling),
        "engine": str(cfg.rollout.engine),
        "dtype": str(cfg.model.dtype),
        "pixels": [cfg.model.min_pixels, cfg.model.max_pixels],
        "box_format": str(cfg.model.box_format),
        "data": plan.source,
    }


# ---- the evaluation -----------------------------------------------------------------------


def run_eval(cfg: DictConfig, run_dir: Path, session=None) -> float | None:
    """Evaluate every target on every split into `run_dir/eval`; return the last target's score
    on the first split (for sweepers). `session`: rollout actors to reuse (left open)."""
    from rft.eval.session import EvalSession
    from rft.tracking import make_tracker

    plan = plan_eval(cfg)
    out_dir = Path(run_dir) / "eval"
    journal = Journal(out_dir / "predictions.jsonl")
    check_settings(out_dir / "settings.json", settings_of(cfg, plan), journal)
    _print_plan(plan, run_dir, len(journal))
    owned = session is None
    session = session or EvalSession()
    tracker = make_tracker(cfg, Path(run_dir), cfg.get("run_name") or f"eval_{cfg.task.name}")
    status, rows = "FAILED", []
    try:
        for index, target in enumerate(plan.targets):
            target_rows = evaluate_target(cfg, plan, target, session, journal)
            rows += target_rows
            write_results(out_dir, rows)
            tracker.log(target.step if target.step is not None else index, target_metrics(target, target_rows))
        for path in write_results(out_dir, rows) + [journal.path]:
            tracker.log_artifact(path)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.close(status)
        if owned:
            session.close()
    print(markdown(rows))
    print(f"eval folder: {out_dir}" + (f" (plot: {PLOT_PNG})" if (out_dir / PLOT_PNG).exists() else ""))
    last = [r for r in rows if r["subset"] == ALL]
    return last[-len(plan.splits)]["score"] if last else None


def target_metrics(target: Target, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Tracked metrics of one target: `eval/<split>/score|format|n_unparsed` (and per subset),
    under `<stage>/` for a multi-stage run's checkpoints, whose steps restart at each stage.
    The tracking step is the checkpoint's step, else the target's position in the list."""
    prefix = f"{target.stage}/" if target.stage else ""
    return {prefix + key: value for key, value in split_metrics(rows).items()}


def evaluate_target(cfg: DictConfig, plan: EvalPlan, target: Target, session, journal: Journal) -> list[dict[str, Any]]:
    """Generate what the journal lacks for `target`, then score each split from the journal."""
    rows = []
    for split, records in plan.splits.items():
        label = {"task": cfg.task.name, "model": target.model, "checkpoint": target.checkpoint, "step": target.step, "split": split}
        pending = [r for r in records if not journal.done(target.model, target.checkpoint, split, r.id)]
        for start in range(0, len(pending), plan.batch_size):
            batch = pending[start : start + plan.batch_size]
            journal.append(generate_batch(cfg, plan, target, session, batch, label))
            log.info("%s %s %s: %d/%d records", target.model, target.checkpoint, split, len(records) - len(pending) + start + len(batch), len(records))
        texts = [journal.get(target.model, target.checkpoint, split, r.id)["completion"] for r in records]
        rows += result_rows(plan.task, records, texts, plan.kwargs[split], label)[1]
    return rows


def generate_batch(cfg: DictConfig, plan: EvalPlan, target: Target, session, batch: list[Record], label: dict[str, Any]) -> list[dict[str, Any]]:
    """Prediction rows for one batch of records, generated with `target`'s weights."""
    from rft.tasks.prompting import prompt_items

    session.use(target, cfg)
    items = prompt_items(plan.task, session.processor, batch, plan.style, cfg.model)
    texts = session.generate(items, plan.sampling)
    result, _ = result_rows(plan.task, batch, texts, items_kwargs(items), label)
    return prediction_rows(batch, items, texts, result, label)


def _print_plan(plan: EvalPlan, run_dir: Path, done: int) -> None:
    sizes = ", ".join(f"{split} {len(records)}" for split, records in plan.splits.items())
    print(f"rft eval: task {plan.task.name}, {len(plan.targets)} checkpoint(s), records: {sizes} ({plan.source})")
    for target in plan.targets:
        name = target.model if target.checkpoint == PLAIN else f"{target.model} {target.checkpoint}"
        print(f"  {name} -> {target.folder}")
    if done:
        print(f"  resuming: {done} predictions already in {run_dir}/eval/predictions.jsonl")


# ---- command line -------------------------------------------------------------------------


def cli_args(args: list[str]) -> list[str]:
    """The command-line overrides plus this command's defaults (its run folder, job name)."""
    out = list(args)
    if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in out):
        out.append(f"hydra.run.dir={DEFAULT_RUN_DIR}")
    if not any(a.lstrip("+").startswith("hydra.job.name=") for a in out):
        out.append("hydra.job.name=eval")
    return out


def main() -> float | None:
    import hydra

    from rft.config import validate
    from rft.errors import user_errors_as_one_line
    from rft.paths import CONF_DIR, run_dir_of_current_job

    @hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
    def _main(cfg: DictConfig) -> float | None:
        with user_errors_as_one_line():
            validate(cfg)
            return run_eval(cfg, run_dir_of_current_job())

    sys.argv = [sys.argv[0], *cli_args(sys.argv[1:])]
    return _main()
