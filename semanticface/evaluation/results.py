"""The result of scoring one system (a model or a baseline) on an evaluation set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.evaluation.metrics import CoefficientMetrics, json_float


@dataclass
class SystemResult:
    """Predictions of one system and every figure measured on them.

    ``extra`` holds the figures that only some systems have (description consistency, output tokens, seconds per
    image, rendered-image distance); an absent figure is left out rather than written as zero. ``errors`` holds the
    ``[N, 61]`` absolute errors exactly as the headline figures scored them (NaN where a cell was not scored), for
    per-image comparisons; ``warnings`` what a reader must be told about this system (e.g. that it ignores the
    image).
    """

    name: str
    predictions: list[FaceCoefficients | None]
    metrics: CoefficientMetrics
    extra: dict[str, float] = field(default_factory=dict)
    errors: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    constant: bool = False  # a constant baseline (the same face for every image)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.metrics.to_dict(), **{k: json_float(v) for k, v in self.extra.items()}}
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data
