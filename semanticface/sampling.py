"""Expression sampling: realistic coefficient vectors from real captures, plus uniform and sparse coverage.

* ``llf``: frames of Live Link Face recordings (read with :func:`semanticface.llf.read_llf`), optionally blended
  pairwise (``mix_probability``) and jittered (``jitter``); Live Link Face does not record head rotation, so a
  random head pose (``head_pose``) is added.
* ``uniform``: every blendshape uniform in [0, 1] (stress coverage; faces look extreme).
* ``sparse``: a few random blendshapes active (``min_active``..``max_active``), the rest at rest, as isolated
  action units appear in FACS data sets; each active value is uniform in [0.2, 1].
* ``prototype``: whole expressions, as faces make them: one of the six basic emotions' EMFACS action units
  (:data:`semanticface.semantics.PROTOTYPES`, required and supporting AUs) or a neutral face, at a random intensity,
  with slight left/right asymmetry, plus blinks, gaze, speech-like jaw opening and a little noise on every channel.
  Needs no files; channels are correlated as in real captures, so it stands in for them where they are absent.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.schema import CHANNEL_INDEX, FACS_TO_ARKIT, NUM_BLENDSHAPES, NUM_CHANNELS

SOURCES = ("llf", "uniform", "sparse", "prototype")


@dataclass
class SamplingConfig:
    """How expression vectors are drawn."""

    source: str = field(default="sparse", metadata={"help": "Where vectors come from: llf, uniform or sparse."})
    recordings: tuple[str, ...] = field(
        default=(), metadata={"help": "Live Link Face CSV paths or glob patterns (source=llf)."}
    )
    mix_probability: float = field(
        default=0.3, metadata={"help": "Chance that an llf sample blends two random frames (0 disables)."}
    )
    jitter: float = field(
        default=0.02, metadata={"help": "Std of Gaussian noise added to llf blendshapes (clipped to [0, 1])."}
    )
    head_pose: float = field(
        default=0.3, metadata={"help": "Head yaw/pitch/roll drawn uniformly in [-head_pose, head_pose] (0 = none)."}
    )
    min_active: int = field(default=1, metadata={"help": "Fewest active blendshapes in a sparse sample."})
    max_active: int = field(default=6, metadata={"help": "Most active blendshapes in a sparse sample."})
    neutral_fraction: float = field(
        default=0.03, metadata={"help": "Fraction of uniform/sparse samples left at rest (pose still applies)."}
    )

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"unknown sampling source {self.source!r} (choose from {', '.join(SOURCES)})")
        if not 0 <= self.mix_probability <= 1 or not 0 <= self.neutral_fraction <= 1:
            raise ConfigError("mix_probability and neutral_fraction must be in [0, 1]")
        if self.jitter < 0 or not 0 <= self.head_pose <= 1:
            raise ConfigError("jitter must be >= 0 and head_pose in [0, 1]")
        if not 1 <= self.min_active <= self.max_active <= NUM_BLENDSHAPES:
            raise ConfigError(f"need 1 <= min_active <= max_active <= {NUM_BLENDSHAPES}")
        if self.source == "llf" and not self.recordings:
            raise ConfigError("source=llf needs recordings (CSV paths or glob patterns)")
        self.recordings = tuple(str(r) for r in self.recordings)


class Sample(NamedTuple):
    coefficients: FaceCoefficients
    source: str  # "uniform", "sparse", "llf:<file>#<frame>" or "llf-mix:<file>#<frame>+<file>#<frame>"


class FramePool:
    """Valid frames of some Live Link Face recordings, as one (N, 61) array, with where each frame came from."""

    def __init__(self, values: np.ndarray, origins: list[str], takes: np.ndarray, frames: np.ndarray) -> None:
        self.values = values
        self.origins = origins  # file name of each recording
        self.takes = takes  # (N,) index into ``origins`` of each row
        self.frames = frames  # (N,) position of each row among its recording's usable frames

    @classmethod
    def from_patterns(cls, patterns: tuple[str, ...] | list[str]) -> FramePool:
        from semanticface.llf import read_llf  # the foundation's reader knows the format's quirks

        paths: list[Path] = []
        for pattern in patterns:
            matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            if not matches:
                raise DatasetError(f"no Live Link Face CSV matches {pattern!r}")
            paths += [Path(m) for m in matches]
        if not paths:
            raise DatasetError("no Live Link Face recordings given")
        arrays: list[np.ndarray] = []
        origins: list[str] = []
        takes: list[np.ndarray] = []
        frames: list[np.ndarray] = []
        for path in paths:
            if not path.is_file():
                raise DatasetError(f"{path}: Live Link Face CSV not found")
            recording = read_llf(path)  # lost-tracking rows are skipped, never zero-filled
            values = np.asarray(recording.values, dtype=np.float64)
            values = values[np.isfinite(values).all(axis=1)]
            if len(values) == 0:
                raise DatasetError(f"{path}: no usable frames")
            arrays.append(values)
            takes.append(np.full(len(values), len(origins)))
            frames.append(np.arange(len(values)))
            origins.append(path.name)
        return cls(np.concatenate(arrays), origins, np.concatenate(takes), np.concatenate(frames))

    def __len__(self) -> int:
        return len(self.values)

    def select(self, rows: np.ndarray) -> FramePool:
        """The pool restricted to ``rows`` (same recordings list)."""
        rows = np.asarray(rows, dtype=np.int64)
        return FramePool(self.values[rows], self.origins, self.takes[rows], self.frames[rows])

    def origin(self, row: int) -> str:
        return self.origins[int(self.takes[row])]

    def label(self, row: int) -> str:
        """``<file name>#<frame>``: the recorded frame a sample came from."""
        return f"{self.origin(row)}#{int(self.frames[row])}"


class ExpressionSampler:
    """Draws :class:`Sample` s according to a :class:`SamplingConfig`; same seed, same samples."""

    def __init__(self, config: SamplingConfig, seed: int | Sequence[int] = 0, pool: FramePool | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.pool = pool
        if config.source == "llf" and pool is None:
            self.pool = FramePool.from_patterns(config.recordings)

    def draw(self, n: int) -> list[Sample]:
        return [self.draw_one() for _ in range(n)]

    def draw_one(self) -> Sample:
        cfg, rng = self.config, self.rng
        values = np.zeros(NUM_CHANNELS)
        if cfg.source == "uniform":
            source = "uniform"
            if rng.random() >= cfg.neutral_fraction:
                values[:NUM_BLENDSHAPES] = rng.random(NUM_BLENDSHAPES)
        elif cfg.source == "prototype":
            source = "prototype"
            values[:NUM_BLENDSHAPES] = _prototype_face(rng, cfg.jitter)
        elif cfg.source == "sparse":
            source = "sparse"
            if rng.random() >= cfg.neutral_fraction:
                k = int(rng.integers(cfg.min_active, cfg.max_active + 1))
                active = rng.choice(NUM_BLENDSHAPES, size=k, replace=False)
                values[active] = rng.uniform(0.2, 1.0, size=k)
        else:
            assert self.pool is not None
            row = int(rng.integers(len(self.pool)))
            values[:] = self.pool.values[row]
            source = f"llf:{self.pool.label(row)}"
            if rng.random() < cfg.mix_probability:
                other_row = int(rng.integers(len(self.pool)))
                a = rng.random()
                values[:] = a * values + (1 - a) * self.pool.values[other_row]
                source = f"llf-mix:{self.pool.label(row)}+{self.pool.label(other_row)}"
            if cfg.jitter > 0:
                values[:NUM_BLENDSHAPES] += rng.normal(0, cfg.jitter, NUM_BLENDSHAPES)
        if cfg.head_pose > 0:
            values[NUM_BLENDSHAPES : NUM_BLENDSHAPES + 3] += rng.uniform(-cfg.head_pose, cfg.head_pose, 3)
        values[:NUM_BLENDSHAPES] = np.clip(values[:NUM_BLENDSHAPES], 0.0, 1.0)
        values[NUM_BLENDSHAPES:] = np.clip(values[NUM_BLENDSHAPES:], -1.0, 1.0)
        return Sample(FaceCoefficients(values), source)


def _prototype_face(rng: np.random.Generator, noise: float) -> np.ndarray:
    """One ``prototype`` expression (see the module docstring): 52 blendshape values in [0, 1]."""
    from semanticface.semantics import PROTOTYPES

    values = np.zeros(NUM_BLENDSHAPES)
    choice = int(rng.integers(len(PROTOTYPES) + 1))  # the last choice is a neutral face
    if choice < len(PROTOTYPES):
        proto = PROTOTYPES[choice]
        intensity = rng.uniform(0.35, 1.0)
        aus = [group[int(rng.integers(len(group)))] for group in proto.required]
        aus += [au for au in proto.support if rng.random() < 0.5 and au not in aus]
        for au in aus:
            for name in FACS_TO_ARKIT[au]:
                values[CHANNEL_INDEX[name]] = intensity * rng.uniform(0.75, 1.0)
    if rng.random() < 0.15:  # a blink
        values[[CHANNEL_INDEX["eyeBlinkLeft"], CHANNEL_INDEX["eyeBlinkRight"]]] = rng.uniform(0.6, 1.0)
    if rng.random() < 0.5:  # gaze: both eyes one way
        direction = ("Up", "Down", "In", "Out")[int(rng.integers(4))]
        other = {"In": "Out", "Out": "In"}.get(direction, direction)
        amount = rng.uniform(0.1, 0.7)
        values[CHANNEL_INDEX[f"eyeLook{direction}Left"]] = amount
        values[CHANNEL_INDEX[f"eyeLook{other}Right"]] = amount
    if rng.random() < 0.3:  # speech-like jaw opening
        values[CHANNEL_INDEX["jawOpen"]] = max(values[CHANNEL_INDEX["jawOpen"]], rng.uniform(0.1, 0.6))
    if noise > 0:
        values += np.abs(rng.normal(0, noise, NUM_BLENDSHAPES))
    return np.clip(values, 0.0, 1.0)


def sample_expressions(config: SamplingConfig, n: int, *, seed: int = 0) -> list[Sample]:
    """``n`` samples from a fresh sampler (convenience wrapper)."""
    return ExpressionSampler(config, seed).draw(n)
