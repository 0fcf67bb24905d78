"""The result of scoring one system (a model or a baseline) on an evaluation set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semanticface.coefficients import FaceCoefficients
from semanticface.evaluation.metrics import CoefficientMetrics, json_float


@dataclass
class SystemResult:
    """Predictions of one system and every figure measured on them.

    ``extra`` holds the figures that only some systems have (description consistency, output tokens, seconds per
    image, rendered-image distance); an absent figure is left out rather than written as zero.
    """

    name: str
    predictions: list[FaceCoefficients | None]
    metrics: CoefficientMetrics
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics.to_dict(), **{k: json_float(v) for k, v in self.extra.items()}}
