"""Evaluation: generation on rollout actors, the task's scores per split and subset, reports."""
