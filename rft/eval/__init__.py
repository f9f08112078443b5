"""Evaluation: generation on rollout actors, the task's scores per split and subset, reports.

- `rft.eval.cli`: `python -m rft.eval` (models, checkpoints, training runs; resumable).
- `rft.eval.runner`: prompts, sampling, scoring and result rows; `evaluate_splits` for trainers.
- `rft.eval.targets`: which model folders an evaluation covers.
- `rft.eval.session`: rollout actors reused across checkpoints.
- `rft.eval.journal`: predictions.jsonl as the resume journal.
- `rft.eval.report`: results.json, results.md, score-vs-step plot.
"""
