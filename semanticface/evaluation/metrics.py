"""Coefficient regression metrics: MAE/RMSE overall, per region, per face half and per channel; Pearson per channel.

Pure numpy. Predictions that failed to parse (``None``) are counted. Two ways of scoring the cells a system did
not give (a parse failure, an omitted or unreadable channel, MediaPipe's tongueOut):

- with ``fill`` (what every evaluation report does): those cells are scored as if the system had predicted the
  ``fill`` face there — the training split's per-channel median, the best image-blind constant under MAE — so a
  system cannot score better by dropping a channel than the median baseline scores on it, and every system is
  scored on the same cells (all cells where the truth is present). The system's own-cells figure
  (``own_mask``) and the share of cells it gave (``coverage``) are reported beside it.
- without ``fill``: those cells are excluded from every average they would enter (the own-cells figure).

Channels missing in the truth are excluded either way.
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
    own_mask: ErrorStats | None = None  # the 52 blendshapes over the cells the system gave (no fill)
    coverage: float = math.nan  # share of truth-present blendshape cells the system gave
    spread_ratio: float = math.nan  # prediction spread across images relative to the truth's (prediction_spread)
    filled: bool = False  # whether missing cells were scored with a fill face

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
            "own_mask": (self.own_mask or self.overall).to_dict(),
            "coverage": json_float(self.coverage),
            "spread_ratio": json_float(self.spread_ratio),
            "missing_cells_filled": self.filled,
        }


def filled_matrix(predictions: Sequence[FaceCoefficients | None], fill: FaceCoefficients | None) -> np.ndarray:
    """``[N, 61]`` predictions with every missing cell (and every ``None`` row) replaced by ``fill``'s value
    (cells ``fill`` itself lacks stay NaN); without ``fill``, :func:`coefficient_matrix`."""
    matrix = coefficient_matrix(predictions)
    if fill is None:
        return matrix
    reference = np.where([name in fill.missing for name in CHANNELS], np.nan, fill.values)
    return np.where(np.isfinite(matrix), matrix, reference[None, :])


def error_matrix(
    predictions: Sequence[FaceCoefficients | None],
    truths: Sequence[FaceCoefficients],
    *,
    fill: FaceCoefficients | None = None,
) -> np.ndarray:
    """``[N, 61]`` absolute errors as :func:`coefficient_metrics` scores them (NaN where a cell is not scored)."""
    if len(predictions) != len(truths):
        raise SemanticFaceError(f"{len(predictions)} predictions for {len(truths)} ground-truth samples")
    return np.abs(filled_matrix(predictions, fill) - coefficient_matrix(truths))


def per_image_mae(errors: np.ndarray) -> np.ndarray:
    """Each row's mean absolute error over its finite cells of an ``[N, C]`` error matrix (signed or absolute);
    NaN for a row with no finite cell."""
    matrix = np.abs(np.asarray(errors, dtype=float))
    counts = np.isfinite(matrix).sum(axis=1)
    sums = np.where(np.isfinite(matrix), matrix, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(matrix), np.nan), where=counts > 0)


def channel_mae(prediction: FaceCoefficients, truth: FaceCoefficients, channels: Sequence[str]) -> float:
    """Mean absolute error of one prediction over ``channels``, skipping channels missing from either side; NaN
    when none is left."""
    index = [CHANNEL_INDEX[c] for c in channels if c not in truth.missing and c not in prediction.missing]
    if not index:
        return math.nan
    return ErrorStats.of(prediction.values[index] - truth.values[index]).mae


def prediction_spread(predictions: np.ndarray, truths: np.ndarray) -> float:
    """Mean per-channel standard deviation of predictions across images, divided by the truth's, over the
    blendshapes that vary in the truth. Near 0: the predictions hardly depend on the image; NaN: undefined."""
    pred, truth = predictions[:, :NUM_BLENDSHAPES], truths[:, :NUM_BLENDSHAPES]
    pred_std, truth_std = [], []
    for c in range(NUM_BLENDSHAPES):
        t = truth[np.isfinite(truth[:, c]), c]
        if t.size < 2 or float(t.std()) <= 1e-12:
            continue
        p = pred[np.isfinite(pred[:, c]), c]
        truth_std.append(float(t.std()))
        pred_std.append(float(p.std()) if p.size >= 2 else 0.0)
    if not truth_std:
        return math.nan
    return float(np.mean(pred_std) / np.mean(truth_std))


def coefficient_metrics(
    predictions: Sequence[FaceCoefficients | None],
    truths: Sequence[FaceCoefficients],
    *,
    fill: FaceCoefficients | None = None,
) -> CoefficientMetrics:
    """Score predictions (``None`` = parse failure) against ground truth, sample by sample.

    ``fill``: the face scored in place of every cell the system did not give (see the module docstring); None
    excludes those cells instead.
    """
    if len(predictions) != len(truths):
        raise SemanticFaceError(f"{len(predictions)} predictions for {len(truths)} ground-truth samples")
    own, truth = coefficient_matrix(predictions), coefficient_matrix(truths)
    pred = filled_matrix(predictions, fill)
    failures = sum(p is None for p in predictions)
    diff = pred - truth  # NaN wherever the truth is missing or the cell is neither given nor filled
    channels = {name: ErrorStats.of(diff[:, CHANNEL_INDEX[name]]) for name in CHANNELS}
    # Pose channels that neither side ever provides are dropped rather than reported as NaN rows.
    channels = {n: s for n, s in channels.items() if s.count or CHANNEL_INDEX[n] < NUM_BLENDSHAPES}
    regions = {}
    for region in REGIONS + POSE_REGIONS:
        stats = ErrorStats.of(diff[:, [CHANNEL_INDEX[n] for n in REGION_CHANNELS[region]]])
        if stats.count or region in REGIONS:
            regions[region] = stats
    halves = {half: ErrorStats.of(diff[:, [CHANNEL_INDEX[n] for n in names]]) for half, names in FACE_HALVES.items()}
    # Without a fill, parse failures do not enter correlations; with one they are scored like every other cell.
    rows = np.array([fill is not None or p is not None for p in predictions], dtype=bool)
    correlations = {n: pearson(pred[rows, CHANNEL_INDEX[n]], truth[rows, CHANNEL_INDEX[n]]) for n in channels}
    defined = [v for n, v in correlations.items() if n in BLENDSHAPES and not math.isnan(v)]
    own_diff = (own - truth)[:, :NUM_BLENDSHAPES]
    truth_cells = int(np.isfinite(truth[:, :NUM_BLENDSHAPES]).sum())
    return CoefficientMetrics(
        num_samples=len(truths),
        num_parse_failures=failures,
        overall=ErrorStats.of(diff[:, :NUM_BLENDSHAPES]),
        regions=regions,
        halves=halves,
        channels=channels,
        pearson=correlations,
        mean_pearson=float(np.mean(defined)) if defined else math.nan,
        own_mask=ErrorStats.of(own_diff),
        coverage=int(np.isfinite(own_diff).sum()) / truth_cells if truth_cells else math.nan,
        spread_ratio=prediction_spread(pred, truth),
        filled=fill is not None,
    )


def json_float(value: float) -> float | None:
    """JSON has no NaN; an undefined figure is written as null."""
    return None if value is None or not math.isfinite(value) else float(value)
