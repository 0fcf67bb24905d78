"""``SFTTrainer`` with a resume that restores every weight.

transformers 5.x saves checkpoints of models such as Qwen2.5-VL under the original (legacy) key names but
``Trainer._load_from_checkpoint`` loads the raw safetensors file with ``strict=False``: the renamed language-model
weights are skipped with only a warning, so a resumed full fine-tune silently restarts from the base weights
(measured with transformers 5.23). Loading the checkpoint through ``from_pretrained`` applies the key mapping.
"""

from __future__ import annotations

import os
from typing import Any

from trl import SFTTrainer

from semanticface.errors import ConfigError


class DistillTrainer(SFTTrainer):
    """TRL's SFT trainer; full-model checkpoints are reloaded through ``from_pretrained`` on resume."""

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
