"""The compact coefficient block (``TargetConfig(block_style="compact")``): values only, in a fixed order.

Layout: ``[v1,v2,...,vN]`` on one line after ``Coefficients:``, one value per channel of
:meth:`TargetConfig.channels` (canonical ARKit order: the 52 blendshapes, then the 9 pose channels with
``include_pose``), each value the coefficient as an integer count of ``10**-decimals`` (at 2 decimals: hundredths,
``0.37`` -> ``37``, ``1.00`` -> ``100``, pose ``-0.25`` -> ``-25``), commas without spaces, no keys. A missing channel
is an empty item (``[12,,0]``). With a digit-splitting tokenizer (Qwen) a value costs its digits plus one comma:
the 52 keys of the JSON block, ~300 of its ~615 tokens, are gone and the ``0.`` of every value too.

The key order is the contract: the prompt lists the channels in that order, and the parser reads values by
position. The parser is lenient where the JSON block's parser is and records the same kinds of issues: trailing
comma, quoted values, a value written as a decimal, out-of-range values (clamped), too many values (extra
ignored), a truncated block (values read up to the cut; the rest marked missing), text after the block.
Unreadable channels are marked missing, never zero; it raises only :class:`OutputParseError`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from semanticface.errors import OutputParseError

if TYPE_CHECKING:
    from semanticface.coefficients import FaceCoefficients
    from semanticface.contract import TargetConfig

BLOCK_STYLES = ("json", "compact")
OPEN, SEPARATOR, CLOSE = "[", ",", "]"

_INTEGER = re.compile(r"[-+]?\d+")
_DECIMAL = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+)")
_BLOCK = re.compile(r"\[([^\[\]\n]*)(\])?")


def compact_value(value: float, decimals: int) -> str:
    """Integer text of an already quantised value in units of ``10**-decimals`` (``0.37``, 2 -> ``"37"``)."""
    return str(int(round(value * 10**decimals)))


def compact_block(coefficients: FaceCoefficients, config: TargetConfig) -> str:
    """The one-line compact block of ``coefficients`` (quantised to ``config.decimals``; missing channels empty)."""
    from semanticface.schema import CHANNEL_INDEX

    quantized = coefficients.quantized(config.decimals)
    values, missing = quantized.values, quantized.missing
    items = [
        "" if name in missing else compact_value(float(values[CHANNEL_INDEX[name]]), config.decimals)
        for name in config.channels()
    ]
    return OPEN + SEPARATOR.join(items) + CLOSE


def _item_value(item: str, channel: str, decimals: int, issues: list[str]) -> float | None:
    """Coefficient value of one item (None when unreadable: the channel is marked missing)."""
    text = item.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        issues.append(f"{channel}: value is a string {text!r}")
        text = text[1:-1].strip()
    if _INTEGER.fullmatch(text):
        return int(text) / 10**decimals
    if _DECIMAL.fullmatch(text):
        issues.append(f"{channel}: value {text!r} is written as a decimal, not in units of 1e-{decimals}; read as is")
        return float(text)
    shown = text if len(text) <= 20 else text[:17] + "..."
    issues.append(f"{channel}: value {shown!r} is not a number")
    return None


def read_compact_block(
    text: str, channels: tuple[str, ...], decimals: int
) -> tuple[list[tuple[str, float]], int, list[str]]:
    """Read the compact block of a model output (see the module docstring): ``(channel, value)`` pairs of the
    channels it gives, where the block starts (the description is the text before it), and the issues met.

    Takes the last ``[...]`` holding a digit (a block cut before its ``]`` is read up to the cut). Raises
    :class:`OutputParseError` when no channel value is recoverable. :func:`semanticface.contract.parse_target`
    turns the pairs into coefficients the way the JSON block's are (out-of-range values clamped, absent channels
    marked missing).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise OutputParseError(f"model output must be text, got {type(text).__name__}")
    blocks = [m for m in _BLOCK.finditer(text) if any(c.isdigit() for c in m.group(1))]
    if not blocks:
        raise OutputParseError("no compact coefficient block (no '[' followed by values) in the output")
    block = blocks[-1]
    issues: list[str] = []
    if block.group(2) is None:
        issues.append("compact coefficient block is not closed by ']' (truncated?); read the values it has")
    elif text[block.end() :].strip().strip("`").strip():
        issues.append("text after the coefficient block ignored")
    items = block.group(1).split(SEPARATOR)
    if len(items) == len(channels) + 1 and not items[-1].strip():
        issues.append("coefficient block has a trailing comma")
        items = items[:-1]
    if block.group(2) is None and items and not items[-1].strip():
        items = items[:-1]  # cut right after a comma
    elif block.group(2) is None and items and block.end() == len(text) and len(items) <= len(channels):
        # The output stops inside the last value: "6" may be the start of "65". Not read, and said.
        cut = channels[len(items) - 1]
        issues.append(
            f"{cut}: value {items[-1].strip()!r} is cut off at the end of the output (truncated); marked missing"
        )
        items = [*items[:-1], ""]
    if len(items) > len(channels):
        issues.append(f"coefficient block has {len(items)} values for {len(channels)} channels; extra ignored")
    pairs: list[tuple[str, float]] = []
    for channel, item in zip(channels, items):
        if not item.strip():
            continue  # an empty item: the channel is missing (reported with the others below)
        value = _item_value(item, channel, decimals, issues)
        if value is not None:
            pairs.append((channel, value))
    if not pairs:
        raise OutputParseError("the compact coefficient block holds no readable channel value", issues)
    return pairs, block.start(), issues
