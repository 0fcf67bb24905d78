"""Jinja templates that lay out descriptions, training targets and the VLM's system/user prompts.

Templates live in ``prompts/`` at the repository root (``semanticface/_prompts`` inside an installed wheel).
A user directory given as ``template_dir`` is searched first, so a user can override any one template by name.
Templates only lay strings out; every decision is made in Python (``semanticface.semantics``).

Every template renders in Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`: a template can read the
values it is given, but cannot reach Python internals (``cycler.__init__.__globals__``...) or mutate anything, so
a template is text, never code. Templates that come with a model (its checkpoint config names a ``template_dir``)
are still used only with ``trust_remote_code=True``: see :meth:`semanticface.checkpoint.CheckpointConfig.target_config`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from semanticface.errors import ConfigError

TEMPLATE_NAMES = ("description.j2", "target.j2", "system.j2", "user.j2")


def default_template_dir() -> Path:
    """The shipped templates: ``semanticface/_prompts`` when installed, else ``<repo>/prompts``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_prompts", here.parent / "prompts"):
        if (candidate / "target.j2").is_file():
            return candidate
    raise ConfigError(
        f"the default prompt templates are missing (looked in {here / '_prompts'} and {here.parent / 'prompts'})"
    )


@functools.lru_cache(maxsize=16)
def environment(template_dir: str | None = None) -> jinja2.Environment:
    """A sandboxed Jinja environment over ``template_dir`` (searched first) then the shipped templates."""
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        path = Path(template_dir)
        if not path.is_dir():
            raise ConfigError(f"template directory {path} does not exist")
        loaders.append(jinja2.FileSystemLoader(str(path)))
    loaders.append(jinja2.FileSystemLoader(str(default_template_dir())))
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not an empty string
        autoescape=False,  # plain text, not HTML
        keep_trailing_newline=True,
    )


def render(name: str, context: Mapping[str, Any], template_dir: str | Path | None = None) -> str:
    """Render template ``name``; Jinja errors (a sandbox violation included) become :class:`ConfigError` naming
    the template."""
    env = environment(None if template_dir is None else str(template_dir))
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as error:
        raise ConfigError(f"prompt template {name!r}: {error}") from error
