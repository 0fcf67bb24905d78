"""Avatar identities: face shape, colouring and feature geometry drawn from a seed."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SKIN_TONES_RGB: tuple[tuple[int, int, int], ...] = (
    (246, 214, 190),
    (234, 192, 160),
    (214, 165, 125),
    (181, 130, 94),
    (140, 96, 66),
    (102, 68, 48),
)
HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (32, 24, 20),
    (70, 45, 30),
    (120, 80, 45),
    (190, 150, 90),
    (150, 60, 30),
    (140, 140, 140),
)
IRIS_COLOURS: tuple[tuple[int, int, int], ...] = ((70, 45, 25), (60, 100, 150), (70, 110, 70), (110, 80, 40))
HAIR_STYLES = ("short", "bob", "long", "buzz")


@dataclass(frozen=True)
class Identity:
    """Everything that makes one avatar look like a different person. Lengths are in face units (half the
    neutral face width is about 1)."""

    face_width: float = 0.95
    face_height: float = 1.3
    jaw_width: float = 0.72
    skin: tuple[int, int, int] = SKIN_TONES_RGB[1]
    hair: tuple[int, int, int] = HAIR_COLOURS[1]
    hair_style: str = "short"
    brow_thickness: float = 0.065
    brow_arch: float = 0.05
    brow_height: float = 0.4
    eye_spacing: float = 0.4
    eye_width: float = 0.2
    eye_height: float = 0.105
    iris: tuple[int, int, int] = IRIS_COLOURS[0]
    nose_width: float = 0.16
    nose_length: float = 0.42
    mouth_width: float = 0.34
    upper_lip: float = 0.06
    lower_lip: float = 0.085
    lip_colour: tuple[int, int, int] = (190, 95, 95)

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """A deterministic identity for ``seed`` (seed 0 is a fixed, average-looking face)."""
        return _identity_from_seed(int(seed))


@lru_cache(maxsize=4096)
def _identity_from_seed(seed: int) -> Identity:
    if seed == 0:
        return Identity()
    rng = np.random.default_rng(zlib.crc32(f"avatar-identity-{seed}".encode()))
    skin = np.array(SKIN_TONES_RGB[int(rng.integers(len(SKIN_TONES_RGB)))], float) * rng.uniform(0.95, 1.05, 3)
    skin_t = tuple(int(v) for v in np.clip(skin, 0, 255))
    lip = np.array(skin_t, float) * np.array([0.85, 0.52, 0.52]) + np.array([25, 5, 8])
    u = rng.uniform
    return Identity(
        face_width=u(0.86, 1.02),
        face_height=u(1.2, 1.38),
        jaw_width=u(0.58, 0.84),
        skin=skin_t,  # type: ignore[arg-type]
        hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        brow_thickness=u(0.045, 0.085),
        brow_arch=u(0.0, 0.09),
        brow_height=u(0.36, 0.44),
        eye_spacing=u(0.36, 0.44),
        eye_width=u(0.175, 0.22),
        eye_height=u(0.09, 0.125),
        iris=IRIS_COLOURS[int(rng.integers(len(IRIS_COLOURS)))],
        nose_width=u(0.13, 0.2),
        nose_length=u(0.36, 0.46),
        mouth_width=u(0.29, 0.38),
        upper_lip=u(0.045, 0.075),
        lower_lip=u(0.065, 0.11),
        lip_colour=tuple(int(v) for v in np.clip(lip, 0, 255)),  # type: ignore[arg-type]
    )
