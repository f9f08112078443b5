"""Generation with transformers `generate` (`rollout.engine=hf`): same interface as vLLM.

Useful where vLLM is not available or for debugging; slower on anything but tiny models.
The processor applies the model's pixel budget, so prompts tokenise exactly as the learner's.
With LoRA, weight versions arrive as adapter folders, applied with PEFT over the base model.
"""

from __future__ import annotations

import glob
import os

import torch
from safetensors.torch import load_file

from rft.data.images import open_images
from rft.types import Completion, PromptItem, SamplingSettings, vision_token_ids


class HFEngine:
    def __init__(self, model_path: str, *, min_pixels: int, max_pixels: int, dtype: str = "float32", seed: int = 0, **_: object):
        from rft.models.loading import load_model, load_processor

        torch.manual_seed(seed)
        self.processor = load_processor(model_path, min_pixels=min_pixels, max_pixels=max_pixels)
        self.model = load_model(model_path, dtype="float32" if dtype == "auto" else dtype).eval()
        tok = self.processor.tokenizer
        self.eos_ids = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[-1]
        self.banned = vision_token_ids(tok)

    def compute_threads(self) -> int:
        """The threads the model runs with (this actor's torch pool)."""
        return torch.get_num_threads()

    def _inputs(self, item: PromptItem) -> dict:
        images = open_images(item.images) or None
        return self.processor(text=[item.prompt_text], images=images, return_tensors="pt")

    @torch.no_grad()
    def generate(self, items: list[PromptItem], sampling: SamplingSettings) -> list[Completion]:
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        completions = []
        for item in items:
            inputs = self._inputs(item)
            prompt_len = inputs["input_ids"].shape[1]
            out = self.model.generate(
                **inputs,
                do_sample=not sampling.greedy,
                temperature=sampling.temperature if not sampling.greedy else None,
                top_p=sampling.top_p if not sampling.greedy else None,
                top_k=(sampling.top_k if sampling.top_k > 0 else None) if not sampling.greedy else None,
                max_new_tokens=sampling.max_tokens,
                num_return_sequences=sampling.n,
                eos_token_id=self.eos_ids,
                suppress_tokens=self.banned,
                remove_invalid_values=True,  # a diverged model must not crash sampling; the learner skips its NaN loss
                pad_token_id=self.pad_id,
                output_logits=True,
                return_dict_in_generate=True,
            )
            # Raw (untempered) logits, as vLLM reports sampling log-probs by default.
            logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
            for index in range(sampling.n):
                new = out.sequences[index, prompt_len:].tolist()
                length = _length_to_eos(new, self.eos_ids)
                token_ids = new[:length]
                lp = logprobs[index, torch.arange(length), torch.tensor(token_ids, dtype=torch.long)].tolist()
                finished = length < len(new) or (length > 0 and token_ids[-1] in self.eos_ids)
                completions.append(
                    Completion(
                        group=item.group,
                        sample=index,
                        token_ids=token_ids,
                        text=self.processor.tokenizer.decode(token_ids, skip_special_tokens=True),
                        logprobs=lp,
                        finish_reason="stop" if finished else "length",
                        prompt_token_ids=inputs["input_ids"][0].tolist(),
                    )
                )
        return completions

    @torch.no_grad()
    def score(self, item: PromptItem, completion_token_ids: list[int]) -> list[float]:
        inputs = self._inputs(item)
        prompt_len = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"], torch.tensor([completion_token_ids])], dim=1)
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
        mm = inputs.get("mm_token_type_ids")
        if mm is not None:
            extra["mm_token_type_ids"] = torch.cat([mm, torch.zeros(1, len(completion_token_ids), dtype=mm.dtype)], dim=1)
        logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0, prompt_len - 1 : -1]
        return logits.float().log_softmax(-1).gather(-1, torch.tensor(completion_token_ids)[:, None])[:, 0].tolist()

    def load_weights(self, folder: str) -> int:
        """Take the weights in `folder` (a checkpoint, or a LoRA adapter applied to the base
        model); the bytes read."""
        from rft.models.adapter import adapter_bytes, is_adapter_folder, load_adapter_weights
        from rft.models.loading import checkpoint_state_dict, weight_file_bytes

        if is_adapter_folder(folder):
            self.model = load_adapter_weights(self.model, folder).eval()
            return adapter_bytes(folder)
        loaded: dict[str, torch.Tensor] = {}
        for file in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
            loaded.update(load_file(file))
        targets = checkpoint_state_dict(self.model)
        missing = sorted(set(targets) - set(loaded))
        if missing:
            raise KeyError(f"weights in {folder} lack {len(missing)} tensors, e.g. {missing[:3]}")
        with torch.no_grad():
            for name, tensor in targets.items():
                tensor.copy_(loaded[name].to(tensor.dtype))
        return weight_file_bytes(folder)

    def sleep(self) -> None:  # nothing to free: the HF engine holds no KV cache between calls
        pass

    def wake(self) -> None:
        pass


def _length_to_eos(token_ids: list[int], eos_ids: list[int]) -> int:
    """Generated length up to and including the first end-of-sequence token."""
    for position, token in enumerate(token_ids):
        if token in eos_ids:
            return position + 1
    return len(token_ids)
