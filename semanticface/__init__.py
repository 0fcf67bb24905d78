"""semanticface: read a face image as ARKit blendshape coefficients with an interpretable description.

The public API, importable from the package itself::

    from semanticface import SemanticFacePredictor, FaceCoefficients, describe, TargetConfig, render_target
    from semanticface import parse_output, read_llf, write_llf, get_renderer

Names are imported on first use (PEP 562 module ``__getattr__``), and none of them imports torch or transformers at
module level, so ``import semanticface`` and the light commands (``semanticface describe``) start quickly; a model
loads them when it is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SemanticFacePredictor": "semanticface.inference",
    "FaceCoefficients": "semanticface.coefficients",
    "describe": "semanticface.semantics",
    "TargetConfig": "semanticface.contract",
    "render_target": "semanticface.contract",
    "parse_output": "semanticface.contract",
    "read_llf": "semanticface.llf",
    "write_llf": "semanticface.llf",
    "get_renderer": "semanticface.render",
    "SemanticFaceError": "semanticface.errors",
}

__all__ = [
    "FaceCoefficients",
    "SemanticFaceError",
    "SemanticFacePredictor",
    "TargetConfig",
    "__version__",
    "describe",
    "get_renderer",
    "parse_output",
    "read_llf",
    "render_target",
    "write_llf",
]

if TYPE_CHECKING:
    from semanticface.coefficients import FaceCoefficients
    from semanticface.contract import TargetConfig, parse_output, render_target
    from semanticface.errors import SemanticFaceError
    from semanticface.inference import SemanticFacePredictor
    from semanticface.llf import read_llf, write_llf
    from semanticface.render import get_renderer
    from semanticface.semantics import describe


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'semanticface' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
