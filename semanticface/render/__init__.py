"""Face renderers: coefficients (+ head/eye pose) -> RGB image.

Two renderers share one interface (:class:`Renderer`): the built-in avatar (no assets, flat or shaded style)
and the mesh renderer for ARKit-rigged meshes (OBJ + npz in ICT-FaceKit's layout, or glTF/GLB morph targets).

>>> from semanticface.render import get_renderer
>>> image = get_renderer("avatar-shaded").render(coefficients, identity=3, size=256)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.render.avatar import STYLES, AvatarRenderer
from semanticface.render.camera import Camera, Lighting
from semanticface.render.identity import Identity

RENDERER_NAMES = ("avatar", "avatar-flat", "avatar-shaded", "mesh")
MESH_DIR_ENV = "SEMANTICFACE_MESH_DIR"


@runtime_checkable
class Renderer(Protocol):
    """Anything that draws coefficients as a face image."""

    name: str

    def render(
        self, coefficients: FaceCoefficients, *, identity: Any = 0, size: int = 256
    ) -> Image.Image:  # pragma: no cover - protocol
        ...


def get_renderer(name: str, **kwargs: Any) -> Renderer:
    """A renderer by name: "avatar" (= "avatar-flat"), "avatar-flat", "avatar-shaded" or "mesh".

    ``mesh`` needs ``mesh_dir`` (a folder with an ICT-style OBJ + npz, or a .glb/.gltf file), or the
    ``SEMANTICFACE_MESH_DIR`` environment variable; other keyword arguments go to the renderer's constructor.
    """
    if name in ("avatar", "avatar-flat", "avatar-shaded"):
        style = kwargs.pop("style", "shaded" if name == "avatar-shaded" else "flat")
        return AvatarRenderer(style, **kwargs)
    if name == "mesh":
        from semanticface.render.mesh import MeshRenderer, load_rig

        mesh_dir = kwargs.pop("mesh_dir", None) or os.environ.get(MESH_DIR_ENV)
        if not mesh_dir:
            raise ConfigError(f"the mesh renderer needs mesh_dir (or ${MESH_DIR_ENV}): an OBJ + npz folder or a GLB")
        mouth_close = kwargs.pop("mouth_close", "clamp_to_jaw")
        return MeshRenderer(load_rig(Path(mesh_dir), mouth_close=mouth_close), **kwargs)
    raise ConfigError(f"unknown renderer {name!r} (choose from {', '.join(RENDERER_NAMES)})")


__all__ = [
    "STYLES",
    "RENDERER_NAMES",
    "AvatarRenderer",
    "Camera",
    "Identity",
    "Lighting",
    "Renderer",
    "get_renderer",
]
