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

import dataclasses
import math
import os
import types
import typing
from collections.abc import Sequence
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
    # null: DEFAULT_MAX_MODEL_LEN, or the model's own position limit (config.json
    # max_position_embeddings) when that is lower; a setting beyond the limit is refused
    max_model_len: int | None = None
    enforce_eager: bool = True
    kv_cache_gb: int = 1  # vLLM CPU: VLLM_CPU_KVCACHE_SPACE
    gpu_memory_utilization: float = 0.4
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_restarts: int = 2
    weight_sync: WeightSync = WeightSync.auto


# Qwen2-VL / Qwen2.5-VL language-model linears, matched inside the language model only (Qwen2.5-VL
# vision blocks have gate/up/down projections too; rft.learner.lora.target_regex).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoRAConfig:
    rank: int = 0  # 0: full fine-tuning; > 0: PEFT adapters of this rank on `target_modules`
    alpha: float = 16.0  # the adapter's scale is alpha / rank
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class LearnerConfig:
    num_workers: int = 1
    zero_stage: int = 3
    micro_batch_tokens: int = 8192
    # Pack each prompt's completions into one row behind one copy of the prompt (and image);
    # off automatically with flash_attention_2 (rft.learner.batch)
    shared_prefix: bool = True
    # The reference model (algo.beta > 0, full fine-tuning) in an actor of its own on the rollout
    # worker's cores instead of in every learner rank (rft.learner.reference)
    separate_reference: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    backend: DistBackend = DistBackend.auto
    max_bad_updates: int = 3  # NaN/inf updates in a row before the run stops
    lora: LoRAConfig = field(default_factory=LoRAConfig)


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
    # 0: generate, then update (on-policy). 1: the rollout actors generate the next batch with the
    # weights one version behind while the learners update (rft.trainer.rl explains the loss side).
    off_policy_steps: int = 0
    # Same seed, same run (rft.placement.determinism; README "Determinism"). null: on for runs on
    # CPUs only, where it costs little; off with GPUs.
    deterministic: bool | None = None
    # Times the learner group is started afresh after a rank died (rft.trainer.rl), before the run stops.
    max_restarts: int = 2
    # The metric a sweep optimises: written to result.json and returned to Hydra sweepers.
    # null: the stage's own (ans_sft/cot_sft: eval/loss, minimize; rl/zero: reward/mean, maximize;
    # reason_rft: eval/id/score, maximize). A named metric needs its direction.
    optimized_metric: str | None = None
    optimized_direction: Direction | None = None


@dataclass
class ClusterConfig:
    # null: start a local Ray (loopback only, token auth); "auto" or host:port (a GCS) to attach.
    # A job server's http:// address is for `python -m rft.jobs submit` and sweeps (ray_jobs).
    address: str | None = None
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
DEFAULT_MAX_MODEL_LEN = 4096
INT_MAX = 2**31 - 1  # no count, size or seed of a run is larger
FLOAT_MAX = 1e6  # no rate, weight, cap or timeout of a run is larger


@dataclass(frozen=True)
class Bound:
    """The values a numeric key accepts: `low` to `high`, each end open or closed."""

    low: float
    high: float | None = None  # None: INT_MAX or FLOAT_MAX, by the key's type
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float, high: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < high if self.high_open else value <= high
        return math.isfinite(value) and above and below

    def describe(self, high: float) -> str:
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{_number(self.low)}, {_number(high)}{right}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


POSITIVE = Bound(0, low_open=True)
AT_LEAST_0 = Bound(0)
AT_LEAST_1 = Bound(1)
FRACTION = Bound(0, 1)
PROBABILITY = Bound(0, 1, low_open=True)

# Every int and float key of the schema, with the values it accepts (null, where the schema
# allows it, is always accepted). tests/test_bad_values.py fails for a numeric key missing here.
BOUNDS: dict[str, Bound] = {
    "data.max_bad_fraction": FRACTION,
    "data.synth_n_train": AT_LEAST_1,
    "data.synth_n_test": AT_LEAST_1,
    "data.synth_seed": AT_LEAST_0,
    "data.synth_image_size": Bound(28),  # one 14-pixel patch, merged 2x2
    "data.limit_train": AT_LEAST_1,
    "model.min_pixels": AT_LEAST_1,
    "model.max_pixels": AT_LEAST_1,
    "stage.sft_samples": AT_LEAST_1,
    "sft.lr": FRACTION,  # 0: a stage that does not move the weights (bench recipes use it)
    "sft.warmup_steps": AT_LEAST_0,
    "sft.weight_decay": AT_LEAST_0,
    "sft.batch_size": AT_LEAST_1,
    "sft.epochs": AT_LEAST_1,
    "sft.max_steps": AT_LEAST_1,
    "sft.eval_fraction": Bound(0, 1, high_open=True),
    "sft.max_grad_norm": POSITIVE,
    "reward.num_workers": AT_LEAST_0,
    "algo.num_generations": Bound(2),
    "algo.lr": Bound(0, 1, low_open=True),
    "algo.warmup_steps": AT_LEAST_0,
    "algo.weight_decay": AT_LEAST_0,
    "algo.beta": AT_LEAST_0,
    "algo.clip_eps_low": FRACTION,
    "algo.clip_eps_high": AT_LEAST_0,
    "algo.max_refill_rounds": AT_LEAST_0,
    "algo.ppo_epochs": AT_LEAST_1,
    "algo.entropy_coef": AT_LEAST_0,
    "algo.tis_cap": AT_LEAST_0,
    "algo.max_grad_norm": POSITIVE,
    "rollout.num_workers": AT_LEAST_1,
    "rollout.max_tokens": AT_LEAST_1,
    "rollout.temperature": AT_LEAST_0,
    "rollout.top_p": PROBABILITY,
    "rollout.top_k": AT_LEAST_0,  # 0: no top-k cut
    "rollout.max_model_len": AT_LEAST_1,
    "rollout.kv_cache_gb": AT_LEAST_1,
    "rollout.gpu_memory_utilization": PROBABILITY,
    "rollout.cpus_per_worker": AT_LEAST_0,
    "rollout.gpus_per_worker": AT_LEAST_0,
    "rollout.max_restarts": AT_LEAST_0,
    "learner.num_workers": AT_LEAST_1,
    "learner.lora.rank": Bound(0, 512),  # vLLM serves adapters up to rank 512
    "learner.lora.alpha": POSITIVE,
    "learner.lora.dropout": Bound(0, 1, high_open=True),
    "learner.zero_stage": Bound(2, 3),
    "learner.micro_batch_tokens": AT_LEAST_1,
    "learner.cpus_per_worker": AT_LEAST_0,
    "learner.gpus_per_worker": AT_LEAST_0,
    "learner.max_bad_updates": AT_LEAST_0,
    "trainer.max_steps": AT_LEAST_1,
    "trainer.seed": AT_LEAST_0,
    "trainer.save_every": AT_LEAST_1,
    "trainer.keep_last": AT_LEAST_1,
    "trainer.prompts_per_step": AT_LEAST_1,
    "trainer.eval_every": AT_LEAST_0,  # 0: no evaluation during training
    "trainer.log_every": AT_LEAST_1,
    "trainer.off_policy_steps": Bound(0, 1),
    "trainer.max_restarts": AT_LEAST_0,
    "cluster.num_cpus": AT_LEAST_1,
    "cluster.placement_timeout_s": POSITIVE,
    "cluster.job_cpus": AT_LEAST_0,
    "cluster.job_gpus": AT_LEAST_0,
    "eval.temperature": AT_LEAST_0,
    "eval.top_p": PROBABILITY,
    "eval.top_k": AT_LEAST_0,
    "eval.max_tokens": AT_LEAST_1,
    "eval.batch_size": AT_LEAST_1,
    "eval.limit": AT_LEAST_1,
}


def numeric_keys(schema: type | None = None, prefix: str = "") -> dict[str, type]:
    """Every int or float key of the schema (`RFTConfig` by default) and its type, by full key."""
    keys: dict[str, type] = {}
    for name, kind in schema_fields(schema or RFTConfig).items():
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(kind):
            keys.update(numeric_keys(kind, f"{key}."))
        elif kind in (int, float):
            keys[key] = kind
    return keys


def schema_fields(schema: type) -> dict[str, Any]:
    """A schema dataclass's fields and their types, `X | None` read as `X`."""
    hints = typing.get_type_hints(schema)
    plain = {}
    for item in dataclasses.fields(schema):
        kind = hints[item.name]
        if isinstance(kind, types.UnionType):
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        plain[item.name] = kind
    return plain


def _check_bounds(cfg: DictConfig) -> None:
    for key, kind in numeric_keys().items():
        value = OmegaConf.select(cfg, key)
        if value is None or isinstance(value, bool):
            continue
        bound = BOUNDS.get(key, AT_LEAST_0)
        high = bound.high if bound.high is not None else (INT_MAX if kind is int else FLOAT_MAX)
        _require(bound.admits(value, high), key, f"must be {bound.describe(high)}, got {value}")


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
        cfg.trainer.off_policy_steps in (0, 1),
        "trainer.off_policy_steps",
        "must be 0 (synchronous) or 1 (generate one batch ahead); no other value is supported",
    )
    _require(
        not (cfg.trainer.off_policy_steps and cfg.cluster.colocate and cfg.rollout.gpus_per_worker > 0),
        "trainer.off_policy_steps",
        "=1 generates while the learners update, but colocated vLLM engines sleep during updates: set cluster.colocate=false",
    )
    _require(
        cfg.trainer.optimized_metric is None or cfg.trainer.optimized_direction is not None,
        "trainer.optimized_direction",
        f"trainer.optimized_metric={cfg.trainer.optimized_metric} needs a direction: minimize or maximize",
    )
    _require(
        cfg.learner.lora.rank == 0 or len(cfg.learner.lora.target_modules) > 0,
        "learner.lora.target_modules",
        "LoRA (learner.lora.rank > 0) needs at least one module name to adapt",
    )
    validate_mode(cfg)
    _check_bounds(cfg)  # after the checks above, which say more about their keys
    _require(cfg.model.min_pixels <= cfg.model.max_pixels, "model.min_pixels", f"must be <= model.max_pixels ({cfg.model.max_pixels})")


def compose_checked(overrides: Sequence[str]) -> DictConfig:
    """The run configuration for command-line `overrides`, composed by Hydra as `rft.launch`
    composes it, every value resolved, and validated; a bad value is one ConfigError naming it."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rft.paths import CONF_DIR

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="launch"):
            cfg = compose(config_name="config", overrides=list(overrides))
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise config_error(err) from None
    validate(cfg)
    return cfg


def plain_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides of a sweep that set one value (`a=1`), without the swept ones (`a=1,2`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise config_error(err) from None
    return [override.input_line for override in parsed if not override.is_sweep_override()]


def config_error(err: BaseException) -> ConfigError:
    """A Hydra or OmegaConf composition error as one ConfigError line, led by the key it names."""
    from omegaconf.errors import OmegaConfBaseException

    cause: BaseException | None = err
    while cause is not None and not (isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None)):
        cause = cause.__cause__
    if cause is None:
        return ConfigError(_one_line(str(err)))
    return ConfigError(f"{cause.full_key}: {_one_line(getattr(cause, 'msg', None) or str(cause))}")


def _one_line(message: str) -> str:
    """A multi-line message on one line, without OmegaConf's `full_key:`/`object_type=` details."""
    details = ("full_key:", "reference_type=", "object_type=")
    message = message.split("Config search path:")[0]  # Hydra's list of where it looked
    lines = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(details)]
    return "; ".join(lines).replace(":; ", ": ")


def check_model_limits(cfg: DictConfig) -> None:
    """Checks against the model itself (its folder resolved, built or fetched as the run would)."""
    if cfg.rollout.max_model_len is None:
        return
    from rft.models.loading import resolve_model_path

    rollout_max_model_len(cfg.rollout.max_model_len, str(resolve_model_path(cfg.model.path)))


def check_launch_address(cfg: DictConfig) -> None:
    """`rft.launch` runs a job itself: it attaches to a cluster's GCS (`auto`, `host:port`), not to
    the job server's HTTP address, which takes jobs (`python -m rft.jobs submit`, ray_jobs sweeps)."""
    address = cfg.cluster.address
    _require(
        not (address and str(address).startswith(("http://", "https://"))),
        "cluster.address",
        f"{address} is a Ray job server: submit the run there with `python -m rft.jobs submit --address {address} -- <overrides>` "
        "(or sweep with -m hydra/launcher=ray_jobs); rft.launch takes null (a local Ray), auto or <head>:6379",
    )


def model_position_limit(model_path: str) -> int | None:
    """The model's `max_position_embeddings` (top level or `text_config`), None when unknown."""
    import json

    file = os.path.join(model_path, "config.json") if model_path else ""
    if not file or not os.path.isfile(file):
        return None
    with open(file) as handle:
        config = json.load(handle)
    for section in (config, config.get("text_config") or {}):
        if isinstance(section.get("max_position_embeddings"), int):
            return section["max_position_embeddings"]
    return None


def rollout_max_model_len(requested: int | None, model_path: str) -> int:
    """`rollout.max_model_len` for a model: the setting, else DEFAULT_MAX_MODEL_LEN capped at the
    model's position limit; ConfigError when the setting is beyond that limit."""
    limit = model_position_limit(model_path)
    if requested is None:
        return min(DEFAULT_MAX_MODEL_LEN, limit or DEFAULT_MAX_MODEL_LEN)
    _require(
        limit is None or requested <= limit,
        "rollout.max_model_len",
        f"{requested} is beyond the model's position limit, {limit} (max_position_embeddings in {model_path}/config.json); lower it or leave it null",
    )
    return requested


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain Python values (Enums as their names)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def separate_reference(cfg: DictConfig, need_reference: bool) -> bool:
    """The reference model in an actor of its own (`rft.learner.reference`): asked for, and a run
    that has a reference (algo.beta > 0) and full fine-tuning (with LoRA the reference is the
    learner's own model with its adapters off, nothing to move)."""
    return bool(cfg.learner.get("separate_reference", False) and need_reference and not cfg.learner.lora.rank)
