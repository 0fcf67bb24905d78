"""Optional dependencies: import one, or raise an error that names the extra to install.

The core install is the training stack (torch, transformers, peft, trl, accelerate, datasets, bitsandbytes, pillow,
jinja2). Everything else is an extra of ``pyproject.toml``; import it through :func:`require` so a user who lacks it
reads which ``pip install`` to run instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from semanticface.errors import MissingExtraError

# module -> the extra of pyproject.toml that installs it
EXTRAS: dict[str, str] = {
    "flask": "annotate",
    "matplotlib": "eval",
    "mediapipe": "mediapipe",
    "av": "video",
    "pygltflib": "gltf",
    "meshoptimizer": "gltf",
    "tensorboard": "tensorboard",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (a dotted name whose top-level package is in :data:`EXTRAS`) or raise MissingExtraError."""
    top = module.partition(".")[0]
    if top not in EXTRAS:
        raise KeyError(f"{top} is not an optional dependency of semanticface (known: {sorted(EXTRAS)})")
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(top, EXTRAS[top], purpose) from None


def mediapipe_tasks() -> tuple[ModuleType, Any, ModuleType]:
    """``(mediapipe, BaseOptions, mediapipe.tasks.python.vision)``: what the face landmarker needs."""
    purpose = "MediaPipe face tracking"
    mediapipe = require("mediapipe", purpose)
    tasks = require("mediapipe.tasks.python", purpose)
    return mediapipe, tasks.BaseOptions, require("mediapipe.tasks.python.vision", purpose)
