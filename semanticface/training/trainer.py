"""``SFTTrainer`` with a resume that restores every weight, and an optional loss weight on number tokens.

transformers 5.x saves checkpoints of models such as Qwen2.5-VL under the original (legacy) key names but
``Trainer._load_from_checkpoint`` loads the raw safetensors file with ``strict=False``: the renamed language-model
weights are skipped with only a warning, so a resumed full fine-tune silently restarts from the base weights
(measured with transformers 5.23). Loading the checkpoint through ``from_pretrained`` applies the key mapping.

``number_token_weight`` (the distillation config field of the same name) scales the loss of the coefficient-value
tokens (completion tokens whose text holds a digit: the numbers of the coefficient block; descriptions hold no
digits) relative to every other completion token. The loss stays normalised by the number of completion tokens, as
TRL's is, so 1.0 is TRL's own loss (the trainer then does not touch it) and a semantic target can give its numbers the
share of the gradient they have in a coefficients-only target.
"""

from __future__ import annotations

import os
import re
from typing import Any

from trl import SFTTrainer

from semanticface.errors import ConfigError

_DIGIT = re.compile(r"[0-9]")


def number_token_mask(tokenizer: Any) -> Any:
    """A bool tensor over the vocabulary: True for tokens whose text holds a digit (coefficient values)."""
    import torch

    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    mask = torch.zeros(size, dtype=torch.bool)
    for token, index in tokenizer.get_vocab().items():
        if _DIGIT.search(token):
            mask[index] = True
    return mask


class DistillTrainer(SFTTrainer):
    """TRL's SFT trainer; full-model checkpoints are reloaded through ``from_pretrained`` on resume, and the loss of
    coefficient-value tokens is weighted by ``number_token_weight`` (1.0 = TRL's loss, untouched)."""

    def __init__(self, *args: Any, number_token_weight: float = 1.0, **kwargs: Any) -> None:
        if not number_token_weight > 0:
            raise ConfigError(f"number_token_weight must be > 0, got {number_token_weight}")
        super().__init__(*args, **kwargs)
        self.number_token_weight = float(number_token_weight)
        self._number_tokens: Any = None

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if self.number_token_weight == 1.0:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return self.weighted_loss(model, inputs, return_outputs, num_items_in_batch)

    def token_weights(self, labels: Any) -> Any:
        """Per-position loss weights of ``labels`` (already shifted: the tokens each position predicts)."""
        import torch

        if self._number_tokens is None:
            self._number_tokens = number_token_mask(self.processing_class)
        table = self._number_tokens.to(labels.device)
        is_number = table[labels.clamp(min=0, max=len(table) - 1)] & (labels != -100)
        return torch.where(is_number, self.number_token_weight, 1.0)

    def weighted_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """TRL's token-level NLL (sum over completion tokens / their count), each token scaled by its weight."""
        import torch

        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        weights = self.token_weights(inputs["labels"][:, 1:].to(outputs.log_probs.device))
        num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = -(outputs.log_probs * weights).sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        mode = "train" if model.training else "eval"
        valid = outputs.label_mask.sum()
        if valid > 0:
            self._metrics[mode]["mean_token_accuracy"].append((outputs.is_top1.sum() / valid).item())
        return (loss, outputs) if return_outputs else loss

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from transformers import PreTrainedModel

        target = model if model is not None else self.model
        full_weights = os.path.isfile(os.path.join(resume_from_checkpoint, "model.safetensors")) or os.path.isfile(
            os.path.join(resume_from_checkpoint, "model.safetensors.index.json")
        )
        if not isinstance(target, PreTrainedModel) or not full_weights or self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model=model)
            return
        loaded = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype, use_safetensors=True)
        result = target.load_state_dict(loaded.state_dict(), strict=False)
        # Tied or non-persistent buffers may be absent; any *weight* missing would mean a wrong checkpoint.
        missing = [k for k in result.missing_keys if not k.endswith("lm_head.weight")]
        if missing or result.unexpected_keys:
            raise ConfigError(
                f"{resume_from_checkpoint} does not match the model: missing {missing[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}"
            )
        del loaded
