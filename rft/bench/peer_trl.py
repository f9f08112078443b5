"""The peer column of `python -m rft.bench rl --peer trl`: TRL's `GRPOTrainer` on the same run.

    python -m rft.bench.peer_trl --size tiny --steps 3 --prompts 4 --max-tokens 32 --out DIR

TRL (`pip install -e ".[bench]"`) is a benchmark-only extra, never imported by rft itself. The
peer sees what rft's benchmark run of the same size sees, because both come from one composed
configuration (`rft.bench.rl.run_overrides`): the same locally built model folder, the same
synthetic counting records rendered as the same chat messages with their images, G completions
per prompt, `rollout.max_tokens` new tokens sampled with the same temperature / top-p / top-k,
`algo.beta`, `algo.lr`, the clip range, per-group reward scaling and the same weighted reward
(rft.rewards). The policy is loaded as rft's learner loads it (float32 weights, vision tower
frozen); bf16 is TRL's mixed precision (autocast), as rft's learner uses on a CPU with native
bf16, else float32. One optimizer step per generation batch (prompts x G completions), no
gradient checkpointing, HF `generate` (TRL's vLLM paths need a server or a GPU).

Each step is timed by a `TrainerCallback` from one `on_step_end` to the next (the first from
`on_train_begin`: warm-up), which covers generation, reward, reference log-probs and the update.
It runs as its own process (the benchmark starts it with `run_subprocess`) so that its peak
resident memory is its own; it writes `peer.json` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rft.host import peak_rss_gb  # measured as `memory/learner_peak_rss_gb` is

PEER_NAME = "trl"
RESULT_NAME = "peer.json"


def compose_config(size: str, steps: int, prompts: int, max_tokens: int):
    """rft's configuration of the benchmark run of `size` (the HF-engine point: no vLLM setting
    enters the peer), composed and validated as `rft.launch` composes it."""
    from hydra import compose, initialize_config_dir

    from rft.bench.rl import run_overrides
    from rft.config import validate
    from rft.paths import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=run_overrides(size, "hf", steps, prompts, max_tokens))
    validate(cfg)
    return cfg


def peer_rows(cfg) -> list[dict[str, Any]]:
    """The training records as TRL dataset rows: conversational `prompt` (the task's messages
    for the RL style), the `image` (PIL, RGB) and the reference `solution`."""
    from PIL import Image

    from rft.data.splits import load_data
    from rft.tasks.base import PromptStyle
    from rft.tasks.prompting import task_for

    task = task_for(cfg)
    rows = []
    for record in load_data(cfg).train:
        if len(record.images) != 1:
            raise ValueError(f"record {record.id}: the peer expects one image per record, got {len(record.images)}")
        with Image.open(record.images[0]) as img:
            image = img.convert("RGB")
        rows.append({"prompt": task.messages(record, PromptStyle.rl), "image": image, "solution": record.answer})
    return rows


def completion_text(completion: Any) -> str:
    """A TRL completion as text: conversational ([{"role": "assistant", "content": ...}]) or plain."""
    if isinstance(completion, list):
        return "".join(_content_text(message.get("content", "")) for message in completion)
    return str(completion)


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def make_reward(cfg):
    """rft's weighted reward of the task (`reward.weights`, `reward.options`) as a TRL reward function."""
    from rft.rewards import WeightedReward

    scorer = WeightedReward(dict(cfg.reward.weights))
    options = dict(cfg.reward.options)

    def rft_reward(prompts, completions, solution, **_: Any) -> list[float]:
        return scorer([completion_text(c) for c in completions], list(solution), **options)

    return rft_reward


def make_args(cfg, out: Path, steps: int, prompts: int, bf16: bool):
    """GRPOConfig mirroring the rft run (see the module docstring)."""
    from trl import GRPOConfig

    g = int(cfg.algo.num_generations)
    return GRPOConfig(
        output_dir=str(out / "trl"),
        num_generations=g,
        max_completion_length=int(cfg.rollout.max_tokens),
        beta=float(cfg.algo.beta),
        learning_rate=float(cfg.algo.lr),
        epsilon=float(cfg.algo.clip_eps_low),
        epsilon_high=float(cfg.algo.clip_eps_high),
        loss_type="grpo",  # per-sequence token mean, then mean over sequences: rft's seq_mean_token_mean
        scale_rewards="group",
        temperature=float(cfg.rollout.temperature),
        top_p=float(cfg.rollout.top_p),
        top_k=int(cfg.rollout.top_k),
        per_device_train_batch_size=prompts * g,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        max_steps=steps,
        gradient_checkpointing=False,
        bf16=bf16,
        use_cpu=True,
        use_vllm=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
        seed=int(cfg.trainer.seed),
        disable_tqdm=True,
    )


def step_timer():
    """A TrainerCallback recording each step's wall seconds and TRL's logged values."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.step_s: list[float] = []
            self.logs: list[dict[str, float]] = []
            self._last = time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self._last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.step_s.append(now - self._last)
            self._last = now

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                self.logs.append({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})

    return StepTimer()


def time_generation(trainer) -> list[float]:
    """Wrap the trainer's generate-and-score phase (generation, rewards, old and reference
    log-probs: TRL's `_generate_and_score_completions`) in a timer; the list fills per call.
    The rest of a step is the update (forward, backward, optimizer) and TRL's bookkeeping."""
    seconds: list[float] = []
    phase = getattr(trainer, "_generate_and_score_completions", None)
    if phase is None:  # another TRL version: no split, the step time stands alone
        return seconds

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return phase(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    trainer._generate_and_score_completions = timed
    return seconds


def run_peer(size: str, steps: int, prompts: int, max_tokens: int, out: Path) -> dict[str, Any]:
    """Train `steps` TRL GRPO steps on the configuration of rft's run of `size`; the result."""
    import torch
    import transformers
    import trl
    from trl import GRPOTrainer

    from rft.models.loading import load_model, load_processor, native_bf16, resolve_model_path

    started = time.perf_counter()
    cfg = compose_config(size, steps, prompts, max_tokens)
    model_dir = resolve_model_path(str(cfg.model.path), cfg.model.arch)
    from datasets import Dataset

    dataset = Dataset.from_list(peer_rows(cfg))
    model = load_model(
        model_dir, dtype="float32", attn_implementation=cfg.model.attn_implementation, gradient_checkpointing=False, freeze_vision=cfg.model.freeze_vision
    )
    processor = load_processor(model_dir, cfg.model.min_pixels, cfg.model.max_pixels)
    bf16 = native_bf16()
    timer = step_timer()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=make_reward(cfg),
        args=make_args(cfg, out, steps, prompts, bf16),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[timer],
    )
    generate_score_s = time_generation(trainer)
    trainer.train()
    return {
        "peer": PEER_NAME,
        "size": size,
        "model_dir": str(model_dir),
        "parameters": model.num_parameters(),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "settings": {"prompts": prompts, "generations": int(cfg.algo.num_generations), "max_tokens": max_tokens, "beta": float(cfg.algo.beta), "bf16": bf16},
        "step_s": timer.step_s,
        "generate_score_s": generate_score_s,
        "logs": timer.logs,
        "peak_rss_gb": peak_rss_gb(),
        "torch_threads": torch.get_num_threads(),
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def peer_command(size: str, steps: int, prompts: int, max_tokens: int, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rft.bench.peer_trl",
        "--size",
        size,
        "--steps",
        str(steps),
        "--prompts",
        str(prompts),
        "--max-tokens",
        str(max_tokens),
        "--out",
        str(out),
    ]


def trl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("trl") is not None


def main(argv: list[str] | None = None) -> int:
    from rft.bench.rl import SIZES

    parser = argparse.ArgumentParser(prog="python -m rft.bench.peer_trl", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_peer(args.size, args.steps, args.prompts, args.max_tokens, out)
    (out / RESULT_NAME).write_text(json.dumps(result, indent=1) + "\n")
    print(f"[rft.bench peer_trl] {args.size}: steps {[round(s, 2) for s in result['step_s']]} s, peak RSS {result['peak_rss_gb']:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
