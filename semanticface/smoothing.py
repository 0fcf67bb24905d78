"""Temporal smoothing of per-frame values with the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012).

The One-Euro filter is an exponential low-pass filter whose cutoff frequency rises with the signal's speed:
while a channel rests, a low cutoff (``min_cutoff`` Hz) removes frame-to-frame jitter; when it moves fast the cutoff
grows by ``beta`` × speed, so real motion is followed with little lag. ``d_cutoff`` (Hz) low-passes the speed
estimate itself. It is what face-tracking tools (MediaPipe, OpenSeeFace, VTube Studio) use for the same purpose.

Defaults (:data:`DEFAULT_MIN_CUTOFF`, :data:`DEFAULT_BETA`, :data:`DEFAULT_D_CUTOFF`) are for blendshape
coefficients in [0, 1] at 24–60 fps; ``semanticface predict`` applies them to video, never to still images
(``--smooth none|one-euro``, ``--smooth-min-cutoff``, ``--smooth-beta``). The README gives their measured effect.

Missing values (NaN) pass through as NaN and restart that channel's filter, and a frame where tracking was lost
(``None`` to :meth:`OneEuroFilter.reset`) restarts every channel: no value is smoothed across a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from semanticface.errors import ConfigError

DEFAULT_MIN_CUTOFF = 1.0
DEFAULT_BETA = 5.0
DEFAULT_D_CUTOFF = 1.0
SMOOTHING_METHODS = ("none", "one-euro")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """A One-Euro filter over a vector of channels; call :meth:`__call__` once per frame, in time order."""

    min_cutoff: float = DEFAULT_MIN_CUTOFF
    beta: float = DEFAULT_BETA
    d_cutoff: float = DEFAULT_D_CUTOFF
    _x: np.ndarray | None = field(default=None, init=False, repr=False)
    _dx: np.ndarray | None = field(default=None, init=False, repr=False)
    _t: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"One-Euro {name} must be a positive frequency in Hz, got {value}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ConfigError(f"One-Euro beta must be >= 0, got {self.beta}")

    def reset(self) -> None:
        """Forget the past (after a tracking-lost frame or a cut)."""
        self._x = self._dx = None
        self._t = None

    def __call__(self, values: np.ndarray, seconds: float) -> np.ndarray:
        """The filtered values of one frame at time ``seconds`` (NaN channels stay NaN and restart)."""
        x = np.asarray(values, dtype=np.float64)
        if self._x is None or self._t is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(seconds)
            return x.copy()
        dt = float(seconds) - self._t
        if not dt > 0:
            raise ConfigError(f"One-Euro filter needs increasing times, got {seconds} after {self._t}")
        self._t = float(seconds)
        fresh = np.isnan(self._x) & ~np.isnan(x)  # channels coming back after a missing value restart
        dx = (x - self._x) / dt
        dx_hat = self._dx + _alpha(self.d_cutoff, dt) * (np.nan_to_num(dx) - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        out = self._x + _alpha(cutoff, dt) * (x - self._x)
        out = np.where(fresh, x, out)
        dx_hat = np.where(fresh | np.isnan(x), 0.0, dx_hat)
        self._x, self._dx = out, dx_hat
        return out.copy()


def smooth_series(values: np.ndarray, seconds: np.ndarray, **parameters: float) -> np.ndarray:
    """One-Euro filter over an (N, C) series sampled at ``seconds``; rows that are all NaN are gaps (restart)."""
    series = np.asarray(values, dtype=np.float64)
    filt = OneEuroFilter(**parameters)
    out = np.full_like(series, np.nan)
    for i, row in enumerate(series):
        if np.isnan(row).all():
            filt.reset()
            continue
        out[i] = filt(row, float(seconds[i]))
    return out


def jitter(values: np.ndarray) -> float:
    """Mean absolute first difference over frames and channels (pairs touching a missing value are left out)."""
    series = np.asarray(values, dtype=np.float64)
    if len(series) < 2:
        return 0.0
    diffs = np.abs(np.diff(series, axis=0))
    return float(np.nanmean(diffs)) if np.isfinite(diffs).any() else 0.0


def step_lag(fps: float, *, threshold: float = 0.9, frames: int | None = None, **parameters: float) -> float:
    """Seconds the filter takes to reach ``threshold`` of a 0 → 1 step (the lag it adds to a sudden movement)."""
    n = frames or int(fps * 3) + 2
    seconds = np.arange(n) / fps
    step = np.zeros((n, 1))
    start = n // 3
    step[start:] = 1.0
    out = smooth_series(step, seconds, **parameters)[:, 0]
    reached = np.flatnonzero(out[start:] >= threshold)
    return float(reached[0] / fps) if reached.size else math.inf
