"""Issue 12, item 8: a tracking-lost frame is not a neutral face.

``describe``/``render_target`` on a frame with every blendshape missing raise a typed error (or, asked for, give
an explicit "not observable" description); a frame with some channels missing says which regions are unknown
instead of "no visible movement".
"""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, parse_output, render_description, render_target
from semanticface.errors import CoefficientError, UnobservableFaceError
from semanticface.evaluation.consistency import section_agreement
from semanticface.llf import write_llf
from semanticface.schema import BLENDSHAPES, CHANNELS, POSE_CHANNELS, REGIONS
from semanticface.semantics import NO_MOVEMENT, UNKNOWN, describe

LOST = FaceCoefficients(np.zeros(61), frozenset(CHANNELS))


def test_a_tracking_lost_frame_raises_a_typed_error_everywhere() -> None:
    for call in (
        lambda: describe(LOST),
        lambda: render_target(LOST),
        lambda: render_target(LOST, TargetConfig(target_format="coefficients")),
        lambda: render_description(LOST),
    ):
        with pytest.raises(UnobservableFaceError, match="tracking lost"):
            call()
    assert issubclass(UnobservableFaceError, CoefficientError)
    # Pose alone read is no face either.
    pose_only = FaceCoefficients(np.zeros(61), frozenset(BLENDSHAPES))
    with pytest.raises(UnobservableFaceError):
        describe(pose_only)


def test_asked_for_it_a_lost_frame_is_described_as_not_observable() -> None:
    description = describe(LOST, unobservable="describe")
    assert not description.observable and description.category == "not observable"
    sections = description.sections()
    assert all(sections[r] == UNKNOWN for r in REGIONS)
    assert all("not observable" in sections[name] for name in ("expression", "emotion", "symmetry"))
    assert NO_MOVEMENT not in " ".join(sections.values()) and "neutral" not in " ".join(sections.values())


def test_regions_with_missing_channels_say_so_not_no_visible_movement() -> None:
    missing = frozenset({"tongueOut", "jawOpen", "mouthClose", *POSE_CHANNELS})
    face = FaceCoefficients(np.zeros(61), missing)
    description = describe(face)
    assert description.region_text("tongue") == UNKNOWN
    assert description.region_text("jaw") == "no visible movement in what was read; unknown in part (jawOpen not read)"
    assert description.region_text("mouth").endswith("(mouthClose not read)")
    assert description.region_text("brows") == NO_MOVEMENT  # fully read, truly still
    assert set(description.unknown_regions()) == {"tongue", "jaw", "mouth"}
    # With movement in what was read, the movement is kept and the gap is named.
    smiling = FaceCoefficients(np.zeros(61), missing).replace(mouthSmileLeft=0.8, mouthSmileRight=0.8)
    text = describe(smiling).region_text("mouth")
    assert text.startswith("lip corner pulled up on both sides") and "mouthClose not read" in text
    target = render_target(smiling)
    assert "- Tongue: unknown (not read)" in target
    assert "- Jaw: no visible movement in what was read; unknown in part (jawOpen not read)" in target


def test_symmetry_ignores_pairs_with_a_side_not_read() -> None:
    face = FaceCoefficients.neutral().replace(eyeBlinkLeft=0.9)
    assert not describe(face).symmetry.symmetric
    half_read = FaceCoefficients(face.values, frozenset({"eyeBlinkRight"}))
    assert describe(half_read).symmetry.symmetric


def test_a_lost_frame_in_a_recording_stays_lost(tmp_path) -> None:
    from semanticface.llf import read_llf

    path = write_llf(tmp_path / "take.csv", [FaceCoefficients.neutral()] * 3)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ",0"  # tracking lost on the second frame
    path.write_text("\n".join(lines) + "\n")
    recording = read_llf(path, lost="flag")
    with pytest.raises(UnobservableFaceError):
        render_target(recording.frame(1))


def test_consistency_checks_only_what_the_numbers_settle() -> None:
    truth = FaceCoefficients.neutral().replace(jawOpen=0.6)
    text = render_target(truth)
    parsed = parse_output(text.replace('"jawOpen": 0.60, ', ""))
    agreement = section_agreement(parsed.description, parsed.coefficients)
    assert "jaw" not in agreement and agreement["brows"]
