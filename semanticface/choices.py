"""Config dataclasses on the command line: one ``choices`` list per fixed-choice field, checked for YAML values too,
and library configs offered to a recipe's parser under names that do not clash.

A dataclass field with ``metadata={"choices": (...)}`` becomes a flag whose bad value argparse rejects at once
(TRL's and transformers' parsers pass the metadata to ``add_argument``). A value from a YAML config arrives as the
flag's default, which argparse never checks against ``choices``: :func:`check_choices`, called from the config's
``__post_init__``, does, so a misspelt choice fails at parse time, before any model loads.

``HfArgumentParser``/``TrlParser`` need every field name to be unique over all the dataclasses they parse, and TRL's
configs already own names such as ``seed``. :func:`parser_dataclass` makes a parser-facing copy of a library config
whose fields carry a prefix or a new name (``seed`` -> ``sampling_seed``); its ``build()`` returns the library config.
The fields stay declared once, in the library dataclass.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from semanticface.errors import ConfigError

T = TypeVar("T")


def check_choices(config: Any) -> None:
    """Raise :class:`ConfigError` naming the first field of dataclass ``config`` whose value is not a choice (for a
    list or tuple value: an element that is not)."""
    for spec in dataclasses.fields(config):
        choices = spec.metadata.get("choices")
        value = getattr(config, spec.name)
        if choices is None or value is None and spec.default is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if item not in choices:
                raise ConfigError(f"{spec.name} must be one of {', '.join(map(str, choices))}; got {item!r}")


def _parser_type(hint: Any) -> Any:
    """``tuple[X, ...]`` (also inside ``| None``) as ``list[X]``: the parsers read lists (``nargs="+"``) only."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return types.GenericAlias(list, args[:1])
    if type(None) in args and len(args) == 2:
        inner = next(a for a in args if a is not type(None))
        if typing.get_origin(inner) is tuple:
            listed: Any = types.GenericAlias(list, typing.get_args(inner)[:1])
            return listed | None
    return hint


def parser_dataclass(
    cls: type[T],
    name: str,
    module: str,
    *,
    prefix: str = "",
    rename: Mapping[str, str] | None = None,
    group: str | None = None,
) -> type:
    """A dataclass with the fields of dataclass ``cls`` (defaults, help, choices) named ``rename[name]`` or
    ``prefix + name``, for a recipe's ``TrlParser``. Its instances check their choices on creation (a misspelt YAML
    value fails at parse time, under its parser name) and ``build()`` returns the ``cls`` instance, whose own
    ``__post_init__`` checks run then too. Assign the result to ``name`` in ``module`` (so that it pickles);
    ``group`` titles the flags in ``--help``."""
    rename = dict(rename or {})
    hints = typing.get_type_hints(cls)
    names: dict[str, str] = {}
    specs: list[tuple[str, Any, Any]] = []
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not spec.init:
            continue
        flag = rename.pop(spec.name, prefix + spec.name)
        names[flag] = spec.name
        kind = _parser_type(hints[spec.name])
        default: Any
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{spec.name}: a parser field needs a default")
        if isinstance(default, (list, tuple)):
            new = dataclasses.field(default_factory=functools.partial(list, default), metadata=spec.metadata)
        else:
            new = dataclasses.field(default=default, metadata=spec.metadata)
        specs.append((flag, kind, new))
    if rename:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(rename)}")

    def build(self: Any) -> T:
        values = {names[k]: getattr(self, k) for k in names}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def post_init(self: Any) -> None:
        check_choices(self)
        self.build()  # the library config's own checks, at parse time

    namespace = {"build": build, "__post_init__": post_init, "field_names": names}
    if group:
        namespace["_argument_group_name"] = group
    made = dataclasses.make_dataclass(name, specs, namespace=namespace)
    made.__module__ = module
    renamed = ", ".join(f"{old} -> {new}" for new, old in names.items() if new != old)
    made.__doc__ = f"{cls.__name__}'s fields for a recipe's parser (renamed: {renamed or 'none'})."
    return made
