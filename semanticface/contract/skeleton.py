"""The target skeleton for template-forced decoding: the target (:mod:`semanticface.contract.target`) cut into
fixed text (:class:`LiteralPiece`), generated description fields (:class:`FreeText`) and generated coefficient
values (:class:`NumberPiece`)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Union

from semanticface.coefficients import FaceCoefficients, channel_range
from semanticface.compact import CLOSE, OPEN, SEPARATOR
from semanticface.contract.target import TargetConfig, format_value, template_context
from semanticface.errors import ConfigError
from semanticface.prompts import render
from semanticface.schema import REGIONS
from semanticface.semantics import SECTION_NAMES


@dataclass(frozen=True)
class LiteralPiece:
    """Fixed text the decoder appends verbatim."""

    text: str


@dataclass(frozen=True)
class FreeText:
    """A generated description field: at most ``max_chars`` characters, ended by ``stop`` (the next literal)."""

    name: str  # one of semantics.SECTION_NAMES
    max_chars: int
    stop: str


@dataclass(frozen=True)
class NumberPiece:
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


Segment = Union[LiteralPiece, FreeText, NumberPiece]  # noqa: UP007 - a runtime alias usable in isinstance-free unions

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
    text = render("target.j2", template_context(sections, block, config), template_dir)
    channels, keys = config.channels(), config.keys()
    segments: list[Segment] = []
    pos = 0
    pending: list[tuple[int, str]] = []  # free-text slots waiting for their stop literal
    for match in _SENTINEL.finditer(text):
        if match.start() > pos:
            segments.append(LiteralPiece(text[pos : match.start()]))
        kind, index = match.group(1), int(match.group(2))
        if kind == "F":
            pending.append((len(segments), names[index]))
            segments.append(FreeText(names[index], FREE_TEXT_LIMITS[names[index]], ""))
        else:
            low, high = channel_range(channels[index])
            end = (SEPARATOR if index < len(channels) - 1 else CLOSE) if compact else ""
            segments.append(NumberPiece(channels[index], keys[index], decimals, low, high, compact, end))
        pos = match.end()
    if pos < len(text):
        segments.append(LiteralPiece(text[pos:]))
    for i, name in pending:
        following = segments[i + 1] if i + 1 < len(segments) else None
        if not isinstance(following, LiteralPiece):
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
        if isinstance(segment, LiteralPiece):
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
