"""Random faces and small datasets of rendered faces in the semanticface row layout, shared by the tests (they
used to rewrite these loops file by file). Deterministic for a given ``numpy.random.Generator``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.schema import NUM_BLENDSHAPES


def random_face(
    rng: np.random.Generator,
    high: float = 0.5,
    *,
    active: float | None = None,
    decimals: int | None = None,
    missing: Iterable[str] = (),
) -> FaceCoefficients:
    """52 blendshapes drawn uniformly from [0, ``high``) (pose at 0). ``active``: each blendshape is kept with this
    probability and zero otherwise (sparse faces, as real expressions are); ``decimals``: values rounded;
    ``missing``: channels marked missing (e.g. ``("tongueOut",)`` as MediaPipe labels are)."""
    values = rng.uniform(0, high, NUM_BLENDSHAPES)
    if active is not None:
        values = values * (rng.uniform(size=NUM_BLENDSHAPES) < active)
    if decimals is not None:
        values = values.round(decimals)
    return FaceCoefficients.from_array(values, missing)


def random_faces(n: int, *, seed: int = 0, **kwargs: Any) -> list[FaceCoefficients]:
    """``n`` faces of :func:`random_face` (same keyword arguments) from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [random_face(rng, **kwargs) for _ in range(n)]


def face_rows(
    faces: Sequence[FaceCoefficients],
    *,
    images: Sequence[Any] | None = None,
    size: int = 56,
    vary_identity: bool = False,
    identity_column: bool = False,
    renderer: Any = None,
) -> list[dict[str, Any]]:
    """Rows in the semanticface layout (one column per channel + ``images``): each face with its avatar render
    (``size`` pixels; avatar identity ``i`` for row ``i`` with ``vary_identity``, else identity 0), or with
    ``images[i]`` when given. ``identity_column`` adds ``identity: i``."""
    from semanticface.rows import coefficients_to_row

    if images is None:
        if renderer is None:
            from semanticface.render import get_renderer

            renderer = get_renderer("avatar")
        images = [renderer.render(f, identity=i if vary_identity else 0, size=size) for i, f in enumerate(faces)]
    rows = []
    for i, (face, image) in enumerate(zip(faces, images, strict=True)):
        row = {**coefficients_to_row(face), "images": [image]}
        if identity_column:
            row["identity"] = i
        rows.append(row)
    return rows


def face_dataset(faces: Sequence[FaceCoefficients], **kwargs: Any) -> Any:
    """A ``datasets.Dataset`` of :func:`face_rows` (same keyword arguments)."""
    from datasets import Dataset

    return Dataset.from_list(face_rows(faces, **kwargs))
