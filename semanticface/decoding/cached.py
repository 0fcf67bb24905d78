"""A batch of sequences extended chunk by chunk through the model with a KV cache.

Rows may need different numbers of new tokens in one step (one row's number took an extra digit, another row's
description ended early). Each chunk is right-aligned: shorter rows are padded on the left with masked "holes"
(attention mask 0), so every row's last real token sits in the last column and one ``logits_to_keep=1`` forward
serves the whole batch. Holes stay in the cache, masked, for the rest of the decode.

Positions skip holes: a token's text position is the number of real tokens before it in its row (what
``generate`` computes from the attention mask for left padding). Qwen-VL's multimodal rotary embedding (mRoPE)
gives text after an image positions offset by a per-row ``rope_deltas``, which the model computes in the prefill
from the image grid; later text-only chunks get ``text position + rope_deltas`` on all three rotary axes.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache


def _rope_module(model: Any) -> Any | None:
    """The submodule that computes multimodal rotary positions (Qwen2/2.5/3-VL), if any."""
    for module in model.modules():
        if hasattr(module, "get_rope_index") and hasattr(module, "rope_deltas"):
            return module
    return None


class CachedBatch:
    """Prefill once, then :meth:`extend` with per-row token lists; counts forward passes."""

    def __init__(self, model: Any, model_inputs: Any, pad_token_id: int) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.forward_passes = 0
        inputs = dict(model_inputs)
        input_ids = inputs.pop("input_ids")
        mask = inputs.pop("attention_mask", None)
        if mask is None:
            mask = torch.ones_like(input_ids)
        self.device = input_ids.device
        self.mask = mask.long()
        self.rope = _rope_module(model)
        self.cache = DynamicCache(config=getattr(model, "config", None))
        kwargs: dict[str, Any] = {}
        if self.rope is None:
            kwargs["position_ids"] = self._text_positions(self.mask.shape[1])
        else:
            self.rope.rope_deltas = None  # recomputed from this batch's images in the prefill
        left_aligned = bool(self.mask[:, -1].all())
        out = self._forward(input_ids, self.mask, logits_to_keep=1 if left_aligned else 0, **inputs, **kwargs)
        logits = out.logits
        if not left_aligned:  # right padding: read each row at its last real token
            last = self.mask.shape[1] - 1 - self.mask.flip(-1).argmax(-1)
            logits = logits[torch.arange(logits.shape[0], device=self.device), last][:, None]
        self.last_logits = logits[:, -1].float()
        self.rope_deltas = None
        if self.rope is not None:
            deltas = getattr(self.rope, "rope_deltas", None)
            self.rope_deltas = torch.zeros(len(self.mask), 1, dtype=torch.long, device=self.device)
            if deltas is not None:
                self.rope_deltas = deltas.to(self.device).long().reshape(-1, 1).expand(len(self.mask), 1)

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    def _text_positions(self, width: int) -> torch.Tensor:
        positions = self.mask.cumsum(-1) - 1
        return positions.clamp(min=0)[:, -width:]

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> Any:
        self.forward_passes += 1
        return self.model(
            input_ids=input_ids, attention_mask=mask, past_key_values=self.cache, use_cache=True, **kwargs
        )

    def extend(self, feeds: list[list[int]]) -> None:
        """Append each row's tokens in one forward pass; rows with tokens get fresh ``last_logits``."""
        width = max((len(f) for f in feeds), default=0)
        if width == 0:
            return
        ids = torch.tensor([[self.pad_token_id] * (width - len(f)) + list(f) for f in feeds], dtype=torch.long)
        chunk_mask = torch.tensor([[0] * (width - len(f)) + [1] * len(f) for f in feeds], dtype=torch.long)
        ids, chunk_mask = ids.to(self.device), chunk_mask.to(self.device)
        self.mask = torch.cat([self.mask, chunk_mask], dim=1)
        positions = self._text_positions(width)
        if self.rope_deltas is not None:
            positions = (positions + self.rope_deltas).unsqueeze(0).expand(3, -1, -1)
        out = self._forward(ids, self.mask, position_ids=positions, logits_to_keep=1)
        fresh = out.logits[:, -1].float()
        has_feed = torch.tensor([bool(f) for f in feeds], device=self.device)
        self.last_logits = torch.where(has_feed[:, None], fresh, self.last_logits)
