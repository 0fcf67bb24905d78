"""Report writer and baselines: files written, figures consistent with the metrics, PNGs are real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.evaluation.baselines import ConstantMeanBaseline, MedianBaseline, MediaPipeBaseline, NeutralBaseline
from semanticface.evaluation.metrics import coefficient_metrics
from semanticface.evaluation.report import write_report
from semanticface.evaluation.results import SystemResult


def _faces(n: int, seed: int) -> list[FaceCoefficients]:
    rng = np.random.default_rng(seed)
    return [
        FaceCoefficients.neutral().replace(jawOpen=float(v), eyeBlinkLeft=float(w))
        for v, w in rng.uniform(0, 1, (n, 2))
    ]


def test_constant_mean_baseline_is_the_train_mean_and_keeps_missing_channels():
    train = [FaceCoefficients.neutral().replace(jawOpen=0.2), FaceCoefficients.neutral().replace(jawOpen=0.6)]
    mean = ConstantMeanBaseline.fit(train).predict([None, None, None])
    assert len(mean) == 3 and mean[0]["jawOpen"] == pytest.approx(0.4)
    partial = FaceCoefficients.from_dict({"jawOpen": 0.5}, missing_ok=True)
    assert "tongueOut" in ConstantMeanBaseline.fit([partial]).mean.missing
    with pytest.raises(DatasetError):
        ConstantMeanBaseline.fit([])


def test_median_baseline_is_the_per_channel_train_median_and_keeps_missing_channels():
    train = [FaceCoefficients.neutral().replace(jawOpen=v) for v in (0.0, 0.1, 0.9)]
    median = MedianBaseline.fit(train).predict([None, None])
    assert len(median) == 2 and median[0]["jawOpen"] == pytest.approx(0.1)  # the mean would be 0.333
    partial = FaceCoefficients.from_dict({"jawOpen": 0.5}, missing_ok=True)
    assert "tongueOut" in MedianBaseline.fit([partial, partial]).median.missing
    with pytest.raises(DatasetError):
        MedianBaseline.fit([])


def test_neutral_baseline_scores_the_mean_absolute_truth():
    truths = _faces(5, 0)
    m = coefficient_metrics(NeutralBaseline().predict(truths), truths)
    expected = np.mean([abs(t["jawOpen"]) + abs(t["eyeBlinkLeft"]) for t in truths]) / 52
    assert m.overall.mae == pytest.approx(expected)


def test_mediapipe_baseline_needs_its_model_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        MediaPipeBaseline(tmp_path / "absent.task")


def test_write_report_files_and_figures(tmp_path):
    truths = _faces(6, 1)
    model_preds = [None] + _faces(5, 2)
    results = [
        SystemResult("model", model_preds, coefficient_metrics(model_preds, truths), {"mean_output_tokens": 40.0}),
        SystemResult(
            "neutral",
            NeutralBaseline().predict(truths),
            coefficient_metrics(NeutralBaseline().predict(truths), truths),
        ),
    ]

    def render(c: FaceCoefficients) -> Image.Image:  # a stand-in picture: brightness encodes jawOpen
        return Image.new("RGB", (32, 32), (int(255 * c["jawOpen"]),) * 3)

    images = [Image.new("RGB", (32, 32), "gray") for _ in truths]
    paths = write_report(tmp_path, results, truths, images=images, render=render, meta={"dataset": "unit"})
    data = json.loads(paths["metrics"].read_text())
    assert data["systems"]["model"]["num_parse_failures"] == 1
    assert data["systems"]["model"]["mean_output_tokens"] == 40.0
    assert data["systems"]["neutral"]["overall"]["mae"] == pytest.approx(results[1].metrics.overall.mae)
    summary = paths["summary"].read_text()
    assert "| model |" in summary and "| neutral |" in summary and "renders.png" in summary
    for kind in ("mae_per_blendshape", "mae_per_region", "scatter", "renders"):
        with Image.open(paths[kind]) as png:
            assert png.format == "PNG" and png.width > 200


def test_score_with_baselines_gives_a_benchmark_headline():
    from semanticface.evaluation.scoring import headline, score_with_baselines

    train, truths = _faces(40, 3), _faces(30, 4)
    results, comparisons = score_with_baselines("model", truths, truths, train, n_boot=300)
    assert [r.name for r in results] == ["model", "median", "constant_mean", "neutral"]
    summary = headline(results, comparisons)
    assert summary["systems"]["model"]["mae"] == 0 and summary["ratio_to_median"] == 0
    assert summary["systems"]["model"]["spread_ratio"] == pytest.approx(1.0) and summary["warnings"] == []
    assert comparisons["median"]["excludes_zero"] and comparisons["median"]["ci_high"] < 0
    median_mae = results[1].metrics.overall.mae
    assert comparisons["median"]["mean_diff"] == pytest.approx(-median_mae)  # every image has 52 cells
    json.dumps(summary, allow_nan=False)  # JSON-ready

    blind, _ = score_with_baselines("blind", [truths[0]] * 30, truths, train, n_boot=0)
    (warning,) = headline(blind)["warnings"]
    assert warning.startswith("blind ignores the image")
