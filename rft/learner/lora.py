"""LoRA on the learner (`learner.lora.rank > 0`): PEFT adapters around the loaded policy.

- Targets: the configured module names (default: q/k/v/o and gate/up/down projections) inside
  the language model only. Qwen2.5-VL's vision blocks also have gate/up/down projections, so the
  match is a regex anchored at `language_model` rather than PEFT's plain name list.
- Everything but the adapters is frozen, the vision tower included; the optimizer (and ZeRO's
  partitions of gradients and optimizer states) holds the adapters only.
- The reference model for the KL term is the same module with its adapters disabled
  (`adapters_off`): no second copy of the base in memory.
- Weight sync and checkpoints move the adapter only: `adapter_state` (PEFT's names, which vLLM's
  LoRA loader reads) and `rft.models.adapter.write_adapter` (a PEFT folder).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass

import torch

ADAPTER_NAME = "default"  # PEFT's; it is dropped from the names saved and sent


@dataclass(frozen=True)
class LoRASettings:
    rank: int  # 0: off
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]


def target_regex(names: tuple[str, ...] | list[str]) -> str:
    """A PEFT `target_modules` regex: modules named `names` under the language model only."""
    return r".*language_model\..*\.(" + "|".join(re.escape(name) for name in names) + r")"


def wrap(model, settings: LoRASettings):
    """`model` wrapped in a PEFT LoRA model; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target_regex(settings.target_modules),
        bias="none",
    )
    try:
        return get_peft_model(model, config, adapter_name=ADAPTER_NAME)
    except ValueError as err:  # PEFT: "Target modules ... not found in the base model"
        raise ValueError(f"learner.lora.target_modules={list(settings.target_modules)} match no language-model linear of this model") from err


def is_peft(module) -> bool:
    from peft import PeftModel

    return isinstance(getattr(module, "module", module), PeftModel)


def adapters_off(module):
    """A context in which `module` (a PEFT model, or a DeepSpeed engine around one) runs as its base."""
    inner = getattr(module, "module", module)
    return inner.disable_adapter() if is_peft(inner) else contextlib.nullcontext()


def saved_name(param_name: str) -> str:
    """A trainable adapter parameter's in-memory name as PEFT saves it (adapter name dropped)."""
    return param_name.replace(f".{ADAPTER_NAME}.", ".")


def adapter_params(module) -> dict[str, torch.nn.Parameter]:
    """Saved name -> parameter, for every adapter weight of `module`, in a fixed order."""
    inner = getattr(module, "module", module)
    return {saved_name(name): p for name, p in inner.named_parameters() if "lora_" in name}


def adapter_config(module) -> dict:
    """The adapter's `adapter_config.json` content (base model path included)."""
    inner = getattr(module, "module", module)
    return json.loads(json.dumps(inner.peft_config[ADAPTER_NAME].to_dict(), default=_jsonable))


def _jsonable(value):
    return sorted(value) if isinstance(value, set) else str(value)


def gathered_state(module, zero_stage: int, rank: int) -> dict[str, torch.Tensor] | None:
    """The adapter's weights (saved names, CPU copies) on rank 0, None elsewhere. Collective
    under ZeRO-3 (the adapters are partitioned like every other parameter)."""
    params = adapter_params(module)
    gather = contextlib.nullcontext()
    if zero_stage == 3:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=None)
    with gather:
        return {name: p.detach().to("cpu", copy=True) for name, p in params.items()} if rank == 0 else None


def base_model(module):
    """The transformers model inside a PEFT wrapper (`module` itself otherwise). Code that reaches
    into the model's parts (`.model.get_rope_index`) needs it: a PEFT model's `.model` is the
    whole transformers model, not its inner one."""
    return module.get_base_model() if is_peft(module) else module
