"""The output contract: the exact text a model is trained to emit, and the parser that reads it back.

Target layout (``target_format="semantic"``; ``"coefficients"`` keeps only the last two lines)::

    Expression: <category>
    Muscle movements:
    - Brows: <text>
    ... one line per region (Eyes, Cheeks, Nose, Jaw, Mouth, Tongue)
    Emotion cue: <text>
    Symmetry: <text>
    Coefficients:
    {"eyeBlinkLeft": 0.00, "eyeLookDownLeft": 0.12, ..., "tongueOut": 0.00}

The coefficient block is one JSON object on one line: keys in canonical order spelled in ``key_dialect``, values
with ``decimals`` fixed decimals (rounded half away from zero, as ``FaceCoefficients.quantized``), pose channels
only with ``include_pose``. Channels missing from the coefficients are left out of the block. The description
is derived from the *quantised* coefficients, so that re-describing parsed numbers reproduces the text.

The parser (``parse_output``) is lenient where a model's slip is unambiguous and records every leniency as an
issue: it takes the last brace-balanced ``{...}`` that holds channel keys (so code fences and free text around
it are fine), repairs trailing commas and single-quoted keys, accepts every name dialect and numeric strings,
clamps out-of-range values, salvages ``"key": number`` pairs from a truncated block, and marks channels it could
not read as missing (never zero). It raises only :class:`OutputParseError`, when no channel value is recoverable.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from semanticface.coefficients import FaceCoefficients, channel_range
from semanticface.compact import BLOCK_STYLES, CLOSE, OPEN, SEPARATOR, compact_block
from semanticface.errors import ConfigError, OutputParseError, SemanticFaceError, UnknownChannelError
from semanticface.prompts import render
from semanticface.schema import (
    BLENDSHAPES,
    CHANNEL_INDEX,
    CHANNELS,
    NUM_CHANNELS,
    POSE_CHANNELS,
    REGIONS,
    Dialect,
    canonical_name,
    is_mediapipe_neutral,
    to_dialect,
)
from semanticface.semantics import REGION_TITLES, SECTION_NAMES, IntensityScale, describe

TARGET_FORMATS = ("semantic", "coefficients")


@dataclass
class TargetConfig:
    """How a training target is written (and so what a trained model emits)."""

    target_format: str = field(
        default="semantic",
        metadata={"help": "'semantic': description then coefficients; 'coefficients': coefficient block only."},
    )
    decimals: int = field(default=2, metadata={"help": "Fixed number of decimals of each coefficient value."})
    include_pose: bool = field(
        default=False, metadata={"help": "Also emit the 9 head/eye pose channels (values in [-1, 1])."}
    )
    key_dialect: str = field(
        default="arkit", metadata={"help": "Key spelling in the block: arkit, llf, mediapipe or suffix."}
    )
    template_dir: str | None = field(
        default=None, metadata={"help": "Directory of Jinja templates overriding the shipped prompts/ ones."}
    )
    block_style: str = field(
        default="json",
        metadata={
            "help": "Coefficient block: 'json' (keyed JSON object) or 'compact' (values only, in channel order, "
            "as integers in units of 10^-decimals; see semanticface.compact)."
        },
    )

    def __post_init__(self) -> None:
        if self.target_format not in TARGET_FORMATS:
            raise ConfigError(f"target_format must be one of {TARGET_FORMATS}, got {self.target_format!r}")
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or not 0 <= self.decimals <= 6:
            raise ConfigError(f"decimals must be an integer in [0, 6], got {self.decimals!r}")
        try:
            Dialect(self.key_dialect)
        except ValueError:
            raise ConfigError(
                f"key_dialect must be one of {[d.value for d in Dialect]}, got {self.key_dialect!r}"
            ) from None
        if self.template_dir is not None:
            self.template_dir = str(self.template_dir)
        if self.block_style not in BLOCK_STYLES:
            raise ConfigError(f"block_style must be one of {BLOCK_STYLES}, got {self.block_style!r}")

    def channels(self) -> tuple[str, ...]:
        """Canonical channels of the block, in order (those the key dialect cannot spell are left out)."""
        return _block_keys(self.include_pose, self.key_dialect)[0]

    def keys(self) -> tuple[str, ...]:
        """The block's keys as spelled in ``key_dialect``."""
        return _block_keys(self.include_pose, self.key_dialect)[1]


@functools.lru_cache(maxsize=32)
def _block_keys(include_pose: bool, dialect: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(canonical channels, keys as spelled, keys JSON-quoted) of a block."""
    names = CHANNELS if include_pose else BLENDSHAPES
    pairs = [(n, _spell(n, dialect)) for n in names]
    pairs = [(n, k) for n, k in pairs if k is not None]
    return tuple(n for n, _ in pairs), tuple(k for _, k in pairs), tuple(json.dumps(k) for _, k in pairs)  # type: ignore[misc]


def _spell(name: str, dialect: str) -> str | None:
    try:
        return to_dialect(name, dialect)
    except UnknownChannelError:
        return None


def format_value(value: float, decimals: int) -> str:
    """Fixed-decimal text of an already quantised value (no negative zero)."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text[0] == "-" and float(text) == 0 else text


# --- rendering -------------------------------------------------------------------------------------------------


def coefficient_block(coefficients: FaceCoefficients, config: TargetConfig) -> str:
    """The one-line block (values quantised to ``config.decimals``; missing channels left out): JSON, or the
    compact block (:mod:`semanticface.compact`) with ``block_style="compact"``."""
    if config.block_style == "compact":
        return compact_block(coefficients, config)
    quantized = coefficients.quantized(config.decimals)
    channels, _, quoted = _block_keys(config.include_pose, config.key_dialect)
    values, missing, decimals = quantized.values, quantized.missing, config.decimals
    parts = [
        f"{key}: {format_value(float(values[CHANNEL_INDEX[name]]), decimals)}"
        for name, key in zip(channels, quoted)
        if name not in missing
    ]
    return "{" + ", ".join(parts) + "}"


def _context(sections: Mapping[str, str], block: str, config: TargetConfig) -> dict[str, object]:
    return {
        "target_format": config.target_format,
        "expression": sections.get("expression", ""),
        "regions": [{"name": r, "title": REGION_TITLES[r], "text": sections.get(r, "")} for r in REGIONS],
        "emotion": sections.get("emotion", ""),
        "symmetry": sections.get("symmetry", ""),
        "coefficients": block,
        "decimals": config.decimals,
        "include_pose": config.include_pose,
        "block_style": config.block_style,
    }


def render_description(coefficients: FaceCoefficients, config: TargetConfig | None = None) -> str:
    """Only the description part (the ``description.j2`` layout) of the quantised coefficients."""
    config = config or TargetConfig()
    sections = describe(coefficients.quantized(config.decimals)).sections()
    return render("description.j2", _context(sections, "", config), config.template_dir)


def render_target(coefficients: FaceCoefficients, config: TargetConfig | None = None) -> str:
    """The full training target of ``coefficients`` (see the module docstring for the layout)."""
    config = config or TargetConfig()
    quantized = coefficients.quantized(config.decimals)
    sections = describe(quantized).sections() if config.target_format == "semantic" else {}
    return render("target.j2", _context(sections, coefficient_block(quantized, config), config), config.template_dir)


def system_prompt(config: TargetConfig | None = None) -> str:
    """The system prompt given to the VLM with the image."""
    config = config or TargetConfig()
    context = {**_context({}, "", config), "intensity_words": [w for w, _ in IntensityScale().levels()]}
    return render("system.j2", context, config.template_dir).strip()


def user_prompt(config: TargetConfig | None = None) -> str:
    """The user prompt given with the image; lists the block's keys in order."""
    config = config or TargetConfig()
    return render("user.j2", {**_context({}, "", config), "keys": list(config.keys())}, config.template_dir).strip()


# --- skeleton (for template-forced decoding) --------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """Fixed text the decoder appends verbatim."""

    text: str


@dataclass(frozen=True)
class FreeText:
    """A generated description field: at most ``max_chars`` characters, ended by ``stop`` (the next literal)."""

    name: str  # one of semantics.SECTION_NAMES
    max_chars: int
    stop: str


@dataclass(frozen=True)
class Number:
    """A generated coefficient value: ``decimals`` fixed decimals within [minimum, maximum]."""

    channel: str  # canonical name
    key: str  # as spelled in the block
    decimals: int
    minimum: float
    maximum: float
    integer: bool = False  # written as an integer count of 10**-decimals (the compact block)
    end: str = ""  # text that ends the value and belongs to the slot (the compact block's ',' or ']')

    @property
    def pattern(self) -> str:
        """Regular expression of the value text (sign only where the range allows negatives)."""
        sign = "-?" if self.minimum < 0 else ""
        if self.integer:
            return sign + r"\d+" + re.escape(self.end)
        return sign + r"\d+" + (rf"\.\d{{{self.decimals}}}" if self.decimals else "") + re.escape(self.end)

    def format(self, value: float) -> str:
        """The slot's text for an already quantised value (terminator included)."""
        if self.integer:
            return str(int(round(value * 10**self.decimals))) + self.end
        return format_value(value, self.decimals) + self.end


Segment = Union[Literal, FreeText, Number]  # noqa: UP007 - a runtime alias usable in isinstance-free unions

# Upper bounds on the length of each description field that describe() can produce (checked by the tests).
FREE_TEXT_LIMITS: dict[str, int] = {"expression": 80, **{r: 700 for r in REGIONS}, "emotion": 320, "symmetry": 120}

_SENTINEL = re.compile("\x00([FN])(\\d+)\x00")


@functools.lru_cache(maxsize=64)
def _skeleton(
    target_format: str,
    decimals: int,
    include_pose: bool,
    key_dialect: str,
    template_dir: str | None,
    block_style: str = "json",
):
    config = TargetConfig(target_format, decimals, include_pose, key_dialect, template_dir, block_style)
    names = SECTION_NAMES if target_format == "semantic" else ()
    sections = {name: f"\x00F{i}\x00" for i, name in enumerate(names)}
    compact = block_style == "compact"
    if compact:  # each value slot owns its terminator (',' or ']'): no literal between values
        block = OPEN + "".join(f"\x00N{i}\x00" for i in range(len(config.keys())))
    else:
        block = "{" + ", ".join(f"{json.dumps(k)}: \x00N{i}\x00" for i, k in enumerate(config.keys())) + "}"
    text = render("target.j2", _context(sections, block, config), template_dir)
    channels, keys = config.channels(), config.keys()
    segments: list[Segment] = []
    pos = 0
    pending: list[tuple[int, str]] = []  # free-text slots waiting for their stop literal
    for match in _SENTINEL.finditer(text):
        if match.start() > pos:
            segments.append(Literal(text[pos : match.start()]))
        kind, index = match.group(1), int(match.group(2))
        if kind == "F":
            pending.append((len(segments), names[index]))
            segments.append(FreeText(names[index], FREE_TEXT_LIMITS[names[index]], ""))
        else:
            low, high = channel_range(channels[index])
            end = (SEPARATOR if index < len(channels) - 1 else CLOSE) if compact else ""
            segments.append(Number(channels[index], keys[index], decimals, low, high, compact, end))
        pos = match.end()
    if pos < len(text):
        segments.append(Literal(text[pos:]))
    for i, name in pending:
        following = segments[i + 1] if i + 1 < len(segments) else None
        if not isinstance(following, Literal):
            raise ConfigError(f"template target.j2: the free-text field {name!r} must be followed by literal text")
        segments[i] = FreeText(name, FREE_TEXT_LIMITS[name], following.text)
    return tuple(segments)


def target_skeleton(config: TargetConfig | None = None) -> list[Segment]:
    """The target split into literals, free-text slots and number slots.

    Filling the slots (:func:`fill_skeleton`) with a description's sections and the quantised coefficients
    reproduces :func:`render_target` exactly (for coefficients with no missing channel). Templates must insert
    the fields verbatim (no filters on them) for this to hold.
    """
    config = config or TargetConfig()
    return list(
        _skeleton(
            config.target_format,
            config.decimals,
            config.include_pose,
            config.key_dialect,
            config.template_dir,
            config.block_style,
        )
    )


def fill_skeleton(
    segments: Iterable[Segment], texts: Mapping[str, str], numbers: FaceCoefficients | Mapping[str, float]
) -> str:
    """Join a skeleton with free texts (``{section: text}``) and numbers (coefficients or ``{channel: value}``)."""
    out: list[str] = []
    for segment in segments:
        if isinstance(segment, Literal):
            out.append(segment.text)
        elif isinstance(segment, FreeText):
            out.append(texts[segment.name])
        else:
            if isinstance(numbers, FaceCoefficients):
                value = float(numbers.quantized(segment.decimals)[segment.channel])
            else:
                value = float(numbers[segment.channel])
            out.append(segment.format(value))
    return "".join(out)


# --- parsing -------------------------------------------------------------------------------------------------


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


_MAX_CANDIDATES = 64  # brace-balanced spans tried, latest first; bounds the work on adversarial input
_PAIR = re.compile(r"""["']?([A-Za-z_][A-Za-z0-9_]{0,40})["']?\s*:\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)""")


def _brace_spans(text: str) -> list[tuple[int, int]]:
    """Balanced ``{...}`` spans, ordered by end position (latest first). Quotes are not tracked, on purpose:
    free text with a stray quote must not hide the block, and channel keys never contain braces."""
    stack: list[int] = []
    spans: list[tuple[int, int]] = []
    for match in re.finditer(r"[{}]", text):
        if match.group() == "{":
            stack.append(match.start())
        elif stack:
            spans.append((stack.pop(), match.end()))
    spans.sort(key=lambda s: (-s[1], s[0]))
    return spans[:_MAX_CANDIDATES]


def _loads(candidate: str) -> tuple[list[tuple[object, object]] | None, list[str]]:
    """Key/value pairs of a JSON object (duplicates kept), trying light repairs; (None, []) if unreadable."""
    attempts = [(candidate, [])]
    repaired = re.sub(r",\s*([}\]])", r"\1", candidate)
    if repaired != candidate:
        attempts.append((repaired, ["coefficient block has a trailing comma"]))
    if "'" in candidate and '"' not in candidate:
        attempts.append((repaired.replace("'", '"'), ["coefficient block uses single quotes"]))
    for text, notes in attempts:
        try:
            pairs = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_NonFinite)
        except (ValueError, RecursionError, OverflowError, MemoryError, TypeError):
            continue
        if isinstance(pairs, _Pairs):
            return list(pairs), notes
    return None, []


class _Pairs(list):
    """object_pairs_hook result: keeps duplicate keys, which a dict would silently drop."""


class _NonFinite(str):
    """NaN / Infinity / -Infinity literals, kept as markers instead of floats."""


def _channel_pairs(pairs: list[tuple[object, object]]) -> list[tuple[object, object]]:
    """The pairs that carry channels: the object itself, or one nested object (``{"blendshapes": {...}}``)."""
    if any(isinstance(k, str) and _known(k) for k, _ in pairs):
        return pairs
    for _, value in pairs:
        if isinstance(value, _Pairs) and any(isinstance(k, str) and _known(k) for k, _ in value):
            return list(value)
    return []


def _known(key: str) -> bool:
    try:
        canonical_name(key)
        return True
    except (SemanticFaceError, Exception):
        return False


def _number(value: object, key: str, issues: list[str]) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, (_Pairs, list, dict)):
        issues.append(f"{key}: value {_show(value)} is not a number")
        return None
    if isinstance(value, _NonFinite):
        issues.append(f"{key}: value {value} is not finite")
        return None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            issues.append(f"{key}: value {_show(value)} is not a number")
            return None
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
    for raw_key, raw_value in pairs:
        key = raw_key if isinstance(raw_key, str) else str(raw_key)
        if is_mediapipe_neutral(key):
            continue  # MediaPipe's extra category, not a channel
        try:
            name = canonical_name(key)
        except (SemanticFaceError, Exception):
            issues.append(f"unknown key {_show(key)}")
            continue
        if name in found:
            issues.append(f"duplicate key {_show(key)} ({name} already given as {_show(found[name])}); kept the first")
            continue
        number = _number(raw_value, key, issues)
        if number is None:
            continue
        low, high = channel_range(name)
        if not low <= number <= high:
            issues.append(f"{key}: value {number:g} is outside [{low:g}, {high:g}]; clamped")
            number = min(max(number, low), high)
        values[CHANNEL_INDEX[name]] = number
        found[name] = key
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


def _description(text: str) -> str:
    text = re.sub(r"```[A-Za-z]*\s*$", "", text.rstrip()).rstrip()
    if text.endswith("Coefficients:"):
        text = text[: -len("Coefficients:")]
    return text.strip()


def parse_output(text: str, *, expected_channels: Iterable[str] | None = None) -> ParsedOutput:
    """Read a model output back into coefficients (see the module docstring for what is tolerated).

    ``expected_channels`` (any dialect) are reported missing when absent; by default the 52 blendshapes, plus
    the 9 pose channels when the block has any of them. Raises only :class:`OutputParseError`.
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
    for start, end in _brace_spans(text):
        pairs, notes = _loads(text[start:end])
        if pairs is None:
            continue
        channel_pairs = _channel_pairs(pairs)
        if not channel_pairs:
            continue
        issues.extend(notes)
        if text[end:].strip().strip("`").strip():
            issues.append("text after the coefficient block ignored")
        coefficients = _coefficients(channel_pairs, expected, issues)
        return ParsedOutput(coefficients, _description(text[:start]), issues)
    # No complete block: salvage "key": number pairs after the last '{' (a truncated or garbled block).
    start = text.rfind("{")
    pairs_found = [(m.group(1), m.group(2)) for m in _PAIR.finditer(text, start)]
    salvaged: list[tuple[object, object]] = [(k, float(v)) for k, v in pairs_found if _known(k)]
    if not salvaged:
        raise OutputParseError("no readable coefficient block in the output")
    issues.append("coefficient block is incomplete or not valid JSON; read the 'key: number' pairs it has")
    coefficients = _coefficients(salvaged, expected, issues)
    return ParsedOutput(coefficients, _description(text[:start]), issues)


def parse_semanticface_release(text: str) -> ParsedOutput:
    """Read the SemanticFace release's output: a markdown analysis, then one JSON object of the 61 Live Link
    Face PascalCase keys at 1 decimal. All 61 channels are expected."""
    return parse_output(text, expected_channels=CHANNELS)


def parse_target(text: str, config: TargetConfig) -> ParsedOutput:
    """Read the output of a model trained on ``config``'s targets: :func:`parse_output` for the JSON block (the
    config's channels expected), :func:`semanticface.compact.parse_compact_output` for the compact one."""
    if config.block_style == "compact":
        from semanticface.compact import parse_compact_output

        return parse_compact_output(text, config)
    return parse_output(text, expected_channels=config.channels())
