"""Score every system of an evaluation the same way: the model and its baselines on the same rows and cells.

Used by ``semanticface eval`` (:mod:`semanticface.evaluation.evaluate`) and by the training-time generation eval
(:mod:`semanticface.training.callbacks`), so the two report the same figures for the same predictions.

- Every system's missing cells (parse failures, omitted or unreadable channels) are scored as the training split's
  per-channel median (:class:`~semanticface.evaluation.baselines.MedianBaseline`): dropping a channel scores
  exactly like the median baseline on it, never better.
- A system whose predictions hardly vary across images gets a warning (:func:`spread_warning`).
- The system under test is compared with each baseline by a paired bootstrap over test images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import SemanticFaceError
from semanticface.evaluation.baselines import MedianBaseline
from semanticface.evaluation.metrics import coefficient_metrics, error_matrix, per_image_mae
from semanticface.evaluation.results import SystemResult
from semanticface.evaluation.stats import PerImageErrors, paired_bootstrap_ci, paired_errors
from semanticface.schema import BLENDSHAPES, NUM_BLENDSHAPES

SPREAD_WARNING_RATIO = 0.1  # predictions' mean per-channel std across images below 10% of the truth's


def reference_median(
    train_truths: Sequence[FaceCoefficients] | None, truths: Sequence[FaceCoefficients]
) -> MedianBaseline:
    """The median baseline fitted on the train split, else on the evaluated split itself (flagged in its name:
    a constant that has seen the test answers is optimistic)."""
    median = MedianBaseline.fit(list(train_truths) if train_truths else list(truths))
    if not train_truths:
        median.name = "median (eval split)"
    return median


def spread_warning(name: str, ratio: float) -> str | None:
    """The "model ignores the image" warning when ``ratio`` (see
    :func:`~semanticface.evaluation.metrics.prediction_spread`) is below :data:`SPREAD_WARNING_RATIO`."""
    if math.isnan(ratio) or ratio >= SPREAD_WARNING_RATIO:
        return None
    return (
        f"{name} ignores the image: its predictions hardly vary across images (mean per-channel std "
        f"{ratio:.1%} of the truth's, below {SPREAD_WARNING_RATIO:.0%}); it is close to a constant face"
    )


def score_system(
    name: str,
    predictions: Sequence[FaceCoefficients | None],
    truths: Sequence[FaceCoefficients],
    *,
    fill: FaceCoefficients,
    extra: dict[str, float] | None = None,
    constant: bool = False,
) -> SystemResult:
    """Metrics with missing cells scored as ``fill``, the per-cell errors behind them, and the spread warning
    (not for constant baselines, which are constant by design)."""
    metrics = coefficient_metrics(predictions, truths, fill=fill)
    warning = None if constant else spread_warning(name, metrics.spread_ratio)
    return SystemResult(
        name,
        list(predictions),
        metrics,
        dict(extra or {}),
        errors=error_matrix(predictions, truths, fill=fill),
        warnings=[warning] if warning else [],
        constant=constant,
    )


def score_baselines(
    baselines: Sequence[Any], images: Sequence[Any], truths: Sequence[FaceCoefficients], *, fill: FaceCoefficients
) -> list[SystemResult]:
    """Each baseline's predictions for ``images``, scored like the model."""
    return [
        score_system(b.name, b.predict(images), truths, fill=fill, constant=bool(getattr(b, "constant", False)))
        for b in baselines
    ]


def scored_rows(results: Sequence[SystemResult]) -> np.ndarray:
    """Boolean mask of the rows on which every system has at least one scored blendshape cell (all rows, unless
    a row's truth has no blendshape at all)."""
    keep = np.ones(len(results[0].predictions), dtype=bool) if results else np.zeros(0, dtype=bool)
    for result in results:
        if result.errors is None:
            raise SemanticFaceError(f"{result.name}: scored without per-cell errors")
        keep &= np.isfinite(result.errors[:, :NUM_BLENDSHAPES]).any(axis=1)
    return keep


def per_image_errors(result: SystemResult, row_ids: Sequence[Any], keep: np.ndarray) -> PerImageErrors:
    """The system's per-image blendshape errors (as scored for its headline MAE) on the ``keep`` rows."""
    if result.errors is None:
        raise SemanticFaceError(f"{result.name}: scored without per-cell errors")
    matrix = result.errors[keep, :NUM_BLENDSHAPES]
    per_image = per_image_mae(matrix)
    ids = [str(r) for r, k in zip(row_ids, keep) if k]
    return PerImageErrors(result.name, ids, per_image, matrix, BLENDSHAPES)


def compare_with_baselines(
    results: Sequence[SystemResult], row_ids: Sequence[Any], *, n_boot: int = 10_000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap of ``results[0]`` against every other system over the test images: ``{other name:
    paired_bootstrap_ci(...)}`` (a − b = system under test − baseline; ratio = its mean / the baseline's)."""
    if len(results) < 2:
        return {}
    keep = scored_rows(results)
    if not keep.any():
        return {}
    main = per_image_errors(results[0], row_ids, keep)
    comparisons = {}
    for other in results[1:]:
        _, errors_a, errors_b = paired_errors(main, per_image_errors(other, row_ids, keep))
        comparisons[other.name] = paired_bootstrap_ci(errors_a, errors_b, n_boot=n_boot, seed=seed)
    return comparisons


def score_with_baselines(
    name: str,
    predictions: Sequence[FaceCoefficients | None],
    truths: Sequence[FaceCoefficients],
    train_truths: Sequence[FaceCoefficients] | None,
    *,
    row_ids: Sequence[Any] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
) -> tuple[list[SystemResult], dict[str, dict[str, Any]]]:
    """One system's coefficients against the per-channel median, constant-mean and neutral baselines (fitted on
    ``train_truths``), all scored on the same cells, and the paired bootstrap of the system against each
    (``n_boot=0``: none). For benchmarks and the training-time eval; ``semanticface eval`` adds images, MediaPipe,
    renders and the report files on top (:func:`semanticface.evaluation.evaluate.evaluate`)."""
    from semanticface.evaluation.baselines import ConstantMeanBaseline, NeutralBaseline

    median = reference_median(train_truths, truths)
    mean = ConstantMeanBaseline.fit(list(train_truths) if train_truths else list(truths))
    if not train_truths:
        mean.name = "constant_mean (eval split)"
    results = [score_system(name, predictions, truths, fill=median.median)]
    results += score_baselines([median, mean, NeutralBaseline()], [None] * len(truths), truths, fill=median.median)
    ids = list(row_ids) if row_ids is not None else [str(i) for i in range(len(truths))]
    comparisons = compare_with_baselines(results, ids, n_boot=n_boot, seed=seed) if n_boot > 0 else {}
    return results, comparisons


def headline(results: Sequence[SystemResult], comparisons: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The figures a benchmark report needs, JSON-ready: per system MAE (same cells for all), MAE on its own cells,
    coverage, spread, mean Pearson, parse-failure rate and warnings; the system under test's ratio to the median
    constant; and the paired comparisons."""
    from semanticface.evaluation.metrics import json_float

    systems = {}
    for result in results:
        m = result.metrics
        systems[result.name] = {
            "mae": json_float(m.overall.mae),
            "mae_own_cells": json_float(m.own_mask.mae if m.own_mask is not None else m.overall.mae),
            "coverage": json_float(m.coverage),
            "spread_ratio": json_float(m.spread_ratio),
            "mean_pearson": json_float(m.mean_pearson),
            "parse_failure_rate": json_float(m.parse_failure_rate),
            "warnings": list(result.warnings),
        }
    main = results[0].metrics.overall.mae
    median = next((r.metrics.overall.mae for r in results[1:] if r.name.startswith("median")), math.nan)
    return {
        "systems": systems,
        "ratio_to_median": json_float(main / median if median and math.isfinite(median) else math.nan),
        "comparisons": {
            other: {k: json_float(v) if isinstance(v, float) else v for k, v in c.items()}
            for other, c in (comparisons or {}).items()
        },
        "warnings": [w for r in results for w in r.warnings],
    }
