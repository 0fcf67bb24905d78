"""One-Euro smoothing (semanticface.smoothing) and neutral calibration (semanticface.calibration)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semanticface.calibration import NeutralCalibration
from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX
from semanticface.smoothing import OneEuroFilter, jitter, smooth_series, step_lag


def test_one_euro_removes_jitter_at_rest_and_follows_a_step_quickly():
    rng = np.random.default_rng(0)
    fps = 30.0
    seconds = np.arange(300) / fps
    truth = np.where(seconds < 5, 0.2, 0.8)[:, None]
    noisy = truth + rng.normal(0, 0.03, truth.shape)
    smoothed = smooth_series(noisy, seconds)
    assert jitter(smoothed) < 0.4 * jitter(noisy)
    rest = slice(60, 140)  # away from the step: much closer to the truth than the raw values
    assert np.abs(smoothed[rest] - truth[rest]).mean() < 0.5 * np.abs(noisy[rest] - truth[rest]).mean()
    assert np.abs(smoothed[200:] - 0.8).mean() < 0.03  # and it arrives
    # The lag on a clean 0 -> 1 step is a few frames, and grows when beta (speed adaptation) is off.
    lag = step_lag(fps)
    assert 0 < lag <= 5 / fps
    assert step_lag(fps, beta=0.0) > 2 * lag


def test_one_euro_gaps_and_missing_channels_restart_instead_of_smoothing_across():
    filt = OneEuroFilter()
    assert filt(np.array([0.0, 0.5]), 0.0).tolist() == [0.0, 0.5]
    out = filt(np.array([1.0, np.nan]), 1 / 30)
    assert 0 < out[0] < 1 and math.isnan(out[1])
    assert filt(np.array([1.0, 0.9]), 2 / 30)[1] == 0.9  # a channel coming back starts from its own value
    series = np.array([[0.0], [np.nan], [1.0]])
    assert smooth_series(series, np.arange(3) / 30.0)[2, 0] == 1.0  # the lost frame reset the filter
    with pytest.raises(ConfigError, match="increasing times"):
        filt(np.array([0.0, 0.0]), 0.0)
    with pytest.raises(ConfigError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)


def test_neutral_calibration_maps_rest_to_zero_and_full_to_one():
    rest = FaceCoefficients.neutral().replace(eyeWideLeft=0.48, noseSneerLeft=0.2, HeadYaw=0.3)
    calibration = NeutralCalibration.from_frame(rest)
    assert calibration.offsets() == pytest.approx({"eyeWideLeft": 0.48, "noseSneerLeft": 0.2})
    at_rest = calibration.apply(rest)
    assert np.allclose(at_rest.blendshapes, 0) and at_rest["HeadYaw"] == pytest.approx(0.3)  # pose untouched
    full = calibration.apply(rest.replace(eyeWideLeft=1.0, noseSneerLeft=0.6))
    assert full["eyeWideLeft"] == 1.0 and full["noseSneerLeft"] == pytest.approx(0.5)
    below = calibration.apply(rest.replace(eyeWideLeft=0.1))
    assert below["eyeWideLeft"] == 0.0  # below rest clips to 0
    partial = FaceCoefficients.from_dict({"jawOpen": 0.5}, missing_ok=True)
    assert calibration.apply(partial).missing == partial.missing  # missing stays missing
    stuck = NeutralCalibration.from_frame(FaceCoefficients.neutral().replace(mouthClose=0.99))
    assert stuck.skipped == ("mouthClose",) and stuck.offsets() == {}


def _column(values: np.ndarray, name: str) -> np.ndarray:
    return values[:, CHANNEL_INDEX[name]]


def test_calibration_on_the_real_captures(shared_data):
    from semanticface.llf import read_llf

    # This capture never lets noseSneer and browDown rest: they stay above 0.16 and 0.28 for the whole take.
    jm = read_llf(shared_data / "llf" / "JMTechArt__MySlate_3_Jason_Millers_iPhone.csv")
    assert _column(jm.values, "noseSneerLeft").min() > 0.15 and _column(jm.values, "browDownLeft").min() > 0.25
    auto = NeutralCalibration.from_recording(jm.values)
    calibrated = auto.apply_array(jm.values)
    for name in ("noseSneerLeft", "noseSneerRight", "browDownLeft", "browDownRight"):
        assert np.percentile(_column(calibrated, name), 5) == pytest.approx(0, abs=1e-3), name
        assert _column(calibrated, name).max() > 0.6, name  # movement is kept, rescaled
    # Channels that do rest at 0 are unchanged.
    at_zero = [name for name, rest in zip(BLENDSHAPES, auto.rest) if rest == 0]
    assert at_zero and all(np.array_equal(_column(calibrated, n), _column(jm.values, n)) for n in at_zero)
    # The alexdjulin takes open with a neutral face whose eyes read wide; calibrating on that frame removes it.
    take = read_llf(shared_data / "llf" / "alexdjulin__S07-001.csv")
    first = take.frame(0)
    assert first["eyeWideLeft"] > 0.3
    by_frame = NeutralCalibration.from_frame(first)
    assert by_frame.apply(first)["eyeWideLeft"] == 0.0
    widened = _column(by_frame.apply_array(take.values), "eyeWideLeft")
    assert widened.max() <= 1 and np.median(widened) < np.median(_column(take.values, "eyeWideLeft"))
    assert set(auto.offsets()) <= set(BLENDSHAPES)
