"""Fixed-choice fields of the recipe configs: one ``choices`` list per field, checked for YAML values too.

A dataclass field with ``metadata={"choices": (...)}`` becomes a flag whose bad value argparse rejects at once
(TRL's and transformers' parsers pass the metadata to ``add_argument``). A value from a YAML config arrives as the
flag's default, which argparse never checks against ``choices``: :func:`check_choices`, called from the config's
``__post_init__``, does, so a misspelt choice fails at parse time, before any model loads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from semanticface.errors import ConfigError


def check_choices(config: Any) -> None:
    """Raise :class:`ConfigError` naming the first field of dataclass ``config`` whose value is not a choice."""
    for spec in dataclasses.fields(config):
        choices = spec.metadata.get("choices")
        value = getattr(config, spec.name)
        if choices is not None and value not in choices:
            raise ConfigError(f"{spec.name} must be one of {', '.join(map(str, choices))}; got {value!r}")
