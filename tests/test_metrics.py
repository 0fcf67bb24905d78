"""Coefficient metrics: hand-computed figures, missing channels, parse failures, constant channels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import SemanticFaceError
from semanticface.evaluation.metrics import coefficient_metrics, pearson, prediction_spread
from semanticface.schema import BLENDSHAPES, FACE_HALVES, REGION_CHANNELS


def face(**values: float) -> FaceCoefficients:
    return FaceCoefficients.neutral().replace(**values)


def test_hand_computed_mae_rmse_per_channel_region_half():
    truths = [face(jawOpen=0.5), face(jawOpen=0.0, browInnerUp=0.4)]
    preds = [face(jawOpen=0.2), face(jawOpen=0.4, browInnerUp=0.4)]
    m = coefficient_metrics(preds, truths)
    assert m.channels["jawOpen"].mae == pytest.approx(0.35)
    assert m.channels["jawOpen"].rmse == pytest.approx(math.sqrt((0.09 + 0.16) / 2))
    assert m.channels["browInnerUp"].mae == pytest.approx(0.0)
    # Overall: two non-zero errors among 2 x 52 cells.
    assert m.overall.count == 2 * 52
    assert m.overall.mae == pytest.approx(0.7 / 104)
    jaw = len(REGION_CHANNELS["jaw"])
    assert m.regions["jaw"].mae == pytest.approx(0.7 / (2 * jaw))
    assert m.regions["brows"].mae == 0.0
    assert m.halves["lower"].mae == pytest.approx(0.7 / (2 * len(FACE_HALVES["lower"])))
    assert m.halves["upper"].mae == 0.0
    assert m.num_parse_failures == 0 and m.parse_failure_rate == 0.0


def test_parse_failures_are_counted_and_excluded_not_scored_as_zero():
    truths = [face(jawOpen=0.8), face(jawOpen=0.6)]
    m = coefficient_metrics([None, face(jawOpen=0.6)], truths)
    assert m.num_parse_failures == 1 and m.parse_failure_rate == 0.5
    assert m.channels["jawOpen"].count == 1 and m.channels["jawOpen"].mae == 0.0
    assert m.overall.mae == 0.0


def test_missing_channels_are_excluded():
    mp_like = FaceCoefficients.from_dict({n: 0.1 for n in BLENDSHAPES if n != "tongueOut"}, missing_ok=True)
    assert "tongueOut" in mp_like.missing
    truth = face(tongueOut=1.0).replace(**{n: 0.1 for n in BLENDSHAPES if n != "tongueOut"})
    m = coefficient_metrics([mp_like], [truth])
    assert m.channels["tongueOut"].count == 0 and math.isnan(m.channels["tongueOut"].mae)
    assert m.overall.count == 51 and m.overall.mae == pytest.approx(0.0)
    assert m.regions["tongue"].count == 0
    as_json = json.loads(json.dumps(m.to_dict()))
    assert as_json["channels"]["tongueOut"]["mae"] is None


def test_pearson_per_channel_is_nan_safe_for_constant_channels():
    rng = np.random.default_rng(0)
    truth_jaw = rng.uniform(0, 1, 20)
    truths = [face(jawOpen=float(v)) for v in truth_jaw]
    preds = [face(jawOpen=float(v) * 0.5 + 0.1) for v in truth_jaw]  # perfectly correlated, biased
    with np.errstate(all="raise"):  # no divide-by-zero warning for the 51 constant channels
        m = coefficient_metrics(preds, truths)
    assert m.pearson["jawOpen"] == pytest.approx(1.0)
    assert math.isnan(m.pearson["eyeBlinkLeft"])  # constant on both sides: undefined, not 0 or a crash
    assert m.mean_pearson == pytest.approx(1.0)
    anti = coefficient_metrics([face(jawOpen=1 - float(v)) for v in truth_jaw], truths)
    assert anti.pearson["jawOpen"] == pytest.approx(-1.0)


def test_pearson_helper_ignores_nan_positions():
    x = np.array([0.0, 1.0, np.nan, 3.0])
    y = np.array([0.0, 2.0, 5.0, 6.0])
    assert pearson(x, y) == pytest.approx(1.0)
    assert math.isnan(pearson(np.array([1.0]), np.array([2.0])))


def test_pose_channels_reported_as_head_and_gaze_only_when_present():
    truths = [face(LeftEyeYaw=0.2)]
    m = coefficient_metrics([face(LeftEyeYaw=-0.2)], truths)
    assert m.regions["gaze"].mae == pytest.approx(0.4 / 6)
    assert m.overall.mae == 0.0  # overall covers the blendshapes


def test_length_mismatch_raises_typed_error():
    with pytest.raises(SemanticFaceError, match="1 predictions for 2"):
        coefficient_metrics([face()], [face(), face()])


def test_fill_scores_missing_cells_and_failed_rows_as_the_fill_face():
    truths = [face(jawOpen=0.8), face(jawOpen=0.6)]
    fill = face(jawOpen=0.5)
    dropped = FaceCoefficients.from_dict({n: 0.0 for n in BLENDSHAPES if n != "jawOpen"}, missing_ok=True)
    m = coefficient_metrics([None, dropped], truths, fill=fill)
    # Both rows' jawOpen cells are scored as the fill's 0.5: errors 0.3 and 0.1, every other cell exact.
    assert m.channels["jawOpen"].count == 2 and m.channels["jawOpen"].mae == pytest.approx(0.2)
    assert m.overall.count == 2 * 52 and m.overall.mae == pytest.approx(0.4 / 104)
    assert m.own_mask is not None and m.own_mask.count == 51 and m.own_mask.mae == 0.0
    assert m.coverage == pytest.approx(51 / 104) and m.filled
    unfilled = coefficient_metrics([None, dropped], truths)
    assert unfilled.overall.count == 51 and unfilled.coverage == pytest.approx(51 / 104) and not unfilled.filled
    with pytest.raises(SemanticFaceError, match="1 predictions for 2"):
        coefficient_metrics([None], truths, fill=fill)


def test_prediction_spread_is_the_std_ratio_over_channels_that_vary():
    rng = np.random.default_rng(4)
    truth = np.full((30, 61), np.nan)
    truth[:, :52] = 0.0
    truth[:, 0] = rng.uniform(0, 1, 30)
    truth[:, 1] = rng.uniform(0, 0.5, 30)
    assert prediction_spread(truth, truth) == pytest.approx(1.0)
    assert prediction_spread(np.full_like(truth, 0.3), truth) == pytest.approx(0.0, abs=1e-12)
    half = truth.copy()
    half[:, :2] *= 0.5
    assert prediction_spread(half, truth) == pytest.approx(0.5)
    assert math.isnan(prediction_spread(truth[:1], truth[:1]))  # one image: no spread is defined


def test_per_image_and_channel_mae_are_the_metrics_mae():
    """The per-image MAE (paired statistics) and the MAE over a channel subset (the simulated annotator's
    distance) are computed in metrics.py, as ErrorStats computes every other MAE."""
    from semanticface.evaluation.metrics import ErrorStats, channel_mae, per_image_mae

    errors = np.array([[0.1, -0.3, np.nan], [np.nan, np.nan, np.nan]])
    per_image = per_image_mae(errors)
    assert per_image[0] == pytest.approx(0.2) and math.isnan(per_image[1])
    rng = np.random.default_rng(0)
    a, b = (FaceCoefficients.from_array(rng.uniform(0, 1, 52)) for _ in range(2))
    channels = BLENDSHAPES[:5]
    expected = ErrorStats.of(a.values[:5] - b.values[:5]).mae
    assert channel_mae(a, b, channels) == pytest.approx(expected)
    assert math.isnan(channel_mae(a, FaceCoefficients.from_array(b.values[:52], missing=channels), channels))
