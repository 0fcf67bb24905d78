"""A simulated capture-software pseudo-labeller with a known, documented bias.

Real capture software (Live Link Face on an iPhone, MediaPipe on a webcam) reads faces informatively but wrongly,
and a model distilled on its labels inherits the errors; the preference stage exists to undo them. This labeller
turns true coefficients into such labels, deterministically per image key, so a benchmark knows exactly which bias
DPO has to remove. For each blendshape ``c`` with true value ``x``::

    x' = (1 - crosstalk) * x + crosstalk * x[mirror(c)]        left/right cross-talk (paired channels only)
    y  = clip(gain[c] * x' + offset[c] + N(0, noise), 0, 1)    gain, resting offset, noise
    y  = 0                                                      for dead channels

Pose channels pass through unchanged. The default bias (:func:`capture_bias`) was set from what the shared data
show (``../shared/data/llf``: per-channel medians and 10th percentiles of each take, measured 2026-12-02) and from
MediaPipe's scores on ICT-FaceKit renders (``NOTES-stack.md``; ``recipes/benchmarks/pseudolabel.py``):

- eyeWide rests high: medians 0.39 (alexdjulin S07-001) and 0.33 (apfel) in takes of a mostly resting face
  (the issue quotes ≈ 0.48 for one set) -> offset +0.35, gain 0.8.
- noseSneer never relaxes in the JMTechArt take (10th percentile 0.17-0.18, median 0.25) -> offset +0.2.
- browDown rests at 0.29 (10th percentile) / 0.46 (median) there, and MediaPipe scores a neutral render's
  browDown ~0.35 -> offset +0.3.
- eyeSquint: MediaPipe scores a neutral render ~0.6 -> offset +0.3 (half of it: the rest is the render's shading).
- mouthStretch rests at 0.13-0.19 (10th percentile) in every alexdjulin take -> offset +0.15.
- cheekPuff and tongueOut are dead: cheekPuff peaks at 0.02-0.06 in three of five takes, and MediaPipe has no
  tongueOut at all.
- smiles and jaw under-read (gain 0.6 and 0.75): MediaPipe's MAE on renders (0.082) sits close to a neutral
  face's (0.089), i.e. it under-reads strong expressions.
- cross-talk 0.3: a capture's left and right channels move together (the takes' L/R correlations are > 0.9).
- noise 0.02 per channel and image.

It is "informative but wrong": on faces drawn like real captures (``llf`` frames, ``prototype`` expressions) its
MAE against the truth is well above zero and below the per-channel-median constant's (llf draws, measured:
0.065 vs 0.074 over 300 frames; prototype 0.064 vs 0.070; tests check both). On ``sparse`` draws, which rest on most channels, the resting offsets make it
worse than a constant: use it with expression sources that look like captures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX, NUM_BLENDSHAPES


def mirror(name: str) -> str | None:
    """The other side's channel of a left/right pair (``eyeBlinkLeft`` -> ``eyeBlinkRight``), else None."""
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if name.endswith(a) and name[: -len(a)] + b in CHANNEL_INDEX:
            return name[: -len(a)] + b
    return None


def _both(stem: str, value: float) -> dict[str, float]:
    return {f"{stem}Left": value, f"{stem}Right": value}


@dataclass(frozen=True)
class LabellerBias:
    """Per-channel gain and resting offset (channels not named: gain 1, offset 0), dead channels, cross-talk, noise."""

    gain: Mapping[str, float] = field(default_factory=dict)
    offset: Mapping[str, float] = field(default_factory=dict)
    dead: tuple[str, ...] = ()
    crosstalk: float = 0.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        for where, names in (("gain", self.gain), ("offset", self.offset), ("dead", self.dead)):
            for name in names:
                if name not in BLENDSHAPES:
                    raise ConfigError(f"labeller bias {where}: {name!r} is not a blendshape")
        if not 0 <= self.crosstalk < 0.5:
            raise ConfigError(f"crosstalk must be in [0, 0.5), got {self.crosstalk}")
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")
        if any(g < 0 for g in self.gain.values()):
            raise ConfigError("gains must be >= 0")

    @property
    def biased_channels(self) -> tuple[str, ...]:
        """Channels with a gain other than 1, an offset, or dead (the channels a benchmark reports apart)."""
        named = {n for n, g in self.gain.items() if g != 1} | {n for n, o in self.offset.items() if o} | set(self.dead)
        return tuple(n for n in BLENDSHAPES if n in named)


def capture_bias() -> LabellerBias:
    """The documented default bias (see the module docstring for where each number comes from)."""
    return LabellerBias(
        gain={
            **_both("eyeWide", 0.8),
            **_both("mouthSmile", 0.6),
            "jawOpen": 0.75,
        },
        offset={
            **_both("eyeWide", 0.35),
            **_both("noseSneer", 0.2),
            **_both("browDown", 0.3),
            **_both("eyeSquint", 0.3),
            **_both("mouthStretch", 0.15),
        },
        dead=("cheekPuff", "tongueOut"),
        crosstalk=0.3,
        noise=0.02,
    )


class SimulatedCaptureLabeller:
    """Biased labels of true coefficients; the same key always gets the same noise."""

    def __init__(self, bias: LabellerBias | None = None, *, seed: int = 0) -> None:
        self.bias = bias or capture_bias()
        self.seed = seed
        n = NUM_BLENDSHAPES
        self._gain = np.array([self.bias.gain.get(c, 1.0) for c in BLENDSHAPES])
        self._offset = np.array([self.bias.offset.get(c, 0.0) for c in BLENDSHAPES])
        self._dead = np.array([c in self.bias.dead for c in BLENDSHAPES])
        self._mirror = np.array([CHANNEL_INDEX[mirror(c) or c] for c in BLENDSHAPES])
        self._paired = self._mirror != np.arange(n)

    def _rng(self, key: str | int) -> np.random.Generator:
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def label(self, truth: FaceCoefficients, key: str | int) -> FaceCoefficients:
        """The capture software's reading of a face whose true coefficients are ``truth``; missing stays missing."""
        values = np.nan_to_num(truth.values.astype(float).copy())
        x = values[:NUM_BLENDSHAPES]
        c = self.bias.crosstalk
        mixed = np.where(self._paired, (1 - c) * x + c * x[self._mirror], x)
        noisy = self._gain * mixed + self._offset + self._rng(key).normal(0.0, self.bias.noise, NUM_BLENDSHAPES)
        values[:NUM_BLENDSHAPES] = np.where(self._dead, 0.0, np.clip(noisy, 0.0, 1.0))
        return FaceCoefficients(values, truth.missing)
