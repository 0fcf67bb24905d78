"""Stage-1 semantics: EMFACS-style categories, intensity words, gaze, symmetry, templates, real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, render_description
from semanticface.errors import ConfigError
from semanticface.llf import read_llf
from semanticface.schema import REGIONS
from semanticface.semantics import (
    NO_MOVEMENT,
    NOT_OBSERVABLE,
    DescriptionConfig,
    IntensityScale,
    action_units,
    describe,
    parse_description,
)


def face(**values: float) -> FaceCoefficients:
    return FaceCoefficients.neutral().replace(**values)


def test_neutral_face() -> None:
    d = describe(FaceCoefficients.neutral())
    assert d.category == "neutral" and d.category_text == "neutral"
    assert d.emotion == NOT_OBSERVABLE
    assert d.symmetry.symmetric and d.symmetry.text == "symmetric"
    assert all(d.region_text(r) == NO_MOVEMENT for r in REGIONS)
    assert d.active_regions() == () and d.action_units == {}


@pytest.mark.parametrize(
    ("values", "category"),
    [
        ({"mouthSmileLeft": 0.7, "mouthSmileRight": 0.7, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5}, "happiness"),
        ({"browInnerUp": 0.6, "browDownLeft": 0.4, "browDownRight": 0.4, "mouthFrownLeft": 0.6, "mouthFrownRight": 0.6},
         "sadness"),
        ({"browInnerUp": 0.8, "browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "eyeWideLeft": 0.7, "eyeWideRight": 0.7,
          "jawOpen": 0.6}, "surprise"),
        ({"browInnerUp": 0.8, "browDownLeft": 0.5, "browDownRight": 0.5, "eyeWideLeft": 0.8, "eyeWideRight": 0.8,
          "mouthStretchLeft": 0.7, "mouthStretchRight": 0.7}, "fear"),
        ({"browDownLeft": 0.8, "browDownRight": 0.8, "eyeSquintLeft": 0.6, "eyeSquintRight": 0.6, "mouthPressLeft": 0.6,
          "mouthPressRight": 0.6}, "anger"),
        ({"noseSneerLeft": 0.7, "noseSneerRight": 0.7, "mouthUpperUpLeft": 0.6, "mouthUpperUpRight": 0.6}, "disgust"),
        ({"mouthSmileLeft": 0.6, "mouthDimpleLeft": 0.5}, "contempt"),
        ({"jawOpen": 0.5, "mouthFunnel": 0.6}, "other"),
    ],
)  # fmt: skip
def test_emfacs_categories(values: dict[str, float], category: str) -> None:
    d = describe(face(**values))
    assert d.category == category, d.category_text
    if category != "other":
        assert d.emotions == (category,) and category in d.emotion
        assert d.category_text.startswith(category + " (")
    else:
        assert d.emotion == NOT_OBSERVABLE


def test_contempt_names_the_side_and_is_asymmetric() -> None:
    d = describe(face(mouthSmileRight=0.6, mouthDimpleRight=0.5))
    assert d.category == "contempt" and "subject's right" in d.emotion
    assert not d.symmetry.symmetric and d.symmetry.side == "right" and d.symmetry.region == "mouth"


def test_blend_of_two_emotions_is_mixed() -> None:
    d = describe(face(mouthSmileLeft=0.7, mouthSmileRight=0.7, browInnerUp=0.7, browOuterUpLeft=0.7,
                      browOuterUpRight=0.7, jawOpen=0.7))  # fmt: skip
    assert d.category == "mixed"
    assert set(d.emotions) == {"happiness", "surprise"}
    assert d.category_text.startswith("mixed: ") and "happiness" in d.emotion and "surprise" in d.emotion


def test_intensity_words_follow_the_one_table() -> None:
    scale = IntensityScale()
    assert [scale.word(v) for v in (0.0, 0.05, 0.2, 0.4, 0.7, 0.9)] == [
        None, "trace", "slight", "moderate", "strong", "extreme",
    ]  # fmt: skip
    assert describe(face(jawOpen=0.4)).region_text("jaw") == "jaw dropped open (moderate)"
    assert describe(face(jawOpen=0.1)).region_text("jaw") == NO_MOVEMENT  # below "slight": not mentioned
    custom = DescriptionConfig(intensity=IntensityScale(0.01, 0.02, 0.03, 0.04, 0.5), mention_from="trace")
    assert describe(face(jawOpen=0.1), custom).region_text("jaw") == "jaw dropped open (strong)"
    with pytest.raises(ConfigError):
        IntensityScale(slight=0.5, moderate=0.4)
    with pytest.raises(ConfigError):
        DescriptionConfig(mention_from="huge")


def test_sides_are_the_subjects_own() -> None:
    d = describe(face(browOuterUpLeft=0.7))
    assert d.region_text("brows") == "outer brow raised on the left (strong)"
    assert not d.symmetry.symmetric and d.symmetry.side == "left" and d.symmetry.region == "brows"
    assert d.symmetry.text == "asymmetric: stronger on the subject's left side, in the brows (outer brow raised)"
    both = describe(face(eyeBlinkLeft=0.9, eyeBlinkRight=0.4)).region_text("eyes")
    assert both == "eyelid closed on both sides (extreme left, moderate right)"


def test_gaze_is_described_as_a_direction() -> None:
    assert describe(face(eyeLookOutLeft=0.5, eyeLookInRight=0.5)).region_text("eyes") == (
        "gaze to the subject's left (moderate)"
    )
    assert (
        describe(face(eyeLookInLeft=0.7, eyeLookOutRight=0.7, eyeLookDownLeft=0.3, eyeLookDownRight=0.3)).region_text(
            "eyes"
        )
        == "gaze down and to the subject's right (strong)"
    )
    # Looking sideways moves the two eyes' channels differently: that is not facial asymmetry.
    assert describe(face(eyeLookOutLeft=0.9, eyeLookInRight=0.9)).symmetry.symmetric


def test_directional_channels_are_not_sides() -> None:
    d = describe(face(jawLeft=0.5, mouthRight=0.4))
    assert d.region_text("jaw") == "jaw shifted to the subject's left (moderate)"
    assert d.region_text("mouth") == "mouth shifted to the subject's right (moderate)"
    assert d.symmetry.symmetric


def test_action_units_take_the_max_of_their_channels() -> None:
    aus = action_units(face(mouthSmileLeft=0.3, mouthSmileRight=0.6, jawOpen=0.4))
    assert aus["AU12"] == 0.6 and aus["AU26"] == 0.4 and aus["AU1"] == 0.0


def test_missing_channels_count_as_no_movement() -> None:
    c = FaceCoefficients(np.zeros(61), frozenset({"tongueOut", "jawOpen"}))
    assert describe(c).category == "neutral"


def test_deterministic_and_parse_description_inverts_the_layout() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = FaceCoefficients.from_array(rng.random(52) ** 2)
        text = render_description(c)
        assert text == render_description(FaceCoefficients(c.values.copy()))
        assert parse_description(text) == describe(c.quantized(2)).sections()
    assert parse_description("Expression: joy\ngarbage line\n- Mouth: smile\n**Symmetry**: symmetric") == {
        "expression": "joy", "mouth": "smile", "symmetry": "symmetric",
    }  # fmt: skip


def test_user_template_directory_changes_only_the_layout(tmp_path) -> None:
    (tmp_path / "description.j2").write_text(
        "{{ expression }}|{% for r in regions %}{{ r.name }}={{ r.text }};{% endfor %}", encoding="utf-8"
    )
    c = face(jawOpen=0.5)
    text = render_description(c, TargetConfig(template_dir=str(tmp_path)))
    assert text.startswith("other facial activity") and "jaw=jaw dropped open (moderate);" in text
    (tmp_path / "description.j2").write_text("{{ no_such_field }}", encoding="utf-8")
    with pytest.raises(ConfigError, match="no_such_field"):
        render_description(c, TargetConfig(template_dir=str(tmp_path)))


def test_range_of_motion_recording_activates_every_region(shared_data) -> None:
    recording = read_llf(shared_data / "llf" / "alexdjulin__alex_rom_3.csv")
    active: set[str] = set()
    categories: set[str] = set()
    for c in recording.frames[::3]:
        d = describe(c.quantized(2))
        active.update(d.active_regions())
        categories.add(d.category)
    assert active == set(REGIONS)
    # A range-of-motion take passes through rest and several prototypical expressions.
    assert {"neutral", "happiness", "surprise", "sadness"} <= categories


def test_every_recording_has_non_trivial_descriptions(shared_data) -> None:
    for path in sorted((shared_data / "llf").glob("*.csv")):
        recording = read_llf(path)
        texts = {render_description(c) for c in recording.frames[::10]}
        assert len(texts) > 5, path.name
