"""Command-line options shared by the subcommands that run a model."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

from semanticface.decoding.forced import NUMBER_ESTIMATES
from semanticface.inference import DECODING_MODES

T = TypeVar("T")


def add_decoding_arguments(parser: argparse.ArgumentParser, *, numbers: bool = True) -> None:
    """``--decoding`` (plain ``generate`` or template-forced) and, for point predictions, ``--numbers``."""
    parser.add_argument(
        "--decoding",
        choices=DECODING_MODES,
        default="generate",
        help="plain generate, or forced: the target's fixed text is appended, only values and descriptions are "
        "generated, and every output parses",
    )
    if numbers:
        parser.add_argument(
            "--numbers",
            choices=NUMBER_ESTIMATES,
            default="mode",
            help="coefficient values: greedy tokens (mode) or the median of the model's distribution (least "
            "expected absolute error; needs --decoding forced)",
        )


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` flag per field of dataclass ``cls`` (its default, ``help`` and ``choices`` metadata),
    so a CLI and the config object it builds cannot drift apart. Types: int, float, str, ``tuple[X, ...]``
    (``nargs="+"``), bool (a ``--flag``/``--no-flag`` pair)."""
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if spec.name in exclude:
            continue
        factory: Any = spec.default_factory
        default = factory() if spec.default is dataclasses.MISSING else spec.default
        kwargs: dict[str, Any] = {"default": default, "dest": spec.name, "help": spec.metadata.get("help")}
        hint = hints[spec.name]
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            kwargs.update(type=typing.get_args(hint)[0], nargs="+")
        elif hint in (int, float, str):
            kwargs["type"] = hint
        else:
            raise TypeError(f"{cls.__name__}.{spec.name}: no command-line form for type {hint}")
        if "choices" in spec.metadata:
            kwargs["choices"] = spec.metadata["choices"]
        parser.add_argument("--" + spec.name.replace("_", "-"), **kwargs)


def dataclass_from_arguments(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """An instance of dataclass ``cls`` from the flags :func:`add_dataclass_arguments` added (tuples kept tuples)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}  # type: ignore[arg-type]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**{**values, **overrides})
