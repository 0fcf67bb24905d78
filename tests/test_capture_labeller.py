"""The simulated capture-software labeller: documented bias, deterministic, informative but wrong."""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.preferences.capture_labeller import LabellerBias, SimulatedCaptureLabeller, capture_bias, mirror
from semanticface.sampling import SamplingConfig, sample_expressions
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def test_each_bias_term_does_what_it_says():
    zero = FaceCoefficients(np.zeros(61))
    rest = SimulatedCaptureLabeller(LabellerBias(offset={"eyeWideLeft": 0.35}, dead=("cheekPuff",))).label(zero, 0)
    assert rest["eyeWideLeft"] == pytest.approx(0.35) and rest["eyeWideRight"] == 0
    puffed = np.zeros(61)
    puffed[CHANNEL_INDEX["cheekPuff"]] = 0.9
    puffed[CHANNEL_INDEX["mouthSmileLeft"]] = 1.0
    labelled = SimulatedCaptureLabeller(LabellerBias(gain={"mouthSmileLeft": 0.5}, dead=("cheekPuff",), crosstalk=0.2))
    out = labelled.label(FaceCoefficients(puffed), 0)
    assert out["cheekPuff"] == 0  # dead
    assert out["mouthSmileLeft"] == pytest.approx(0.5 * 0.8)  # gain after cross-talk
    assert out["mouthSmileRight"] == pytest.approx(0.2)  # the left side leaks into the right
    assert mirror("eyeBlinkLeft") == "eyeBlinkRight" and mirror("jawOpen") is None


def test_deterministic_per_key_and_pose_untouched():
    truth = FaceCoefficients(np.r_[np.full(52, 0.3), np.full(9, 0.1)])
    labeller = SimulatedCaptureLabeller(seed=1)
    assert labeller.label(truth, "a") == labeller.label(truth, "a")
    assert labeller.label(truth, "a") != labeller.label(truth, "b")
    assert np.array_equal(labeller.label(truth, "a").pose, truth.pose)
    assert set(capture_bias().biased_channels) >= {"eyeWideLeft", "noseSneerRight", "cheekPuff", "tongueOut"}


def test_bad_bias_is_refused():
    with pytest.raises(ConfigError, match="HeadYaw"):
        LabellerBias(offset={"HeadYaw": 0.1})
    with pytest.raises(ConfigError):
        LabellerBias(crosstalk=0.7)
    with pytest.raises(ConfigError):
        LabellerBias(noise=-1)


@pytest.mark.parametrize("source", ["llf", "prototype"])
def test_informative_but_wrong_on_rendered_faces(source, tmp_path):
    """On the coefficients of rendered faces (drawn as synth draws them, rendered by the avatar renderer): the labels
    are clearly worse than the truth and better than the best constant (the per-channel median of a train part)."""
    from semanticface.render.avatar import AvatarRenderer

    if source == "llf":
        from conftest import shared_data_path

        recordings = sorted((shared_data_path() / "llf").glob("*.csv"))
        if not recordings:
            pytest.skip(f"no Live Link Face captures under {shared_data_path() / 'llf'}")
        config = SamplingConfig(source="llf", recordings=tuple(str(p) for p in recordings), head_pose=0.0)
    else:
        config = SamplingConfig(source="prototype", head_pose=0.0)
    samples = [s.coefficients for s in sample_expressions(config, 400, seed=3)]
    renderer = AvatarRenderer()
    for i, truth in enumerate(samples[:4]):  # the faces render: this is the data a benchmark labels
        assert renderer.render(truth, identity=i, size=32).size == (32, 32)
    truth = np.array([s.blendshapes for s in samples])
    labeller = SimulatedCaptureLabeller()
    labels = np.array([labeller.label(s, i).blendshapes for i, s in enumerate(samples)])
    median = np.median(truth[:200], axis=0)
    constant = _mae(np.broadcast_to(median, truth[200:].shape), truth[200:])
    biased = _mae(labels[200:], truth[200:])
    assert 0.03 < biased < constant, (biased, constant)
    # The bias is where it was put: the offset channels read high at rest, dead channels read nothing.
    names = list(BLENDSHAPES)
    assert labels[:, names.index("eyeWideLeft")].mean() > truth[:, names.index("eyeWideLeft")].mean() + 0.2
    assert labels[:, names.index("tongueOut")].max() == 0
