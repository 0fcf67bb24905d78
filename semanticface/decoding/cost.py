"""What emitting a given output costs: tokens, and model forward passes with plain and with forced decoding.

Plain ``generate`` runs one forward pass per generated token, the end-of-turn token included (the prefill gives
the first token). Forced decoding (:func:`semanticface.decoding.forced_generate`) runs the prefill plus one pass
per *sampled* token: literals and forced characters ride along with the next pass. :func:`forced_passes` counts
that for a model that emits ``text`` exactly, by walking the same number grammars and free-text rules as the
decoder (a test checks it against the passes ``forced_generate`` reports).
"""

from __future__ import annotations

import re
from typing import Any

from semanticface.contract import FreeText, LiteralPiece, NumberPiece, Segment
from semanticface.decoding.numbers import NumberGrammar
from semanticface.decoding.vocab import TokenTable, token_table
from semanticface.errors import OutputParseError


def text_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` on its own (no special tokens)."""
    return len(tokenizer.encode(text, add_special_tokens=False))


def plain_passes(tokenizer: Any, text: str) -> int:
    """Forward passes plain ``generate`` needs to emit ``text`` and the end-of-turn token."""
    return text_tokens(tokenizer, text) + 1


def _skeleton_regex(skeleton: list[Segment]) -> re.Pattern[str]:
    parts = []
    for segment in skeleton:
        if isinstance(segment, LiteralPiece):
            parts.append(re.escape(segment.text))
        elif isinstance(segment, FreeText):
            parts.append(r"([^\n{}]*?)")
        else:
            parts.append(f"({segment.pattern})")
    return re.compile("".join(parts), re.DOTALL)


def _number_samples(grammar: NumberGrammar, text: str) -> int:
    """Sampled tokens to walk ``text`` through the grammar (the longest matching token at each choice)."""
    forced, node = grammar.forced(grammar.root)
    spelled = "".join(grammar.tokens[t] for t in forced)
    samples = 0
    while not node.is_leaf:
        ids, ends = grammar.allowed(node)
        rest = text[len(spelled) :]
        best = max(
            (k for k, i in enumerate(ids) if rest.startswith(grammar.tokens[i])),
            key=lambda k: len(grammar.tokens[ids[k]]),
            default=None,
        )
        if best is None:
            raise OutputParseError(f"{text!r} is not a value of the number slot {grammar.describe}")
        samples += 1
        spelled += grammar.tokens[ids[best]]
        forced, node = grammar.forced(ends[best])
        spelled += "".join(grammar.tokens[t] for t in forced)
    return samples


def forced_passes(tokenizer: Any, text: str, skeleton: list[Segment], table: TokenTable | None = None) -> int:
    """Forward passes forced decoding needs to emit ``text`` (which must follow ``skeleton``): the prefill plus
    one per sampled token; a description field samples its tokens (the first one with the space healed back
    from the literal before) and one more token that holds the next line break."""
    from semanticface.decoding.forced import heal_literal, literal_token_ids, number_grammar

    table = table or token_table(tokenizer)
    match = _skeleton_regex(skeleton).fullmatch(text)
    if match is None:
        raise OutputParseError("the text does not follow the skeleton")
    pieces = iter(match.groups())
    samples, heal = 0, ""
    for position, segment in enumerate(skeleton):
        if isinstance(segment, LiteralPiece):
            following = skeleton[position + 1] if position + 1 < len(skeleton) else None
            _, heal = heal_literal(literal_token_ids(tokenizer, segment.text), segment.text, table, following)
            continue
        piece = next(pieces)
        if isinstance(segment, NumberPiece):
            samples += _number_samples(number_grammar(table, segment), piece)
        else:
            samples += text_tokens(tokenizer, heal + piece) + 1
            heal = ""
    return 1 + samples
