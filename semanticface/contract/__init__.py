"""The output contract: the target a model is trained to emit (:mod:`.target`), its skeleton for template-forced
decoding (:mod:`.skeleton`) and the parser that reads an output back (:mod:`.parse`). The public names of the
three are importable from here (``from semanticface.contract import TargetConfig, parse_output``)."""

from semanticface.contract.parse import ParsedOutput, parse_output, parse_semanticface_release, parse_target
from semanticface.contract.skeleton import (
    FREE_TEXT_LIMITS,
    FreeText,
    LiteralPiece,
    NumberPiece,
    Segment,
    fill_skeleton,
    target_skeleton,
)
from semanticface.contract.target import (
    TARGET_FORMATS,
    TargetConfig,
    build_prompt_messages,
    coefficient_block,
    completion_messages,
    format_value,
    render_description,
    render_target,
    system_prompt,
    user_prompt,
)

__all__ = [
    "FREE_TEXT_LIMITS",
    "TARGET_FORMATS",
    "FreeText",
    "LiteralPiece",
    "NumberPiece",
    "ParsedOutput",
    "Segment",
    "TargetConfig",
    "build_prompt_messages",
    "coefficient_block",
    "completion_messages",
    "fill_skeleton",
    "format_value",
    "parse_output",
    "parse_semanticface_release",
    "parse_target",
    "render_description",
    "render_target",
    "system_prompt",
    "target_skeleton",
    "user_prompt",
]
