"""Neutral calibration: remove a person's (or a tracker's) rest offset per blendshape, as capture apps do.

A face at rest rarely reads as all zeros: one shared Live Link Face capture rests with eyeWide ≈ 0.48, another
carries a constant noseSneer. Calibration takes a rest value ``r`` per blendshape and maps ``v`` to
``(v - r) / (1 - r)`` clipped to [0, 1], so the rest pose reads 0 and a full movement still reaches 1 (Live Link
Face's own calibration does the same). The rest values come from

* a chosen neutral frame (:meth:`NeutralCalibration.from_frame`; ``--neutral-frame N``),
* a neutral image, predicted first (``--neutral-image``; the same call on its prediction), or
* the recording itself (:meth:`NeutralCalibration.from_recording`, ``--neutral auto``): a low percentile per
  channel, since every channel of a take spends some time at rest.

Only the 52 blendshapes are calibrated; head and eye pose channels are left as they are. A channel whose rest
value is at or above ``max_rest`` (default 0.95) cannot be rescaled meaningfully and is left as it is (reported in
:attr:`NeutralCalibration.skipped`). Missing channels stay missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.schema import BLENDSHAPES, NUM_BLENDSHAPES, NUM_CHANNELS

DEFAULT_PERCENTILE = 5.0
MAX_REST = 0.95
NEUTRAL_MODES = ("none", "auto")


@dataclass(frozen=True)
class NeutralCalibration:
    """Rest value per blendshape (52, canonical order; 0 = no offset) and how it was obtained."""

    rest: np.ndarray
    source: str = "given"
    skipped: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        rest = np.asarray(self.rest, dtype=np.float64)
        if rest.shape != (NUM_BLENDSHAPES,):
            raise ConfigError(f"a neutral calibration has {NUM_BLENDSHAPES} rest values, got shape {rest.shape}")
        bad = [BLENDSHAPES[i] for i in np.flatnonzero(~np.isfinite(rest) | (rest < 0) | (rest > 1))]
        if bad:
            raise ConfigError(f"rest values must be in [0, 1]; not so for {', '.join(bad)}")
        object.__setattr__(self, "rest", rest)

    @classmethod
    def from_frame(cls, neutral: FaceCoefficients, *, source: str = "neutral frame", max_rest: float = MAX_REST):
        """Rest values read off one neutral face (its missing channels get no offset)."""
        rest = np.nan_to_num(neutral.blendshapes, nan=0.0)  # missing channels are NaN: no offset
        return cls._checked(rest, source, max_rest)

    @classmethod
    def from_recording(
        cls,
        values: np.ndarray,
        *,
        percentile: float = DEFAULT_PERCENTILE,
        source: str | None = None,
        max_rest: float = MAX_REST,
    ) -> NeutralCalibration:
        """Rest values as the ``percentile``-th percentile of each blendshape over a (N, 52 or 61) recording.

        Rows that are all missing (tracking lost) are ignored; a channel never observed gets no offset.
        """
        if not 0 <= percentile <= 100 or math.isnan(percentile):
            raise ConfigError(f"percentile must be in [0, 100], got {percentile}")
        series = np.asarray(values, dtype=np.float64)
        if series.ndim != 2 or series.shape[1] not in (NUM_BLENDSHAPES, NUM_CHANNELS):
            raise ConfigError(f"expected an (N, {NUM_BLENDSHAPES}) or (N, {NUM_CHANNELS}) array, got {series.shape}")
        series = series[:, :NUM_BLENDSHAPES]
        observed = ~np.isnan(series).all(axis=0)
        rest = np.zeros(NUM_BLENDSHAPES)
        if observed.any():
            rest[observed] = np.nanpercentile(series[:, observed], percentile, axis=0)
        return cls._checked(rest, source or f"{percentile:g}th percentile of {len(series)} frames", max_rest)

    @classmethod
    def _checked(cls, rest: np.ndarray, source: str, max_rest: float) -> NeutralCalibration:
        rest = np.clip(rest, 0.0, 1.0)
        high = rest >= max_rest
        skipped = tuple(BLENDSHAPES[i] for i in np.flatnonzero(high))
        return cls(np.where(high, 0.0, rest), source, skipped)

    def offsets(self) -> dict[str, float]:
        """``{blendshape: rest value}`` for the channels with a non-zero offset."""
        return {BLENDSHAPES[i]: float(v) for i, v in enumerate(self.rest) if v > 0}

    def apply_array(self, values: np.ndarray) -> np.ndarray:
        """Calibrate an (..., 52 or 61) array; NaN stays NaN, pose columns are unchanged."""
        out = np.array(values, dtype=np.float64, copy=True)
        shapes = out[..., :NUM_BLENDSHAPES]
        out[..., :NUM_BLENDSHAPES] = np.clip((shapes - self.rest) / (1.0 - self.rest), 0.0, 1.0)
        out[..., :NUM_BLENDSHAPES][np.isnan(shapes)] = np.nan
        return out

    def apply(self, coefficients: FaceCoefficients) -> FaceCoefficients:
        """The calibrated frame (missing channels stay missing)."""
        return FaceCoefficients(self.apply_array(coefficients.values), coefficients.missing)
