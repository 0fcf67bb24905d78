"""Exact 2-D facial keypoints of rendered dataset rows: targets for a vision objective that never sees ARKit values.

Rows of a synthetic dataset (:mod:`semanticface.synth`) carry everything their image was drawn from: the
coefficients (one column per channel), ``identity``, and ``renderer`` (``avatar-flat``, ``avatar-shaded`` or ``mesh``).
The keypoints are therefore computed on the fly, not stored: the renderer projects the same control points (avatar:
:data:`~semanticface.render.avatar.KEYPOINT_NAMES`) or rig vertices (mesh: ``MeshRenderer.keypoint_vertices``) it
draws, under the row's expression and head pose, at the row's image size. Recomputing costs about a millisecond a
row and keeps datasets unchanged (any dataset ``synth`` made, old or new, works).

Layout of :func:`keypoint_targets`: one vector per row holding the avatar's keypoints, then (when the dataset has mesh
rows) the mesh's, each as (x, y) divided by the image side (so 0..1 across the image); a mask marks the slots of the
row's own renderer, so mixed datasets (shaded avatar + ICT mesh) train one head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semanticface.errors import DatasetError
from semanticface.rows import dataset_coefficients

AVATAR_RENDERERS = ("avatar-flat", "avatar-shaded")


def keypoint_targets(dataset: Any, *, mesh_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(values, mask)``, each ``(rows, 2 * slots)`` float32: normalised keypoint coordinates per row and 1 where the
    slot belongs to the row's renderer. ``mesh_dir`` (or ``$SEMANTICFACE_MESH_DIR``) is the rig of ``mesh`` rows."""
    from semanticface.render import get_renderer
    from semanticface.render.avatar import KEYPOINT_NAMES

    for column in ("renderer", "identity", "images"):
        if column not in dataset.column_names:
            raise DatasetError(
                f"landmark targets need rendered rows: the dataset has no {column!r} column (make it with "
                "semanticface synth; real photos have no exact landmarks)"
            )
    kinds = list(dataset["renderer"])
    bad = next((i for i, kind in enumerate(kinds) if kind not in (*AVATAR_RENDERERS, "mesh")), None)
    if bad is not None:
        raise DatasetError(f"row {bad}: renderer {kinds[bad]!r} has no keypoints (avatar-flat, avatar-shaded, mesh)")
    mesh = get_renderer("mesh", mesh_dir=mesh_dir) if "mesh" in kinds else None
    avatar_slots = len(KEYPOINT_NAMES)
    mesh_slots = len(mesh.keypoint_vertices) if mesh is not None else 0  # type: ignore[attr-defined]
    values = np.zeros((len(kinds), 2 * (avatar_slots + mesh_slots)), dtype=np.float32)
    mask = np.zeros_like(values)
    avatars = {style: get_renderer(style) for style in AVATAR_RENDERERS}
    identities = list(dataset["identity"])
    coefficients = dataset_coefficients(dataset)
    for row, (kind, image) in enumerate(zip(kinds, (r[0] for r in dataset.select_columns(["images"])["images"]))):
        width, height = image.size
        if width != height:
            raise DatasetError(f"row {row}: image is {width}x{height}; rendered faces are square")
        if kind == "mesh":
            points = mesh.keypoints(coefficients[row], size=width)  # type: ignore[union-attr]
            start = 2 * avatar_slots
        else:
            points = avatars[kind].keypoints(coefficients[row], identity=int(identities[row]), size=width)  # type: ignore[attr-defined]
            start = 0
        flat = (points / width).reshape(-1)
        values[row, start : start + len(flat)] = flat
        mask[row, start : start + len(flat)] = 1.0
    return values, mask
