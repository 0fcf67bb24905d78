"""Reading a model output back into coefficients (the target layout: :mod:`semanticface.contract.target`).

The parser (``parse_output``) is lenient where a model's slip is unambiguous and records every leniency as an
issue: it takes the last brace-balanced ``{...}`` that holds channel keys (so code fences and free text around
it are fine; when there are several blocks it says which one it used and keeps the others out of the
description), repairs trailing commas and single-quoted keys, accepts every name dialect and numeric strings
(noting keys matched only after stripping, case folding or Unicode normalisation), clamps out-of-range values,
salvages ``"key": number`` pairs from a truncated block (naming every value salvaged; a value cut off by the
end of the output, and forms it cannot read faithfully such as ``0,5``, ``0x1F``, ``1/2``, ``0.5%`` or
``0.25 + 0.25``, are not read at all), and marks channels it could not read as missing (never zero). It raises
only :class:`OutputParseError`, when no channel value is recoverable, and its time is linear in the output's
length. Block styles are read by block readers (``_json_blocks``, ``_salvaged_block``) that all return
``_Block`` objects, so a new style plugs in beside them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from semanticface.coefficients import FaceCoefficients, channel_range
from semanticface.compact import read_compact_block
from semanticface.contract.target import TargetConfig, spelling
from semanticface.errors import OutputParseError, UnknownChannelError
from semanticface.schema import (
    BLENDSHAPES,
    CHANNEL_INDEX,
    CHANNELS,
    NUM_CHANNELS,
    POSE_CHANNELS,
    Dialect,
    canonical_name,
    is_known_name,
    is_mediapipe_neutral,
    to_dialect,
)


@dataclass
class ParsedOutput:
    """What was read from a model output: coefficients (unreadable channels marked missing), the free text
    before the block, and every problem met (empty when the output followed the contract exactly)."""

    coefficients: FaceCoefficients
    description: str
    issues: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues


# Block readers. Each finds coefficient blocks of one style and returns them as _Block objects; _parse picks one and
# reads its pairs the same way whatever the style. Every reader must be linear in the output's length.


@dataclass
class _Block:
    """A coefficient block a reader found: its span in the output, its ``(key, value)`` pairs as written, notes
    on any repair the reader made, and whether it was read whole (``complete``) or salvaged from a broken one."""

    start: int
    end: int
    pairs: list[tuple[object, object]]
    notes: list[str] = field(default_factory=list)
    complete: bool = True


_MAX_CANDIDATES = 64  # JSON objects handed to the JSON parser per output, latest first
_PARSE_BUDGET = 4  # ... and at most this many times the output's length in characters, plus _PARSE_SLACK
_PARSE_SLACK = 1 << 16
_JSON_SPACE = (9, 10, 13, 32)
_FEW_BRACES = 4096  # up to this many '{', braces are matched in Python; past it, vectorised
_BRACE = re.compile(r"[{}]")
_OBJECT_START = re.compile(r"\{[ \t\n\r]*[\"']")
_QUOTES = (34, 39)  # an object with keys starts '{"' (or "{'", a single-quoted slip), after optional whitespace


def _object_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the balanced ``{...}`` spans that open like an object with keys, latest end first.

    Quotes are not tracked, on purpose: free text with a stray quote must not hide the block, and channel keys
    never contain braces. A ``}`` with no open ``{`` is ignored. Vectorised, as a brace-matching stack would cost
    a Python step per brace: the depth after each brace is the running sum of +1/-1 floored at 0, and a ``{``
    reaching depth d is closed by the next ``}`` leaving depth d, so after a stable sort by depth each closing
    brace directly follows the one it closes.
    """
    empty = np.zeros(0, dtype=np.int64)
    if "}" not in text or "{" not in text:
        return empty, empty
    if text.count("{") <= _FEW_BRACES:  # the usual case: a Python stack over the few braces, no big arrays
        stack: list[int] = []
        spans: list[tuple[int, int]] = []
        for match in _BRACE.finditer(text):
            if match.group() == "{":
                stack.append(match.start())
            elif stack:
                start = stack.pop()
                if _OBJECT_START.match(text, start):
                    spans.append((start, match.end()))
        spans.reverse()
        return np.array([a for a, _ in spans], dtype=np.int64), np.array([b for _, b in spans], dtype=np.int64)
    # One code per character: bytes when the text is ASCII (a quarter of the memory traffic), else UTF-32.
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8) if text.isascii() else _utf32(text)
    positions = np.flatnonzero((codes == 123) | (codes == 125))
    opens = codes[positions] == 123
    total = np.cumsum(np.where(opens, 1, -1))
    depth = total - np.minimum.accumulate(np.minimum(total, 0))  # after each brace, floored at 0
    before = np.concatenate(([0], depth[:-1]))
    kept = opens | (before > 0)  # a '}' at depth 0 closes nothing
    level = np.where(opens, depth, depth + 1)[kept]
    positions, opens = positions[kept], opens[kept]
    if len(level) and level.max() < 1 << 16:
        level = level.astype(np.uint16)  # a stable sort of 16-bit keys is a radix sort: linear
    order = np.argsort(level, kind="stable")
    closes = np.flatnonzero(~opens[order])
    partner = np.full(len(positions), -1, dtype=np.int64)
    partner[order[closes]] = order[closes - 1]  # closing brace -> its opening brace
    closing = np.flatnonzero(partner >= 0)[::-1]  # latest end first, without a sort
    starts, ends = positions[partner[closing]], positions[closing] + 1
    # Keep the spans whose '{' is followed, after JSON whitespace, by a quote.
    after = codes[starts + 1]  # a span's '{' always has its '}' after it
    keyed = np.isin(after, _QUOTES)
    spaced = np.flatnonzero(np.isin(after, _JSON_SPACE))
    if len(spaced):
        following = starts[spaced] + 1  # walk over the whitespace (the '}' at least is not whitespace)
        for _ in range(8):  # short runs step by step: sequential memory access
            blank = np.isin(codes[following], _JSON_SPACE)
            if not blank.any():
                break
            following[blank] += 1
        blank = np.isin(codes[following], _JSON_SPACE)
        if blank.any():  # long runs: jump to the next non-whitespace character
            solid = np.flatnonzero((codes != 9) & (codes != 10) & (codes != 13) & (codes != 32))
            following[blank] = solid[np.searchsorted(solid, following[blank])]
        keyed[spaced] = np.isin(codes[following], _QUOTES)
    return starts[keyed], ends[keyed]


def _utf32(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _json_blocks(text: str) -> list[_Block]:
    """Complete JSON objects holding channel keys, latest first, none nested in another one found.

    Work is bounded by :data:`_MAX_CANDIDATES` objects and a character budget linear in ``len(text)``.
    """
    budget = _PARSE_BUDGET * len(text) + _PARSE_SLACK
    blocks: list[_Block] = []
    starts, ends = _object_spans(text)
    i = 0
    for _ in range(_MAX_CANDIDATES):
        if i >= len(starts) or budget < ends[i] - starts[i]:
            break
        start, end = int(starts[i]), int(ends[i])
        i += 1
        budget -= end - start
        pairs, notes = _loads(text[start:end])
        channel_pairs = _channel_pairs(pairs) if pairs is not None else []
        if channel_pairs:
            blocks.append(_Block(start, end, channel_pairs, notes))
            outside = (starts[i:] < start) | (ends[i:] > end)  # objects nested in this block are part of it
            starts, ends, i = starts[i:][outside], ends[i:][outside], 0
    return blocks


# Readers of complete coefficient blocks, one per block style; each returns _Block objects, latest first.
_BLOCK_READERS: tuple[Callable[[str], list[_Block]], ...] = (_json_blocks,)


def _complete_blocks(text: str) -> list[_Block]:
    """Complete blocks of every style, latest first, none nested in another (a new style adds its reader to
    :data:`_BLOCK_READERS`; the salvage pass for broken blocks stays separate)."""
    blocks = sorted((b for reader in _BLOCK_READERS for b in reader(text)), key=lambda b: (-b.end, b.start))
    kept: list[_Block] = []
    for block in blocks:
        if not any(k.start <= block.start and block.end <= k.end for k in kept):
            kept.append(block)
    return kept


def _loads(candidate: str) -> tuple[list[tuple[object, object]] | None, list[str]]:
    """Key/value pairs of a JSON object (duplicates kept), trying light repairs; (None, []) if unreadable.

    Each attempt parses plainly first (C speed); only an object that holds channel keys is parsed again keeping
    duplicate keys (a Python call per object), so a large object of something else costs little.
    """
    attempts: list[tuple[str, list[str]]] = [(candidate, [])]
    repaired = re.sub(r",\s*([}\]])", r"\1", candidate)
    if repaired != candidate:
        attempts.append((repaired, ["coefficient block has a trailing comma"]))
    if "'" in candidate and '"' not in candidate:
        attempts.append((repaired.replace("'", '"'), ["coefficient block uses single quotes"]))
    for text, notes in attempts:
        try:
            plain = json.loads(text, parse_constant=_NonFinite)
            if not isinstance(plain, dict) or not _has_channel_keys(plain):
                return None, []
            # tuple (a C call) keeps duplicate keys, which a dict would drop; arrays stay lists.
            pairs = json.loads(text, object_pairs_hook=tuple, parse_constant=_NonFinite)
        except (ValueError, RecursionError, OverflowError, MemoryError, TypeError):
            continue
        if isinstance(pairs, tuple):
            return list(pairs), notes
    return None, []


def _has_channel_keys(data: dict) -> bool:
    """Whether a parsed object, or an object directly inside it, has a key naming a channel."""
    return any(_resolve_key(k)[0] for k in data) or any(
        isinstance(v, dict) and any(_resolve_key(k)[0] for k in v) for v in data.values()
    )


class _NonFinite(str):
    """NaN / Infinity / -Infinity literals, kept as markers instead of floats."""


class _Unreadable(str):
    """A value the salvage reader found but cannot read faithfully; the text says why."""


# A "key: number" pair. The look-behind lets a key start only at the start of a word, so a long run of letters costs
# one attempt, not one per letter (the salvage pass stays linear in the output's length).
_PAIR = re.compile(
    r"""(?<![A-Za-z0-9_])["']?([A-Za-z_][A-Za-z0-9_]{0,40})["']?[ \t]*:[ \t]*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"""
)
_SPACE_RUN = re.compile(r"\s*")
_MAX_SALVAGED_PAIRS = 1024  # a block has at most 61 channels; past this it is not a block any more
_ARITHMETIC = frozenset("+-*/%^x×")


def _cut_or_unfaithful(text: str, end: int) -> str | None:
    """Why the number ending at ``end`` cannot be read as written (None when it can): cut off by the end of the
    output, or part of a form such as ``0,5``, ``0x1F``, ``1/2``, ``0.5%`` or ``0.25 + 0.25``."""
    if end >= len(text):
        return "cut off at the end of the output (truncated)"
    char = text[end]
    if char == ",":
        following = text[end + 1 : end + 2]
        return f"written as {text[end - 1 : end + 2]!r}... (a decimal comma?)" if following.isdigit() else None
    if char in "}]\"'":
        return None
    if char.isspace():
        space = _SPACE_RUN.match(text, end)  # \s* always matches
        after = space.end() if space else end
        if after < len(text) and text[after] in _ARITHMETIC:
            return f"followed by {text[after]!r} (an expression, not a number)"
        return None
    return f"followed by {char!r} (not a plain decimal number)"


def _salvaged_block(text: str, start: int) -> _Block | None:
    """``key: number`` pairs from ``start`` on (a truncated or garbled block), or None if none names a channel.

    A value the text does not give faithfully (cut off by the end of the output, ``0,5``, ``0x1F``, ``1/2``, ``0.5%``,
    ``0.25 + 0.25``) is kept as an :class:`_Unreadable` marker, so its channel ends up missing with an issue.
    """
    pairs: list[tuple[object, object]] = []
    notes: list[str] = []
    for match in _PAIR.finditer(text, start):
        if len(pairs) == _MAX_SALVAGED_PAIRS:
            notes.append(
                f"stopped salvaging after {_MAX_SALVAGED_PAIRS} 'key: number' pairs (at character {match.start()})"
            )
            break
        reason = _cut_or_unfaithful(text, match.end(2))
        pairs.append((match.group(1), _Unreadable(reason) if reason else float(match.group(2))))
    if not any(_resolve_key(k)[0] for k, _ in pairs):
        return None
    return _Block(start, len(text), pairs, notes, complete=False)


# --- reading a block's pairs ---------------------------------------------------------------------------------------

_EXACT_KEYS: dict[str, str] = {
    **{to_dialect(n, d): n for d in Dialect for n in CHANNELS if spelling(n, d.value) is not None},
    **{n: n for n in CHANNELS},
}


def _resolve_key(key: object) -> tuple[str | None, str | None]:
    """(canonical channel of ``key`` or None, what leniency matching it took or None if it is spelled exactly)."""
    if not isinstance(key, str):
        return None, None
    if key in _EXACT_KEYS:
        return _EXACT_KEYS[key], None
    stripped = key.strip()
    if stripped in _EXACT_KEYS:
        return _EXACT_KEYS[stripped], "stripping whitespace"
    if is_known_name(stripped):
        return canonical_name(stripped), "case folding" + (", stripping whitespace" if stripped != key else "")
    normalized = unicodedata.normalize("NFKC", key).strip()
    if normalized != stripped and normalized.isascii():
        if normalized in _EXACT_KEYS:
            return _EXACT_KEYS[normalized], "Unicode normalisation"
        if is_known_name(normalized):
            return canonical_name(normalized), "Unicode normalisation and case folding"
    return None, None


def _channel_pairs(pairs: list[tuple[object, object]]) -> list[tuple[object, object]]:
    """The pairs that carry channels: the object itself, or one nested object (``{"blendshapes": {...}}``)."""
    if any(_resolve_key(k)[0] for k, _ in pairs):
        return pairs
    for _, value in pairs:
        if isinstance(value, tuple) and any(_resolve_key(k)[0] for k, _ in value):  # a nested object's pairs
            return list(value)
    return []


_NUMERIC_STRING = re.compile(r"\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*", re.ASCII)


def _number(value: object, key: str, issues: list[str]) -> float | None:
    if isinstance(value, _Unreadable):
        issues.append(f"{key}: value {value}; marked missing")
        return None
    if isinstance(value, bool) or value is None or isinstance(value, (tuple, list, dict)):
        issues.append(f"{key}: value {_show(value)} is not a number")
        return None
    if isinstance(value, _NonFinite):
        issues.append(f"{key}: value {value} is not finite")
        return None
    if isinstance(value, str):
        # Only a plain decimal string: float() would also take "1_0", "٣" (Arabic-Indic digits), "inf", "nan".
        if not _NUMERIC_STRING.fullmatch(value):
            issues.append(f"{key}: value {_show(value)} is not a number")
            return None
        number = float(value)
        issues.append(f"{key}: value is a string {_show(value)}")
    else:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (OverflowError, ValueError, TypeError):
            issues.append(f"{key}: value {_show(value)} is not a finite number")
            return None
    if not math.isfinite(number):
        issues.append(f"{key}: value {_show(value)} is not finite")
        return None
    return number


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coefficients(
    pairs: list[tuple[object, object]], expected: tuple[str, ...] | None, issues: list[str]
) -> FaceCoefficients:
    values = np.zeros(NUM_CHANNELS)
    found: dict[str, str] = {}
    duplicated: set[str] = set()
    unknown = more_duplicates = 0
    for raw_key, raw_value in pairs:
        key = raw_key if isinstance(raw_key, str) else str(raw_key)
        if is_mediapipe_neutral(key):
            continue  # MediaPipe's extra category, not a channel
        name, leniency = _resolve_key(key)
        if name is None:
            unknown += 1
            if unknown <= _ISSUES_PER_KIND:
                issues.append(f"unknown key {_show(key)}")
            continue
        label = key if key == name else f"{_show(key)} ({name})"
        if name in found:
            if name in duplicated:
                more_duplicates += 1
            else:  # one issue per channel names it; further repeats are counted
                duplicated.add(name)
                issues.append(f"duplicate key {label}: {name} already given as {_show(found[name])}; kept the first")
            continue
        if leniency is not None:
            issues.append(f"key {_show(key)} matched {name} only after {leniency}")
        number = _number(raw_value, label, issues)
        if number is None:
            continue
        low, high = channel_range(name)
        if not low <= number <= high:
            issues.append(f"{label}: value {number:g} is outside [{low:g}, {high:g}]; clamped")
            number = min(max(number, low), high)
        values[CHANNEL_INDEX[name]] = number
        found[name] = key
    if unknown > _ISSUES_PER_KIND:
        issues.append(f"... and {unknown - _ISSUES_PER_KIND} more unknown key(s)")
    if more_duplicates:
        issues.append(f"... and {more_duplicates} more repeat(s) of channels already given, ignored")
    if not found:
        raise OutputParseError("the coefficient block holds no readable channel value", issues)
    if expected is None:
        expected = CHANNELS if any(n in found for n in POSE_CHANNELS) else BLENDSHAPES
    absent = [n for n in expected if n not in found]
    if absent:
        shown = ", ".join(absent[:8]) + (f" and {len(absent) - 8} more" if len(absent) > 8 else "")
        issues.append(f"missing channel(s), marked missing: {shown}")
    missing = frozenset(n for n in CHANNELS if n not in found)
    return FaceCoefficients(values, missing)


_ISSUES_PER_KIND = 16  # unknown keys listed one by one; past this they are counted


_LABEL_BEFORE = re.compile(r"Coefficients:\s*(?:```[A-Za-z]*\s*)?$")


def _description(text: str, cut: Iterable[tuple[int, int]] = ()) -> str:
    """The free text in ``text`` (what precedes the block used) less the spans ``cut`` (blocks not used, each with
    a ``Coefficients:`` label and code fence right before it)."""
    pieces, pos = [], 0
    for start, end in sorted(cut):
        before = text[pos:start]
        label = _LABEL_BEFORE.search(before[-64:])
        pieces.append(before[: len(before) - (len(label.group()) if label else 0)])
        pos = end
    pieces.append(text[pos:])
    text = "".join(pieces)
    text = re.sub(r"```[A-Za-z]*\s*$", "", text.rstrip()).rstrip()
    if text.endswith("Coefficients:"):
        text = text[: -len("Coefficients:")]
    return text.strip()


def parse_output(text: str, *, expected_channels: Iterable[str] | None = None) -> ParsedOutput:
    """Read a model output back into coefficients (see the module docstring for what is tolerated).

    ``expected_channels`` (any dialect) are reported missing when absent; by default the 52 blendshapes, plus
    the 9 pose channels when the block has any of them. Raises only :class:`OutputParseError`. Time is linear in
    the length of ``text``.
    """
    try:
        return _parse(text, expected_channels)
    except OutputParseError:
        raise
    except Exception as error:  # the contract: nothing but OutputParseError escapes, whatever the input
        raise OutputParseError(f"unreadable output ({type(error).__name__}: {error})") from error


def _parse(text: str, expected_channels: Iterable[str] | None) -> ParsedOutput:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise OutputParseError(f"model output must be text, got {type(text).__name__}")
    expected = None
    if expected_channels is not None:
        try:
            expected = tuple(canonical_name(n) for n in expected_channels)
        except UnknownChannelError as error:
            raise OutputParseError(f"expected_channels: {error}") from None
    if "{" not in text:
        raise OutputParseError("no coefficient block (no '{' in the output)")
    issues: list[str] = []
    blocks = _complete_blocks(text)
    if blocks:
        used, ignored = blocks[0], sorted(blocks[1:], key=lambda b: b.start)
        issues.extend(used.notes)
        if ignored:
            spans = ", ".join(f"{b.start}-{b.end}" for b in ignored[-8:])
            count = f"at least {len(blocks)}" if len(blocks) >= _MAX_CANDIDATES else str(len(blocks))
            issues.append(
                f"{count} coefficient blocks in the output: used the last (characters {used.start}-{used.end});"
                f" ignored the other(s) (at characters {'..., ' if len(ignored) > 8 else ''}{spans}) and left them"
                " out of the description"
            )
        if text[used.end :].strip().strip("`").strip():
            after = text.find("{", used.end)
            trailing = _salvaged_block(text, after) if after >= 0 else None
            if trailing is not None:
                issues.append(
                    f"an incomplete coefficient block after it (from character {after}) ignored; "
                    f"used the complete one at characters {used.start}-{used.end}"
                )
            else:
                issues.append("text after the coefficient block ignored")
        coefficients = _coefficients(used.pairs, expected, issues)
        return ParsedOutput(
            coefficients, _description(text[: used.start], [(b.start, b.end) for b in ignored]), issues
        )
    # No complete block: salvage "key: number" pairs after the last '{' (a truncated or garbled block).
    salvaged = _salvaged_block(text, text.rfind("{"))
    if salvaged is None:
        raise OutputParseError("no readable coefficient block in the output")
    read = [name for name in (_resolve_key(k)[0] for k, v in salvaged.pairs if not isinstance(v, _Unreadable)) if name]
    issues.append(
        "coefficient block is incomplete or not valid JSON; read the 'key: number' pairs it has "
        f"({len(read)} value(s) salvaged: {', '.join(read)})"
    )
    issues.extend(salvaged.notes)
    coefficients = _coefficients(salvaged.pairs, expected, issues)
    return ParsedOutput(coefficients, _description(text[: salvaged.start]), issues)


def parse_semanticface_release(text: str) -> ParsedOutput:
    """Read the SemanticFace release's output: a markdown analysis, then one JSON object of the 61 Live Link
    Face PascalCase keys at 1 decimal. All 61 channels are expected."""
    return parse_output(text, expected_channels=CHANNELS)


def parse_target(text: str, config: TargetConfig) -> ParsedOutput:
    """Read the output of a model trained on ``config``'s targets: :func:`parse_output` for the JSON block (the
    config's channels expected), :func:`semanticface.compact.read_compact_block` for the compact one. Raises only
    :class:`OutputParseError`, when no channel value is recoverable."""
    if config.block_style != "compact":
        return parse_output(text, expected_channels=config.channels())
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        channels = config.channels()
        pairs, start, issues = read_compact_block(text, channels, config.decimals)
        coefficients = _coefficients([(c, v) for c, v in pairs], channels, issues)
        return ParsedOutput(coefficients, _description(text[:start]), issues)
    except OutputParseError:
        raise
    except Exception as error:  # the contract: nothing but OutputParseError escapes, whatever the input
        raise OutputParseError(f"unreadable output ({type(error).__name__}: {error})") from error
