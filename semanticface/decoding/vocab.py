"""What each vocabulary entry spells, computed once per tokenizer.

Constrained decoding needs, for every token id, the exact characters it adds to the text. Decoding each id on its
own gives that for byte-level BPE (GPT-2/Qwen/Llama-3 style) and for SentencePiece pieces without a leading-space
marker; tokens whose lone decoding is ambiguous (``▁1`` decodes to ``1`` but adds a space in context, byte-fallback
``<0x31>``) are simply never offered as number tokens. That keeps the number grammar exact for any tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NUMBER_CHARS = frozenset("-.0123456789")


@dataclass(frozen=True)
class TokenTable:
    """Per-id decoded strings of a tokenizer, plus the ids safe to spell numbers and the ids never to sample."""

    strings: tuple[str, ...]
    number_tokens: dict[int, str]
    special_ids: frozenset[int]
    exact_ids: frozenset[int] = frozenset()  # ids whose lone decoding is the token itself (no space marker)

    @property
    def size(self) -> int:
        return len(self.strings)


_CACHE: dict[int, tuple[Any, TokenTable]] = {}


def token_table(tokenizer: Any) -> TokenTable:
    """Build (or reuse) the table of a tokenizer. Costs one batched decode of the vocabulary (~1 s for 150k ids)."""
    cached = _CACHE.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    size = len(tokenizer)
    strings = tuple(tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False))
    raw = tokenizer.convert_ids_to_tokens(list(range(size)))
    number_tokens = {i: s for i, (s, r) in enumerate(zip(strings, raw)) if s and set(s) <= NUMBER_CHARS and r == s}
    special = set(tokenizer.all_special_ids)
    # Added tokens (image placeholders, chat markers) are control tokens even when not flagged as special.
    special |= {i for i in getattr(tokenizer, "added_tokens_decoder", {}) if i < size}
    exact = frozenset(i for i, (s, r) in enumerate(zip(strings, raw)) if s and r == s)
    table = TokenTable(strings, number_tokens, frozenset(special), exact)
    _CACHE[id(tokenizer)] = (tokenizer, table)
    return table
