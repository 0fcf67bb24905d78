"""Channel schema and the coefficient container: names, dialects, regions, sides, FACS, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import CoefficientError, UnknownChannelError
from semanticface.schema import (
    ARKIT_TO_FACS,
    BLENDSHAPES,
    CHANNEL_REGION,
    CHANNELS,
    DIRECTIONAL_PAIRS,
    FACE_HALVES,
    FACS_NAMES,
    LLF_COLUMN_ORDER,
    LOWER_FACE,
    MEDIAPIPE_CATEGORIES,
    POSE_CHANNELS,
    REGION_CHANNELS,
    REGIONS,
    SYMMETRIC_PAIRS,
    UPPER_FACE,
    Dialect,
    canonical_name,
    dialect_names,
    face_half_of,
    mirror_name,
    side_of,
    to_dialect,
)


def test_channel_counts_and_apple_order() -> None:
    assert len(BLENDSHAPES) == 52 and len(POSE_CHANNELS) == 9 and len(CHANNELS) == 61
    assert BLENDSHAPES[:3] == ("eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft")
    assert BLENDSHAPES[14:18] == ("jawForward", "jawLeft", "jawRight", "jawOpen")
    assert BLENDSHAPES[-1] == "tongueOut"
    assert POSE_CHANNELS == ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                             "RightEyeYaw", "RightEyePitch", "RightEyeRoll")  # fmt: skip


@pytest.mark.parametrize("dialect", list(Dialect))
def test_every_dialect_round_trips(dialect: Dialect) -> None:
    for name in dialect_names(dialect):
        assert to_dialect(canonical_name(name), dialect) == name
        assert canonical_name(name.upper()) == canonical_name(name)  # case-insensitive
        assert canonical_name(f"  {name} ") == canonical_name(name)


def test_dialect_spellings() -> None:
    assert to_dialect("eyeBlinkLeft", "llf") == "EyeBlinkLeft"
    assert to_dialect("EyeBlinkLeft", "suffix") == "eyeBlink_L"
    assert to_dialect("jawLeft", "suffix") == "jawLeft" and to_dialect("mouthRight", "suffix") == "mouthRight"
    assert canonical_name("mouthSmile_R") == "mouthSmileRight"
    assert to_dialect("HeadYaw", "arkit") == "HeadYaw"
    with pytest.raises(UnknownChannelError):
        to_dialect("tongueOut", "mediapipe")
    for bad in ("_neutral", "eyeBlink", "smile", "", "eyeBlinkLeftt"):
        with pytest.raises(UnknownChannelError):
            canonical_name(bad)


def test_live_link_face_column_order_quirks() -> None:
    order = list(LLF_COLUMN_ORDER)
    assert len(order) == 61 and sorted(order) == sorted(to_dialect(n, "llf") for n in CHANNELS)
    assert order.index("JawRight") < order.index("JawLeft")
    assert order.index("MouthRight") < order.index("MouthLeft")
    differs = [i for i, (a, b) in enumerate(zip(order, dialect_names("llf"))) if a != b]
    assert [order[i] for i in differs] == ["JawRight", "JawLeft", "MouthRight", "MouthLeft"]


def test_live_link_face_order_matches_real_headers(shared_data) -> None:
    for path in sorted((shared_data / "llf").glob("*.csv")):
        header = path.open(encoding="utf-8").readline().strip().split(",")
        assert tuple(header[2:]) == LLF_COLUMN_ORDER, path.name


def test_mediapipe_categories() -> None:
    assert MEDIAPIPE_CATEGORIES[0] == "_neutral" and len(MEDIAPIPE_CATEGORIES) == 52
    assert "tongueOut" not in MEDIAPIPE_CATEGORIES
    scores = {name: 0.25 for name in MEDIAPIPE_CATEGORIES}
    c = FaceCoefficients.from_dict(scores, missing_ok=True)
    assert c.missing == frozenset({"tongueOut"})  # pose channels absent altogether default to 0
    assert c["jawOpen"] == 0.25 and math.isnan(c.values[BLENDSHAPES.index("tongueOut")])
    assert set(c.to_dict("mediapipe")) == set(MEDIAPIPE_CATEGORIES[1:])
    with pytest.raises(CoefficientError, match="tongueOut"):
        FaceCoefficients.from_dict(scores)


def test_ict_facekit_names(shared_data) -> None:
    names = [str(n) for n in np.load(shared_data / "meshes" / "ict_facekit" / "ict_expression_deltas.npz")["names"]]
    extras = {"PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R"}
    split = {"browInnerUp_L", "browInnerUp_R", "cheekPuff_L", "cheekPuff_R"}
    for name in names:
        if name in extras or name in split:
            with pytest.raises(UnknownChannelError):
                canonical_name(name)
        else:
            assert to_dialect(canonical_name(name), "suffix") == name
    values = {name: 0.5 for name in names}
    values["browInnerUp_L"], values["browInnerUp_R"] = 0.2, 0.6
    c = FaceCoefficients.from_dict(values, missing_ok=True, ignore_unknown=True)
    assert c.missing == frozenset({"tongueOut"})
    assert c["browInnerUp"] == pytest.approx(0.4)  # split halves are averaged
    assert c["eyeBlinkLeft"] == 0.5 and c["HeadYaw"] == 0.0


def test_regions_halves_sides_and_facs() -> None:
    assert REGIONS == ("brows", "eyes", "cheeks", "nose", "jaw", "mouth", "tongue")
    covered = [n for r in REGIONS for n in REGION_CHANNELS[r]]
    assert sorted(covered) == sorted(BLENDSHAPES)
    assert CHANNEL_REGION["cheekSquintLeft"] == "cheeks" and CHANNEL_REGION["HeadYaw"] == "head"
    assert set(UPPER_FACE) | set(LOWER_FACE) == set(BLENDSHAPES) and not set(UPPER_FACE) & set(LOWER_FACE)
    assert FACE_HALVES["upper"] == UPPER_FACE and face_half_of("BrowDownLeft") == "upper"
    assert face_half_of("jawOpen") == "lower" and face_half_of("HeadYaw") is None
    for left, right in SYMMETRIC_PAIRS:
        assert side_of(left) == "left" and side_of(right) == "right"
        assert mirror_name(left) == right and mirror_name(right) == left
    assert side_of("jawLeft") is None and mirror_name("jawLeft") == "jawRight"
    assert ("mouthLeft", "mouthRight") in DIRECTIONAL_PAIRS and mirror_name("jawOpen") == "jawOpen"
    assert len(SYMMETRIC_PAIRS) == 18 + 3  # 18 sided blendshape pairs + 3 eye-rotation pairs
    assert set(ARKIT_TO_FACS) == set(BLENDSHAPES)
    assert all(au in FACS_NAMES for aus in ARKIT_TO_FACS.values() for au in aus)
    assert ARKIT_TO_FACS["mouthSmileLeft"] == ("AU12",) and ARKIT_TO_FACS["cheekSquintRight"] == ("AU6",)


# --- the coefficient container ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, float("nan"), "eyeBlinkLeft"),
        (17, float("inf"), "jawOpen"),
        (51, 1.2, "tongueOut = 1.2 is outside"),
        (5, -0.1, "eyeSquintLeft = -0.1 is outside"),
        (52, -1.5, "HeadYaw = -1.5 is outside"),
    ],
)
def test_validation_names_the_channel(index: int, value: float, message: str) -> None:
    values = np.zeros(61)
    values[index] = value
    with pytest.raises(CoefficientError, match=message) as caught:
        FaceCoefficients(values)
    assert caught.value.channel == CHANNELS[index]


def test_pose_range_and_other_validation() -> None:
    values = np.zeros(61)
    values[52:] = -1.0
    assert FaceCoefficients(values).pose.min() == -1.0
    with pytest.raises(CoefficientError, match="shape"):
        FaceCoefficients(np.zeros(60))
    with pytest.raises(CoefficientError, match="jawOpen must be a number"):
        FaceCoefficients.from_dict({**{n: 0.0 for n in BLENDSHAPES}, "jawOpen": "wide"})
    with pytest.raises(CoefficientError, match="given twice"):
        FaceCoefficients.from_dict({**{n: 0.0 for n in BLENDSHAPES}, "JawOpen": 0.2})
    with pytest.raises(UnknownChannelError):
        FaceCoefficients.from_dict({**{n: 0.0 for n in BLENDSHAPES}, "smile": 0.2})


@given(
    st.lists(st.floats(0, 1), min_size=52, max_size=52),
    st.lists(st.floats(-1, 1), min_size=9, max_size=9),
    st.sampled_from(["arkit", "llf", "suffix"]),
)
def test_dict_round_trip_in_every_full_dialect(blend: list[float], pose: list[float], dialect: str) -> None:
    c = FaceCoefficients(np.array(blend + pose))
    assert FaceCoefficients.from_dict(c.to_dict(dialect)) == c


@given(st.lists(st.floats(0, 1), min_size=52, max_size=52), st.integers(0, 4))
def test_quantized_rounds_half_away_from_zero_and_stays_valid(blend: list[float], decimals: int) -> None:
    c = FaceCoefficients.from_array(blend)
    q = c.quantized(decimals)
    assert np.all(np.abs(q.values - c.values) <= 0.5 * 10.0**-decimals + 1e-12)
    assert q.quantized(decimals) == q
    assert FaceCoefficients.from_array([0.125] * 52).quantized(2)["jawOpen"] == 0.13
