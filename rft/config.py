"""Typed schemas for every configuration group, registered in Hydra's ConfigStore.

`conf/config.yaml` starts its defaults list with `rft_schema`, so every YAML file and every
command-line override is merged into these dataclasses: an unknown key, a wrong type or a value
outside an Enum fails at composition time, naming the key (OmegaConf's `full_key`). Checks that
span several keys live in `validate()`, which `rft.launch` runs before Ray starts.

No `_target_` is ever instantiated: configuration selects project code by name (task, reward,
algorithm, engine), so a YAML file or an override cannot import arbitrary code.

Typed once, at the entry points. `rft.launch`, `rft.eval` and the jobs CLI compose through Hydra
against this schema, and the result stays a structured `DictConfig`: every choice is an Enum
member from then on, so no code below converts or compares spellings. We keep the DictConfig
rather than `OmegaConf.to_object` because it stays typed after composition (an assignment or
merge is validated against the schema, naming the key), keeps interpolations (`outputs_root`)
and is what Hydra, the sweeper and the saved `.hydra/config.yaml` work with. Every choice is a
`StrEnum`, so a member formats as, and compares equal to, its plain string: logs, file names and
comparisons with literals need no helper. Choices that name things a lower layer owns take that
layer's Enum (`PromptStyle` from rft.tasks, the algorithm's from rft.algo, `DataFormat` from
rft.data), so each vocabulary is written once.

Defaults: the YAML files under `conf/` and the defaults here are the only ones. The settings
objects the engines take (`AlgoSettings`, `LearnerSettings`, `EngineSettings`) are built from
their config sections by one constructor each and have no defaults of their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from rft.algo.config import Advantage, Aggregation, AlgoName, KLEstimator
from rft.data.readers import DataFormat
from rft.errors import ConfigError
from rft.tasks.base import PromptStyle
from rft.tracking.result import Direction
from rft.weights.modes import WeightSync, validate_mode


class StageName(StrEnum):
    ans_sft = "ans_sft"
    cot_sft = "cot_sft"
    rl = "rl"
    zero = "zero"
    reason_rft = "reason_rft"


class Engine(StrEnum):
    vllm = "vllm"
    hf = "hf"


class Arch(StrEnum):
    qwen2vl = "qwen2vl"
    qwen25vl = "qwen25vl"


class BoxFormat(StrEnum):
    norm1000 = "norm1000"  # Qwen2-VL: 0-1000 normalised
    abs = "abs"  # Qwen2.5-VL: absolute pixels of the resized image


class DType(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    auto = "auto"  # bfloat16 on GPU, float32 on CPU


class Attention(StrEnum):
    sdpa = "sdpa"
    eager = "eager"
    flash_attention_2 = "flash_attention_2"


# eval.prompt: `auto` (the prompt the stage trains on, see rft.tasks.prompting.prompt_style) or
# one of the task's prompt styles; derived from PromptStyle so there is one vocabulary.
EvalPrompt = StrEnum("EvalPrompt", {"auto": "auto", **{style.name: style.value for style in PromptStyle}})


class Scheduler(StrEnum):
    cosine = "cosine"
    linear = "linear"
    constant = "constant"


class DistBackend(StrEnum):
    auto = "auto"  # nccl on GPU, gloo on CPU
    nccl = "nccl"
    gloo = "gloo"


class RLData(StrEnum):
    rest = "rest"  # reason_rft stage 2 trains on the records stage 1 did not use
    all = "all"


class Sink(StrEnum):
    jsonl = "jsonl"
    mlflow = "mlflow"
    wandb = "wandb"


class WandbMode(StrEnum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


class ConsoleMode(StrEnum):
    quiet = "quiet"  # the terminal shows rft's lines; library output goes to the run's launch.log
    verbose = "verbose"  # library output on the terminal too (rft.tracking.console)


class EvalSplit(StrEnum):
    id = "id"
    ood = "ood"
    train = "train"


class ResumeMode(StrEnum):
    auto = "auto"  # continue from the latest checkpoint of this run folder, if any
    never = "never"


@dataclass
class TaskConfig:
    name: str = MISSING
    # Options for the task's synthetic generator (rft.data.synth), e.g. min_objects.
    synth: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    train: str | None = None  # null: the task's synthetic data, built and cached locally
    test_id: str | None = None
    test_ood: str | None = None
    image_root: str | None = None  # default: the folder of each data file
    format: DataFormat = DataFormat.auto
    max_bad_fraction: float = 0.05
    synth_n_train: int = 2000
    synth_n_test: int = 200
    synth_seed: int = 0
    synth_image_size: int = 112
    limit_train: int | None = None  # use only the first N training records


@dataclass
class ModelConfig:
    name: str = MISSING
    path: str = MISSING  # local folder, `tiny:<arch>[:size]`, or a hub id
    arch: Arch = Arch.qwen2vl
    dtype: DType = DType.auto
    attn_implementation: Attention = Attention.sdpa
    min_pixels: int = 3136
    max_pixels: int = 480000
    box_format: BoxFormat = BoxFormat.norm1000
    # null: on from 1 B parameters, off below (rft.models.loading.CHECKPOINTING_MIN_PARAMS)
    gradient_checkpointing: bool | None = None
    freeze_vision: bool = True


@dataclass
class StageConfig:
    name: StageName = MISSING
    sft_samples: int = 1600  # reason_rft: records for stage 1 (COT-SFT)
    rl_data: RLData = RLData.rest


@dataclass
class SFTConfig:
    lr: float = 1e-5
    scheduler: Scheduler = Scheduler.cosine
    warmup_steps: int = 100
    weight_decay: float = 0.1
    batch_size: int = 8
    epochs: int = 1
    max_steps: int | None = None  # overrides epochs when set
    eval_fraction: float = 0.05  # held-out share of the SFT data for loss
    max_grad_norm: float = 1.0
    # The user prompt COT-SFT trains on: `rl`, the RL stage's own prompt (so stage 2 of
    # reason_rft starts from a model that already answers it in format), or `cot_sft`, the task's
    # separate COT-SFT wording. Small models do not carry a format across prompt wordings.
    prompt: PromptStyle = PromptStyle.rl


@dataclass
class RewardConfig:
    name: str = MISSING
    weights: dict[str, float] = field(default_factory=dict)
    num_workers: int = 0  # >0: score in a process pool
    options: dict[str, Any] = field(default_factory=dict)  # e.g. numeric_equivalence: true


@dataclass
class AlgoConfig:
    name: AlgoName = AlgoName.grpo
    num_generations: int = 8
    lr: float = 1e-6
    lr_scheduler: Scheduler = Scheduler.linear
    warmup_steps: int = 0
    weight_decay: float = 0.0
    beta: float = 0.04
    kl_estimator: KLEstimator = KLEstimator.k3
    advantage: Advantage = Advantage.grpo
    aggregation: Aggregation = Aggregation.seq_mean_token_mean
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.2
    dynamic_sampling: bool = False
    max_refill_rounds: int = 3
    ppo_epochs: int = 1
    entropy_coef: float = 0.0
    tis_cap: float = 0.0  # truncated importance sampling against the engine's log-probs (e.g. 2); 0 = off
    max_grad_norm: float = 1.0


@dataclass
class RolloutConfig:
    engine: Engine = Engine.vllm
    num_workers: int = 1
    max_tokens: int = 512
    temperature: float = 0.9
    top_p: float = 0.9
    top_k: int = 50
    max_model_len: int = 4096
    enforce_eager: bool = True
    kv_cache_gb: int = 1  # vLLM CPU: VLLM_CPU_KVCACHE_SPACE
    gpu_memory_utilization: float = 0.4
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_restarts: int = 2
    weight_sync: WeightSync = WeightSync.auto


@dataclass
class LearnerConfig:
    num_workers: int = 1
    zero_stage: int = 3
    micro_batch_tokens: int = 8192
    # Pack each prompt's completions into one row behind one copy of the prompt (and image);
    # off automatically with flash_attention_2 (rft.learner.batch)
    shared_prefix: bool = True
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    backend: DistBackend = DistBackend.auto
    max_bad_updates: int = 3  # NaN/inf updates in a row before the run stops


@dataclass
class TrainerConfig:
    max_steps: int = 100
    seed: int = 42
    save_every: int = 50
    keep_last: int = 2
    prompts_per_step: int = 14
    resume: ResumeMode = ResumeMode.auto
    eval_every: int = 0
    log_every: int = 1
    progress: bool = True
    # The metric a sweep optimises: written to result.json and returned to Hydra sweepers.
    # null: the stage's own (ans_sft/cot_sft: eval/loss, minimize; rl/zero: reward/mean, maximize;
    # reason_rft: eval/id/score, maximize). A named metric needs its direction.
    # 0: generate, then update (on-policy). 1: the rollout actors generate the next batch with the
    # weights one version behind while the learners update (rft.trainer.rl explains the loss side).
    off_policy_steps: int = 0
    # Same seed, same run (rft.placement.determinism; README "Determinism"). null: on for runs on
    # CPUs only, where it costs little; off with GPUs.
    deterministic: bool | None = None
    optimized_metric: str | None = None
    optimized_direction: Direction | None = None


@dataclass
class ClusterConfig:
    address: str | None = None  # null: start a local Ray; "auto" or host:port to attach
    colocate: bool = False
    num_cpus: int | None = None
    placement_timeout_s: float = 60.0
    # A job driver's CPUs: 0 (Ray Jobs' own default), since it mostly waits on its actors, which hold
    # the cores; reserving one made a point need one CPU more than its bundles (unrunnable on a 2-CPU head).
    job_cpus: float = 0.0
    job_gpus: float = 0.0


@dataclass
class TrackingConfig:
    sinks: list[Sink] = field(default_factory=lambda: [Sink.jsonl, Sink.mlflow])
    mlflow_uri: str | None = None  # null: sqlite:///<outputs_root>/mlflow.db
    experiment: str = "rft"
    wandb_project: str = "rft"
    wandb_mode: WandbMode = WandbMode.offline
    console: ConsoleMode = ConsoleMode.quiet


@dataclass
class EvalConfig:
    splits: list[EvalSplit] = field(default_factory=lambda: [EvalSplit.id, EvalSplit.ood])
    prompt: EvalPrompt = EvalPrompt.auto
    temperature: float = 0.1
    top_p: float = 0.9
    top_k: int = 50
    max_tokens: int = 768
    greedy: bool = False
    checkpoints: list[str] = field(default_factory=list)
    run: str | None = None  # a training run folder: evaluate all of its checkpoints
    batch_size: int | None = None  # records per generation call (default: 64 per rollout worker)
    limit: int | None = None  # evaluate only the first N records of each split


@dataclass
class RFTConfig:
    task: TaskConfig = MISSING
    model: ModelConfig = MISSING
    stage: StageConfig = MISSING
    reward: RewardConfig = MISSING
    algo: AlgoConfig = MISSING
    rollout: RolloutConfig = MISSING
    learner: LearnerConfig = MISSING
    cluster: ClusterConfig = MISSING
    tracking: TrackingConfig = MISSING
    eval: EvalConfig = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    outputs_root: str = "outputs"
    run_name: str | None = None


def _abspath(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def register_schemas() -> None:
    """Register the schema and the `rft.abspath` resolver (idempotent)."""
    ConfigStore.instance().store(name="rft_schema", node=RFTConfig)
    if not OmegaConf.has_resolver("rft.abspath"):
        OmegaConf.register_new_resolver("rft.abspath", _abspath)


register_schemas()

VALID_ZERO_STAGES = (2, 3)


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _reject_targets(node: Any, path: str = "") -> None:
    if isinstance(node, DictConfig):
        for key in node:
            full = f"{path}.{key}" if path else str(key)
            _require(key != "_target_", full, "`_target_` is not allowed: rft selects its own code by name")
            _reject_targets(node._get_node(key), full)


def validate(cfg: DictConfig) -> None:
    """Cross-key checks that the schemas cannot express. Raises ConfigError naming the key."""
    from rft.rewards import REWARD_NAMES
    from rft.tasks import TASK_NAMES

    _reject_targets(cfg)
    _require(cfg.task.name in TASK_NAMES, "task.name", f"unknown task {cfg.task.name!r}; valid: {', '.join(TASK_NAMES)}")
    for name in cfg.reward.weights:
        _require(name in REWARD_NAMES, f"reward.weights.{name}", f"unknown reward; valid: {', '.join(REWARD_NAMES)}")
    _require(len(cfg.reward.weights) > 0, "reward.weights", "at least one reward is needed")
    _require(cfg.learner.zero_stage in VALID_ZERO_STAGES, "learner.zero_stage", f"must be one of {VALID_ZERO_STAGES}")
    _require(cfg.learner.num_workers >= 1, "learner.num_workers", "must be >= 1")
    _require(cfg.rollout.num_workers >= 1, "rollout.num_workers", "must be >= 1")
    _require(cfg.algo.num_generations >= 2, "algo.num_generations", "GRPO needs at least 2 completions per prompt")
    _require(cfg.algo.ppo_epochs >= 1, "algo.ppo_epochs", "must be >= 1")
    _require(cfg.algo.tis_cap >= 0, "algo.tis_cap", "must be >= 0 (0 turns truncated importance sampling off)")
    _require(cfg.algo.beta >= 0, "algo.beta", "must be >= 0")
    _require(cfg.algo.lr > 0, "algo.lr", "must be > 0")
    _require(cfg.trainer.max_steps >= 1, "trainer.max_steps", "must be >= 1")
    _require(cfg.trainer.prompts_per_step >= 1, "trainer.prompts_per_step", "must be >= 1")
    _require(cfg.trainer.save_every >= 1, "trainer.save_every", "must be >= 1")
    _require(
        cfg.trainer.optimized_metric is None or cfg.trainer.optimized_direction is not None,
        "trainer.optimized_direction",
        f"trainer.optimized_metric={cfg.trainer.optimized_metric} needs a direction: minimize or maximize",
    )
    _require(
        cfg.trainer.off_policy_steps in (0, 1),
        "trainer.off_policy_steps",
        "must be 0 (synchronous) or 1 (generate one batch ahead); no other value is supported",
    )
    _require(
        not (cfg.trainer.off_policy_steps and cfg.cluster.colocate and cfg.rollout.gpus_per_worker > 0),
        "trainer.off_policy_steps",
        "=1 generates while the learners update, but colocated vLLM engines sleep during updates: set cluster.colocate=false",
    )
    _require(0 < cfg.model.min_pixels <= cfg.model.max_pixels, "model.min_pixels", "must be > 0 and <= model.max_pixels")
    validate_mode(cfg)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain Python values (Enums as their names)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]
