"""The rollout engine of a bench point measured alone: the same `RolloutWorker` as in the run (same
model, engine settings, environment, cores and thread binding), outside Ray, generating the run's
batch shape (`trainer.prompts_per_step` training prompts x `algo.num_generations`,
`rollout.max_tokens`, the run's sampling; other prompts each round, as a run's steps have) with
nothing else on the machine. `python -m rft.bench rl` runs it in a subprocess after each vLLM
point and reports the run's rollout tokens/s as a share of it.

    python -m rft.bench.engine_alone <hydra overrides of the run>   # prints one JSON line
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

ROUNDS = 4  # the first is warm-up (the engine's first batch builds its kernels)


def engine_cores_of(cfg) -> list[int] | None:
    """The cores the run's first rollout worker gets (`rft.placement.workers`), None for vLLM's own choice."""
    from rft.placement.workers import core_sets

    cores = core_sets(cfg, learners=True, rollout=True)[1]
    return cores[0] if cores else None


def _settings(overrides: list[str]):
    from rft.config import compose_checked
    from rft.models.loading import resolve_model_path
    from rft.placement.workers import engine_settings

    cfg = compose_checked(overrides)
    return cfg, engine_settings(cfg, resolve_model_path(cfg.model.path, cfg.model.arch), seed=cfg.trainer.seed)


def engine_env(overrides: list[str]) -> dict[str, str]:
    """The environment the run's rollout actor starts with (`rollout_actor_env`)."""
    return _env(*_settings(overrides))


def _env(cfg, settings) -> dict[str, str]:
    from rft.placement.determinism import is_deterministic, rollout_env
    from rft.rollout.group import rollout_actor_env

    return rollout_actor_env(settings, rollout_env(is_deterministic(cfg), on_gpu=bool(cfg.rollout.gpus_per_worker)))


def training_prompts(cfg, model_path: str, count: int) -> tuple[Any, list]:
    """(processor, the first `count` training prompts) of a bench run, as its RL stage builds them."""
    from rft.data.splits import load_data
    from rft.models.loading import load_processor
    from rft.tasks.prompting import Purpose, prompt_items, prompt_style, task_for

    processor = load_processor(model_path, cfg.model.min_pixels, cfg.model.max_pixels)
    records = load_data(cfg).train[:count]
    return processor, prompt_items(task_for(cfg), processor, records, prompt_style("rl", Purpose.train, cfg), cfg.model)


def measure(overrides: list[str], rounds: int = ROUNDS) -> dict[str, Any]:
    from rft.rollout.worker import RolloutWorker
    from rft.types import SamplingSettings

    cfg, settings = _settings(overrides)
    os.environ.update(_env(cfg, settings))  # vLLM's variables; OpenMP's only count from the process start
    per_round = cfg.trainer.prompts_per_step
    _processor, items = training_prompts(cfg, settings.model_path, per_round * rounds)
    cores = engine_cores_of(cfg)
    worker = RolloutWorker(settings, dict(cfg.reward.weights), dict(cfg.reward.options), cpu_cores=cores)
    sampling = SamplingSettings(
        n=cfg.algo.num_generations, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k, max_tokens=cfg.rollout.max_tokens
    )
    rates = []
    for index in range(rounds):  # new prompts each round, as in a run (no cache of their images or prefixes)
        batch = items[index * per_round : (index + 1) * per_round] or items[:per_round]
        completions, timings = worker.generate(batch, sampling, with_rewards=False)
        rates.append(sum(len(c.token_ids) for c in completions) / timings["generate_s"])
    return {"tokens_per_s": statistics.median(rates[1:] or rates), "rounds": rates, "cores": cores, "engine_threads": worker.engine_threads}


def measure_in_subprocess(overrides: list[str], timeout_s: float = 900) -> dict[str, Any]:
    """`measure` in a fresh process (its engine's memory and threads go with it), started with the
    rollout actor's environment (OpenMP reads its settings when torch loads); {} if it failed."""
    env = {**os.environ, **engine_env(overrides)}
    done = subprocess.run([sys.executable, "-m", "rft.bench.engine_alone", *overrides], env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"[rft.bench] engine alone failed (exit {done.returncode}):\n{done.stderr[-2000:]}", flush=True)
        return {}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(measure(list(sys.argv[1:] if argv is None else argv))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
