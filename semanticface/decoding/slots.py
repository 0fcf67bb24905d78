"""Per-row state of one generated slot: which tokens may come next, and what to feed after a choice.

Each state answers ``allowed()`` (token ids the next sample may take; ``None`` means "all but the banned ones") and
``advance(token) -> tokens to feed`` and exposes ``done`` and ``text``. The decoder feeds what ``advance`` returns
lazily, in the same forward pass as whatever comes next (the following literal), so a slot's last token costs no
extra pass.
"""

from __future__ import annotations

from typing import Any

from semanticface.decoding.numbers import NumberGrammar
from semanticface.decoding.vocab import TokenTable

# Characters a description field may never contain: a line break would start a new section and braces would
# confuse the search for the coefficient block.
FREE_TEXT_FORBIDDEN = "\n\r{}"


class NumberSlot:
    """A number walked through the grammar trie; characters with a single continuation are forced.

    With a ``quantile`` (0.5: the median) the decoder picks tokens with :meth:`choose` instead of argmax/sampling.
    """

    def __init__(self, grammar: NumberGrammar, quantile: float | None = None) -> None:
        self.grammar = grammar
        self.quantile = quantile
        self.text = ""
        forced, self.node = grammar.forced(grammar.root)
        self.start_tokens = forced
        self.text = "".join(grammar.tokens[t] for t in forced)
        self.sampled = 0

    @property
    def done(self) -> bool:
        return self.node.is_leaf

    def allowed(self) -> list[int]:
        return self.grammar.allowed(self.node)[0]

    def choose(self, probs: dict[int, float]) -> int:
        """The next token of the slot's quantile, given the probabilities of the allowed tokens."""
        if self.quantile is None:
            raise RuntimeError("choose() is for quantile decoding: this slot was built without a quantile")
        token, self.quantile = self.grammar.quantile_step(self.node, probs, self.quantile)
        return token

    def advance(self, token: int) -> list[int]:
        ids, ends = self.grammar.allowed(self.node)
        self.node = ends[ids.index(token)]
        self.text += self.grammar.tokens[token]
        self.sampled += 1
        forced, self.node = self.grammar.forced(self.node)
        self.text += "".join(self.grammar.tokens[t] for t in forced)
        return [token, *forced]


class FreeTextSlot:
    """A description field: any ordinary token until one spells the start of the next literal, or the bound.

    The text is decoded from all the slot's tokens together, so characters split over several byte-level tokens
    come out whole. A token that runs past the stop character is cut there; the part before it is re-encoded and
    fed, so the model sees what the text says.

    ``heal`` is whitespace held back from the end of the literal before (token healing): BPE tokenizers merge the
    space after ``Expression:`` into the next word (`` other``), so a model never saw a lone space token there
    and, fed one, drifts. The first sampled token must then start with that whitespace.
    """

    def __init__(
        self, tokenizer: Any, table: TokenTable, stop: str, max_chars: int, max_tokens: int, heal: str = ""
    ) -> None:
        self.tokenizer = tokenizer
        self.table = table
        self.stop_char = stop[:1] or "\n"
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.ids: list[int] = []
        self.tail = ""  # text of a cut last token
        self.done = max_tokens <= 0 or max_chars <= 0
        self.start_tokens: list[int] = []
        self.sampled = 0
        self.heal = heal
        self.chars = 0

    @property
    def text(self) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True) + self.tail
        text = text.replace("\ufffd", "")  # an unfinished multi-byte character at a bound
        for char in FREE_TEXT_FORBIDDEN:
            text = text.replace(char, " ")
        return text.strip()[: self.max_chars].strip()

    def allowed(self) -> list[int] | None:
        if self.heal and self.sampled == 0:
            return healing_tokens(self.table, self.heal, self.stop_char)
        return None

    def banned(self, first: bool) -> frozenset[int]:
        """Tokens never sampled here: control tokens, forbidden characters (not the stop, which ends the text),
        and on the first step the stop itself, so a field is never empty."""
        return _banned(self.table, self.stop_char, first)

    def advance(self, token: int) -> list[int]:
        self.sampled += 1
        piece = self.table.strings[token]
        cut = piece.find(self.stop_char)
        if cut >= 0:
            self.done = True
            if cut == 0:
                return []
            self.tail = piece[:cut]
            return list(self.tokenizer.encode(self.tail, add_special_tokens=False))
        self.ids.append(token)
        self.chars += len(piece)  # running count; the exact text is decoded once the field is done
        if len(self.ids) >= self.max_tokens or self.chars >= self.max_chars:
            self.done = True
        return [token]


_BANNED: dict[tuple[int, str, bool], frozenset[int]] = {}


def _banned(table: TokenTable, stop_char: str, first: bool) -> frozenset[int]:
    key = (id(table), stop_char, first)
    if key not in _BANNED:
        forbidden = set(FREE_TEXT_FORBIDDEN) - ({stop_char} if not first else set())
        if first:
            forbidden.add(stop_char)
        banned = set(table.special_ids)
        banned |= {i for i, s in enumerate(table.strings) if not s.strip() and first}  # no leading blank
        banned |= {i for i, s in enumerate(table.strings) if forbidden & set(s)}
        # Control characters (byte tokens like \x02) would only garble the description; the stop stays allowed.
        banned |= {i for i, s in enumerate(table.strings) if any(not c.isprintable() and c != stop_char for c in s)}
        _BANNED[key] = frozenset(banned)
    return _BANNED[key]


_HEALING: dict[tuple[int, str, str], list[int]] = {}


def healing_tokens(table: TokenTable, heal: str, stop_char: str) -> list[int]:
    """First tokens of a field whose literal lost its trailing ``heal`` whitespace: they start with it and
    spell something more, and are not banned as a field's first token."""
    key = (id(table), heal, stop_char)
    if key not in _HEALING:
        banned = _banned(table, stop_char, True)
        _HEALING[key] = [
            i for i, s in enumerate(table.strings) if s.startswith(heal) and s.strip() and i not in banned
        ]
    return _HEALING[key]
