"""One evaluation run: score a model's predictions and the baselines on a dataset split, then write the report.

Every system is scored on the same rows and cells (see :mod:`semanticface.evaluation.scoring`); the report holds
the per-channel median, constant-mean and neutral baselines (and MediaPipe when given), paired bootstrap intervals
of the model against each, a warning when the model ignores the image, and the per-image errors of every system
(``per_image_errors.jsonl``) so that any two runs can be compared later (:mod:`semanticface.evaluation.stats`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.evaluation.baselines import ConstantMeanBaseline, MediaPipeBaseline, NeutralBaseline
from semanticface.evaluation.consistency import consistency
from semanticface.evaluation.description_quality import description_quality
from semanticface.evaluation.report import write_report
from semanticface.evaluation.results import SystemResult
from semanticface.evaluation.scoring import (
    compare_with_baselines,
    per_image_errors,
    reference_median,
    score_baselines,
    score_system,
    scored_rows,
)
from semanticface.evaluation.stats import save_per_image_errors
from semanticface.rows import dataset_coefficients, dataset_split, open_dataset
from semanticface.schema import BLENDSHAPES

Render = Callable[[FaceCoefficients], Any]


@dataclass
class EvalOptions:
    """What an evaluation run includes besides the model's coefficient metrics."""

    mediapipe_model: str | None = field(
        default=None, metadata={"help": "MediaPipe face_landmarker.task file; adds the MediaPipe baseline."}
    )
    baselines: bool = field(
        default=True, metadata={"help": "Score the per-channel median, constant-mean and neutral baselines too."}
    )
    render_samples: int = field(
        default=16, metadata={"help": "Samples rendered for the rendered-image distance (0 disables it)."}
    )
    num_renders: int = field(default=4, metadata={"help": "Rows of side-by-side avatar renders in the report."})
    decimals: int = field(default=2, metadata={"help": "Decimals the descriptions were derived at (consistency)."})
    consistency: bool = field(
        default=True,
        metadata={
            "help": "Measure description-coefficient consistency and description quality against describe(truth): "
            "expression-category accuracy, per-region action precision/recall (this toolkit's description format)."
        },
    )
    bootstrap_samples: int = field(
        default=10_000, metadata={"help": "Bootstrap resamples of the paired model-vs-baseline intervals (0: none)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap."})


def load_split(dataset: str | Path, split: str) -> tuple[Any, Any | None]:
    """``(eval split, train split or None)`` of a dataset saved with ``save_to_disk``, a data folder or a Hub id."""
    import datasets

    loaded = open_dataset(dataset)
    if isinstance(loaded, datasets.Dataset):
        return loaded, None
    return dataset_split(loaded, split, dataset), loaded["train"] if "train" in loaded and split != "train" else None


def dataset_images(dataset: Any) -> list[Any]:
    """The first image of every row's ``images`` list (the TRL VLM column convention)."""
    if "images" not in dataset.column_names:
        raise DatasetError(f"dataset has no 'images' column (columns: {', '.join(dataset.column_names[:8])})")
    out = []
    for i, images in enumerate(dataset["images"]):
        if not images:
            raise DatasetError(f"row {i}: empty 'images' list")
        out.append(images[0].convert("RGB"))
    return out


def render_distance(
    predictions: Sequence[FaceCoefficients | None], truths: Sequence[FaceCoefficients], render: Render, limit: int
) -> float:
    """Mean absolute pixel difference (0-1 scale) between renders of prediction and truth, over the first
    ``limit`` samples with a parsed prediction. Sensitive to what the face looks like, not to channel bookkeeping:
    two channels that move the same vertices can trade error without a visible change."""
    distances: list[float] = []
    for prediction, truth in zip(predictions, truths):
        if prediction is None:
            continue
        if len(distances) >= limit:
            break
        a = np.asarray(render(prediction), dtype=np.float32) / 255.0
        b = np.asarray(render(truth), dtype=np.float32) / 255.0
        distances.append(float(np.abs(a - b).mean()))
    return float(np.mean(distances)) if distances else math.nan


def model_result(
    name: str,
    predictions: Sequence[Any],
    truths: Sequence[FaceCoefficients],
    decimals: int,
    *,
    fill: FaceCoefficients,
    with_consistency: bool = True,
) -> SystemResult:
    """Score :class:`semanticface.inference.Prediction` objects (missing cells scored as ``fill``): coefficient
    metrics plus consistency and cost."""
    coefficients = [p.coefficients for p in predictions]
    extra: dict[str, float] = {}
    if with_consistency:
        stats = consistency([p.description for p in predictions], coefficients, decimals=decimals)
        if stats.compared:
            extra.update(stats.to_extra())
        quality = description_quality([p.description for p in predictions], truths, decimals=decimals)
        if quality.compared:
            extra.update(quality.to_extra())
    if any(p.num_tokens for p in predictions):
        extra["mean_output_tokens"] = float(np.mean([p.num_tokens for p in predictions]))
    if any(p.seconds for p in predictions):
        extra["seconds_per_image"] = float(np.mean([p.seconds for p in predictions]))
    return score_system(name, coefficients, truths, fill=fill, extra=extra)


def baseline_results(
    truths: Sequence[FaceCoefficients],
    images: Sequence[Any],
    *,
    train_truths: Sequence[FaceCoefficients] | None,
    mediapipe_model: str | None,
    constant_and_neutral: bool = True,
) -> list[SystemResult]:
    """Per-channel median and constant mean (of the train split, else of the evaluated split itself: flagged in
    their names), neutral, and MediaPipe when its model file is given; missing cells scored as the median."""
    median = reference_median(train_truths, truths)
    baselines: list[Any] = []
    if constant_and_neutral:
        mean = ConstantMeanBaseline.fit(list(train_truths) if train_truths else list(truths))
        if not train_truths:
            mean.name = "constant_mean (eval split)"  # an optimistic, leaked mean: say so in every table
        baselines += [median, mean, NeutralBaseline()]
    if mediapipe_model:
        baselines.append(MediaPipeBaseline(mediapipe_model))
    return score_baselines(baselines, images, truths, fill=median.median)


def row_ids(dataset: Any) -> list[str]:
    """The dataset's ``id`` column when it has one, else the row numbers: the keys of per-image errors."""
    if "id" in dataset.column_names:
        return [str(v) for v in dataset["id"]]
    return [str(i) for i in range(len(dataset))]


def evaluate(
    out_dir: str | Path,
    eval_dataset: Any,
    predictions: Sequence[Any],
    *,
    train_dataset: Any = None,
    name: str = "model",
    render: Render | None = None,
    options: EvalOptions | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[list[SystemResult], dict[str, Path]]:
    """Score ``predictions`` (one :class:`Prediction` per row of ``eval_dataset``) and the baselines, write the
    report into ``out_dir``, and return the results (model first) and the report's paths."""
    options = options or EvalOptions()
    truths = dataset_coefficients(eval_dataset)
    if len(predictions) != len(truths):
        raise DatasetError(f"{len(predictions)} predictions for {len(truths)} dataset rows")
    images = dataset_images(eval_dataset)
    train_truths = dataset_coefficients(train_dataset) if train_dataset is not None else None
    median = reference_median(train_truths, truths)  # what every system's missing cells are scored as
    results = [
        model_result(
            name, predictions, truths, options.decimals, fill=median.median, with_consistency=options.consistency
        )
    ]
    if options.baselines or options.mediapipe_model:
        results += baseline_results(
            truths,
            images,
            train_truths=train_truths,
            mediapipe_model=options.mediapipe_model,
            constant_and_neutral=options.baselines,
        )
    if render is not None and options.render_samples > 0:
        for result in results:
            result.extra["render_distance"] = render_distance(
                result.predictions, truths, render, options.render_samples
            )
    ids = row_ids(eval_dataset)
    comparisons = (
        compare_with_baselines(results, ids, n_boot=options.bootstrap_samples, seed=options.seed)
        if options.bootstrap_samples > 0
        else {}
    )
    meta = {**(meta or {}), "missing cells scored as": f"{median.name} (per-channel median of the train split)"}
    if median.name != "median":
        meta["missing cells scored as"] = f"{median.name} (no train split: per-channel median of the evaluated rows)"
    paths = write_report(
        out_dir,
        results,
        truths,
        images=images,
        render=render,
        num_renders=options.num_renders,
        meta=meta,
        comparisons=comparisons,
    )
    # Per-image errors of every system, so this run can be compared with any other on the same rows later.
    paths["per_image_errors"] = save_all_per_image_errors(Path(out_dir) / "per_image_errors.jsonl", results, ids)
    # The raw outputs beside the figures: a parse-failure rate is only actionable with the texts that failed.
    paths["predictions"] = Path(out_dir) / "predictions.jsonl"
    with open(paths["predictions"], "w", encoding="utf-8") as handle:
        for index, prediction in enumerate(predictions):
            handle.write(json.dumps({"index": index, **prediction.to_dict()}) + "\n")
    return results, paths


def save_all_per_image_errors(path: Path, results: Sequence[SystemResult], ids: Sequence[str]) -> Path:
    """Every system's per-image blendshape errors into one file (rows whose truth has no blendshape are left out:
    no system is scored on them)."""
    keep = scored_rows(results)
    kept_ids = [i for i, k in zip(ids, keep) if k]
    for index, result in enumerate(results):
        per_image = per_image_errors(result, ids, keep)
        errors = per_image.channel_errors if per_image.channel_errors is not None else per_image.errors
        save_per_image_errors(path, kept_ids, errors, system=result.name, channels=BLENDSHAPES, append=index > 0)
    return path
