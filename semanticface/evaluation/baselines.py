"""Reference predictors a trained model must beat: the train-set per-channel median and mean, the neutral face,
and MediaPipe.

Every baseline maps a list of images to a list of :class:`FaceCoefficients` (``None`` where it found no face),
the same shape of result the model's predictions are scored in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.evaluation.metrics import coefficient_matrix
from semanticface.schema import CHANNELS


class Baseline(Protocol):
    name: str
    constant: bool  # predicts the same face for every image (so a spread warning would be meaningless)

    def predict(self, images: Sequence[Any]) -> list[FaceCoefficients | None]: ...


class NeutralBaseline:
    """Predicts the rest face (all zeros) for every image: what a model that learned nothing scores."""

    name = "neutral"
    constant = True

    def predict(self, images: Sequence[Any]) -> list[FaceCoefficients | None]:
        return [FaceCoefficients.neutral() for _ in images]


def _constant_face(train: Sequence[FaceCoefficients], reduce: Any, what: str) -> FaceCoefficients:
    """Per-channel ``reduce`` (nanmean, nanmedian) of the training faces; channels no sample gives stay missing."""
    if not train:
        raise DatasetError(f"the {what} baseline needs at least one training sample")
    matrix = coefficient_matrix(train)
    present = np.isfinite(matrix).any(axis=0)
    # Channels no training sample provides stay missing (e.g. tongueOut in MediaPipe-labelled data).
    values = np.where(present, reduce(np.where(present, matrix, 0.0), axis=0), 0.0)
    missing = frozenset(name for name, ok in zip(CHANNELS, present) if not ok)
    return FaceCoefficients(values, missing)


class ConstantMeanBaseline:
    """Predicts the per-channel mean of the training set for every image: the best image-blind guess under MSE."""

    name = "constant_mean"
    constant = True

    def __init__(self, mean: FaceCoefficients) -> None:
        self.mean = mean

    @classmethod
    def fit(cls, train: Sequence[FaceCoefficients]) -> ConstantMeanBaseline:
        return cls(_constant_face(train, np.nanmean, "constant-mean"))

    def predict(self, images: Sequence[Any]) -> list[FaceCoefficients | None]:
        return [self.mean for _ in images]


class MedianBaseline:
    """Predicts the per-channel median of the training set for every image: the best image-blind guess under MAE,
    so the constant a model's MAE must beat. Evaluation reports also score every system's missing cells with it."""

    name = "median"
    constant = True

    def __init__(self, median: FaceCoefficients) -> None:
        self.median = median

    @classmethod
    def fit(cls, train: Sequence[FaceCoefficients]) -> MedianBaseline:
        return cls(_constant_face(train, np.nanmedian, "median"))

    def predict(self, images: Sequence[Any]) -> list[FaceCoefficients | None]:
        return [self.median for _ in images]


class MediaPipeBaseline:
    """MediaPipe Face Landmarker's 52 blendshape scores (no tongueOut, no pose: those are scored as missing).

    Needs ``pip install mediapipe`` and the ``face_landmarker.task`` model file, which MediaPipe does not ship.
    """

    name = "mediapipe"
    constant = False

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ConfigError(f"MediaPipe model file not found: {self.model_path}")

    def predict(self, images: Sequence[Any]) -> list[FaceCoefficients | None]:
        from semanticface.pseudolabel import MediaPipeLabeler  # optional dependency, imported on use

        with MediaPipeLabeler(self.model_path) as labeler:
            return [labeler.label(image) for image in images]
