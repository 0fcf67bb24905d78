"""The set of valid number strings of a slot as a character trie, walked by vocabulary tokens.

A number slot accepts exactly the strings ``f"{k / 10**d:.{d}f}"`` for integers ``k`` with ``low <= k/10**d <=
high`` — e.g. ``0.00`` … ``1.00`` for a blendshape at 2 decimals, ``-1.00`` … ``1.00`` for pose. With a fixed number
of decimals no valid string is a prefix of another, so a number is complete exactly when the walk reaches a leaf:
the model never has to emit a terminator. A vocabulary token is allowed at a node when all of its characters
continue the walk, so single-digit tokenizers (Qwen, Llama-2) and multi-digit ones (Llama-3, GPT-2) both work.
Characters that are forced (the ``.`` after the integer part, ``.00`` after ``1``) are appended without sampling.

Each node also knows the value range of the strings below it, so the tokens allowed at a node can be put in value
order: that is what median decoding (:meth:`NumberGrammar.quantile_step`) walks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from semanticface.decoding.vocab import NUMBER_CHARS, TokenTable
from semanticface.errors import ConfigError


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    low: float = float("inf")  # smallest and largest value spelled by a string through this node
    high: float = float("-inf")

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def include(self, value: float) -> None:
        self.low, self.high = min(self.low, value), max(self.high, value)


def number_strings(low: float, high: float, decimals: int, *, integer: bool = False, end: str = "") -> list[str]:
    """Every valid rendering of a value in [low, high] at ``decimals`` places, as the output contract writes it.

    ``integer``: written as an integer count of ``10**-decimals`` (``0.37`` -> ``37``, the compact block); ``end``:
    a terminator that is part of the slot. Integers are not of fixed length (``1`` is a prefix of ``10``), so an
    integer slot needs its terminator to keep the strings prefix-free.
    """
    if decimals < 0 or high < low:
        raise ConfigError(f"invalid number slot: range [{low}, {high}] with {decimals} decimals")
    if integer and not end:
        raise ConfigError("an integer number slot needs a terminator (end) to be prefix-free")
    scale = 10**decimals
    first = int((Decimal(str(low)) * scale).to_integral_value(rounding="ROUND_CEILING"))
    last = int((Decimal(str(high)) * scale).to_integral_value(rounding="ROUND_FLOOR"))
    if integer:
        return [f"{k}{end}" for k in range(first, last + 1)]
    return [f"{Decimal(k).scaleb(-decimals):.{decimals}f}{end}" for k in range(first, last + 1)]


_SPELLING: dict[tuple[int, str], tuple[TokenTable, dict[int, str]]] = {}


def spelling_tokens(table: TokenTable, end: str) -> dict[int, str]:
    """Tokens that may spell a number slot ending in ``end``: the number tokens, plus the tokens made of number
    characters and ``end``'s characters whose lone decoding is exact (cached per table and terminator)."""
    if not end:
        return table.number_tokens
    key = (id(table), end)
    hit = _SPELLING.get(key)
    if hit is None or hit[0] is not table:
        chars = NUMBER_CHARS | set(end)
        tokens = dict(table.number_tokens)
        for i in table.exact_ids:
            text = table.strings[i]
            if text and set(text) <= chars and i not in tokens:
                tokens[i] = text
        hit = (table, tokens)
        _SPELLING[key] = hit
    return hit[1]


class NumberGrammar:
    """Trie of the valid strings of one (low, high, decimals) slot kind, with per-node token tables cached."""

    def __init__(
        self, low: float, high: float, decimals: int, table: TokenTable, *, integer: bool = False, end: str = ""
    ) -> None:
        self.root = _Node()
        for text in number_strings(low, high, decimals, integer=integer, end=end):
            value, node = float(text[: len(text) - len(end)]), self.root
            node.include(value)
            for char in text:
                node = node.children.setdefault(char, _Node())
                node.include(value)
        self.table = table
        self.tokens = spelling_tokens(table, end)  # id -> text of the tokens that may spell this slot
        self._allowed: dict[int, tuple[list[int], list[_Node]]] = {}
        self._forced: dict[int, tuple[list[int], _Node]] = {}
        self._ordered: dict[int, list[int]] = {}
        self.describe = f"[{low:g}, {high:g}] at {decimals} decimals" + (" as an integer" if integer else "")
        self._by_text = {text: i for i, text in self.tokens.items()}

    def walk(self, node: _Node, text: str) -> _Node | None:
        for char in text:
            node = node.children.get(char)  # type: ignore[assignment]
            if node is None:
                return None
        return node

    def allowed(self, node: _Node) -> tuple[list[int], list[_Node]]:
        """Token ids that keep the walk inside the trie from ``node``, and the node each one leads to."""
        key = id(node)
        if key not in self._allowed:
            ids, ends = [], []
            for token_id, text in self.tokens.items():
                end = self.walk(node, text)
                if end is not None:
                    ids.append(token_id)
                    ends.append(end)
            if not ids:
                raise ConfigError(f"the tokenizer has no token that continues a number {self.describe}")
            self._allowed[key] = (ids, ends)
        return self._allowed[key]

    def forced(self, node: _Node) -> tuple[list[int], _Node]:
        """Tokens for the run of characters that has only one continuation from ``node`` (maybe none).

        The run is spelled greedily with the longest number tokens that fit, so it is one valid tokenization.
        """
        key = id(node)
        if key not in self._forced:
            run, end = "", node
            while len(end.children) == 1:
                char, end = next(iter(end.children.items()))
                run += char
            ids: list[int] = []
            pos = 0
            while pos < len(run):
                for stop in range(len(run), pos, -1):
                    if run[pos:stop] in self._by_text:
                        ids.append(self._by_text[run[pos:stop]])
                        pos = stop
                        break
                else:
                    raise ConfigError(f"the tokenizer cannot spell {run[pos:]!r} inside a number {self.describe}")
            self._forced[key] = (ids, end)
        return self._forced[key]

    def quantile_step(self, node: _Node, probs: dict[int, float], quantile: float) -> tuple[int, float]:
        """One step of decoding the ``quantile`` of the model's distribution over this slot's values.

        ``probs`` maps each allowed token at ``node`` to its probability. Ordered by the values they lead to, the
        allowed tokens split the values into consecutive ranges, so the quantile lies in the token where the
        cumulative probability reaches it; inside that token's range the search continues at the conditional
        quantile, which is returned with the token. Walking a whole number this way costs what greedy decoding
        costs and yields the exact quantile of the model's distribution when the ranges are disjoint (single-digit
        and whole-number tokenizers); overlapping multi-character tokens make it an approximation. The median
        (``quantile=0.5``) is the point estimate with the least expected absolute error.
        """
        ids, ends = self.allowed(node)
        key = id(node)
        if key not in self._ordered:
            self._ordered[key] = sorted(range(len(ids)), key=lambda k: (ends[k].low, ends[k].high))
        order = self._ordered[key]
        total = sum(probs.get(ids[k], 0.0) for k in order)
        if total <= 0:
            return ids[order[0]], quantile
        below = 0.0
        for k in order:
            mass = probs.get(ids[k], 0.0) / total
            if mass > 0 and below + mass >= quantile:
                return ids[k], min(1.0, max(0.0, (quantile - below) / mass))
            below += mass
        last = next(k for k in reversed(order) if probs.get(ids[k], 0.0) > 0)  # rounding left the quantile past 1
        return ids[last], 1.0
