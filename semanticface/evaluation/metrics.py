"""Coefficient regression metrics: MAE/RMSE overall, per region, per face half and per channel; Pearson per channel.

Pure numpy. Predictions that failed to parse (``None``) are counted, not scored: scoring them as zeros would
mix a formatting failure into the accuracy figures. Channels missing on either side (e.g. tongueOut from MediaPipe)
are excluded from every average they would enter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import SemanticFaceError
from semanticface.schema import (
    BLENDSHAPES,
    CHANNEL_INDEX,
    CHANNELS,
    FACE_HALVES,
    NUM_BLENDSHAPES,
    POSE_REGIONS,
    REGION_CHANNELS,
    REGIONS,
)


def coefficient_matrix(items: Sequence[FaceCoefficients | None]) -> np.ndarray:
    """``[N, 61]`` float array; missing channels and ``None`` rows are NaN."""
    out = np.full((len(items), len(CHANNELS)), np.nan)
    for i, item in enumerate(items):
        if item is not None:
            out[i] = item.values  # missing channels are already NaN in FaceCoefficients.values
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays over positions finite in both; NaN when undefined.

    Undefined means fewer than two points or a constant side (a channel that never fires in the test set), which is
    common and must not crash an evaluation or print a numpy warning.
    """
    mask = np.isfinite(x) & np.isfinite(y)
    if mask.sum() < 2:
        return math.nan
    a, b = x[mask] - x[mask].mean(), y[mask] - y[mask].mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if denom <= 1e-12:
        return math.nan
    return float(np.clip((a * b).sum() / denom, -1.0, 1.0))


@dataclass
class ErrorStats:
    """Mean absolute and root-mean-square error over a set of (sample, channel) cells, and how many cells."""

    mae: float
    rmse: float
    count: int

    @classmethod
    def of(cls, diff: np.ndarray) -> ErrorStats:
        values = diff[np.isfinite(diff)]
        if values.size == 0:
            return cls(math.nan, math.nan, 0)
        return cls(float(np.abs(values).mean()), float(np.sqrt((values**2).mean())), int(values.size))

    def to_dict(self) -> dict[str, Any]:
        return {"mae": json_float(self.mae), "rmse": json_float(self.rmse), "count": self.count}


@dataclass
class CoefficientMetrics:
    """Everything :func:`coefficient_metrics` measures. ``overall`` covers the 52 blendshapes; pose channels are
    reported under the ``head``/``gaze`` regions only, because most sources do not provide them."""

    num_samples: int
    num_parse_failures: int
    overall: ErrorStats
    regions: dict[str, ErrorStats]
    halves: dict[str, ErrorStats]
    channels: dict[str, ErrorStats]
    pearson: dict[str, float]
    mean_pearson: float = field(default=math.nan)

    @property
    def parse_failure_rate(self) -> float:
        return self.num_parse_failures / self.num_samples if self.num_samples else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "num_parse_failures": self.num_parse_failures,
            "parse_failure_rate": json_float(self.parse_failure_rate),
            "overall": self.overall.to_dict(),
            "regions": {k: v.to_dict() for k, v in self.regions.items()},
            "halves": {k: v.to_dict() for k, v in self.halves.items()},
            "channels": {k: v.to_dict() for k, v in self.channels.items()},
            "pearson": {k: json_float(v) for k, v in self.pearson.items()},
            "mean_pearson": json_float(self.mean_pearson),
        }


def coefficient_metrics(
    predictions: Sequence[FaceCoefficients | None], truths: Sequence[FaceCoefficients]
) -> CoefficientMetrics:
    """Score predictions (``None`` = parse failure) against ground truth, sample by sample."""
    if len(predictions) != len(truths):
        raise SemanticFaceError(f"{len(predictions)} predictions for {len(truths)} ground-truth samples")
    pred, truth = coefficient_matrix(predictions), coefficient_matrix(truths)
    failures = sum(p is None for p in predictions)
    diff = pred - truth  # NaN wherever either side is missing or the prediction failed
    channels = {name: ErrorStats.of(diff[:, CHANNEL_INDEX[name]]) for name in CHANNELS}
    # Pose channels that neither side ever provides are dropped rather than reported as NaN rows.
    channels = {n: s for n, s in channels.items() if s.count or CHANNEL_INDEX[n] < NUM_BLENDSHAPES}
    regions = {}
    for region in REGIONS + POSE_REGIONS:
        stats = ErrorStats.of(diff[:, [CHANNEL_INDEX[n] for n in REGION_CHANNELS[region]]])
        if stats.count or region in REGIONS:
            regions[region] = stats
    halves = {half: ErrorStats.of(diff[:, [CHANNEL_INDEX[n] for n in names]]) for half, names in FACE_HALVES.items()}
    ok = np.array([p is not None for p in predictions], dtype=bool)
    correlations = {n: pearson(pred[ok, CHANNEL_INDEX[n]], truth[ok, CHANNEL_INDEX[n]]) for n in channels}
    defined = [v for n, v in correlations.items() if n in BLENDSHAPES and not math.isnan(v)]
    return CoefficientMetrics(
        num_samples=len(truths),
        num_parse_failures=failures,
        overall=ErrorStats.of(diff[:, :NUM_BLENDSHAPES]),
        regions=regions,
        halves=halves,
        channels=channels,
        pearson=correlations,
        mean_pearson=float(np.mean(defined)) if defined else math.nan,
    )


def json_float(value: float) -> float | None:
    """JSON has no NaN; an undefined figure is written as null."""
    return None if value is None or not math.isfinite(value) else float(value)
