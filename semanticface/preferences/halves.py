"""Where each face half is in a render: the pixels the upper (or lower) face's channels move.

A pixel belongs to a half when moving every channel of that half (``schema.FACE_HALVES``) changes it more than
moving every channel of the other half does, for the given renderer, look and size. The pixel annotator compares
renders on that mask; the ranking app dims the half not judged below or above :func:`half_boundary`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.schema import CHANNEL_INDEX, FACE_HALVES, NUM_CHANNELS

_OTHER = {"upper": "lower", "lower": "upper"}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def half_mask(renderer: Any, half: str, *, identity: Any, size: int, level: float = 0.5) -> np.ndarray:
    """``size`` x ``size`` booleans: the pixels ``half`` moves more than the other half does, for this look."""
    if half not in FACE_HALVES:
        raise ConfigError(f"half must be one of {sorted(FACE_HALVES)}, got {half!r}")
    neutral = pixels(renderer.render(FaceCoefficients(np.zeros(NUM_CHANNELS)), identity=identity, size=size))

    def moved(names: tuple[str, ...]) -> np.ndarray:
        values = np.zeros(NUM_CHANNELS)
        values[[CHANNEL_INDEX[n] for n in names]] = 0.7
        return np.abs(pixels(renderer.render(FaceCoefficients(values), identity=identity, size=size)) - neutral).sum(
            -1
        )

    judged, other = moved(FACE_HALVES[half]), moved(FACE_HALVES[_OTHER[half]])
    return (judged > level) & (judged > other)


def half_boundary(renderer: Any, *, identity: Any, size: int) -> float:
    """The image row (fraction of the height from the top) between the upper and the lower face: halfway between
    the mean rows of the two half masks; 0.5 when the renderer moves no pixel for one of them."""
    upper, lower = (half_mask(renderer, h, identity=identity, size=size) for h in ("upper", "lower"))
    if not upper.any() or not lower.any():
        return 0.5
    rows_upper, rows_lower = np.nonzero(upper)[0].mean(), np.nonzero(lower)[0].mean()
    return round(float((rows_upper + rows_lower) / 2 / size), 3)
