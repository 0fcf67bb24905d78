"""The training target: the exact text a model is trained to emit (and the prompts it is given with the image).

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

The parser that reads it back is :mod:`semanticface.contract.parse`; the target cut into fixed text and slots
for template-forced decoding is :mod:`semanticface.contract.skeleton`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semanticface.coefficients import FaceCoefficients
from semanticface.compact import BLOCK_STYLES, compact_block
from semanticface.errors import ConfigError, UnknownChannelError, UnobservableFaceError
from semanticface.prompts import render
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX, CHANNELS, REGIONS, Dialect, to_dialect
from semanticface.semantics import REGION_TITLES, IntensityScale, describe

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
    pairs = [(n, spelling(n, dialect)) for n in names]
    pairs = [(n, k) for n, k in pairs if k is not None]
    return tuple(n for n, _ in pairs), tuple(k for _, k in pairs), tuple(json.dumps(k) for _, k in pairs)  # type: ignore[misc]


def spelling(name: str, dialect: str) -> str | None:
    """``name`` as spelled in ``dialect``, or None when the dialect has no such channel."""
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


def template_context(sections: Mapping[str, str], block: str, config: TargetConfig) -> dict[str, object]:
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
    return render("description.j2", template_context(sections, "", config), config.template_dir)


def render_target(coefficients: FaceCoefficients, config: TargetConfig | None = None) -> str:
    """The full training target of ``coefficients`` (see the module docstring for the layout).

    A frame with every blendshape missing (tracking lost) has no target: :class:`UnobservableFaceError`.
    """
    config = config or TargetConfig()
    if coefficients.missing.issuperset(BLENDSHAPES):
        raise UnobservableFaceError(
            "every blendshape channel is missing (tracking lost?): there is no target to write"
        )
    quantized = coefficients.quantized(config.decimals)
    sections = describe(quantized).sections() if config.target_format == "semantic" else {}
    return render(
        "target.j2", template_context(sections, coefficient_block(quantized, config), config), config.template_dir
    )


def system_prompt(config: TargetConfig | None = None) -> str:
    """The system prompt given to the VLM with the image."""
    config = config or TargetConfig()
    context = {**template_context({}, "", config), "intensity_words": [w for w, _ in IntensityScale().levels()]}
    return render("system.j2", context, config.template_dir).strip()


def user_prompt(config: TargetConfig | None = None) -> str:
    """The user prompt given with the image; lists the block's keys in order."""
    config = config or TargetConfig()
    return render(
        "user.j2", {**template_context({}, "", config), "keys": list(config.keys())}, config.template_dir
    ).strip()


def build_prompt_messages(target_config: TargetConfig | None = None) -> list[dict[str, Any]]:
    """System + user messages of one face image, with one image placeholder before the user text: the one
    source of the prompt, for training rows, inference, preference pairs and benchmarks."""
    config = target_config or TargetConfig()
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt(config)}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_prompt(config)}]},
    ]


def completion_messages(target: str) -> list[dict[str, Any]]:
    """The assistant turn holding a rendered target."""
    return [{"role": "assistant", "content": [{"type": "text", "text": target}]}]
