"""The built-in avatar: every blendshape visibly moves its own region; pose, gaze and identities show."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.render import AvatarRenderer, Identity, Renderer, get_renderer
from semanticface.schema import BLENDSHAPES

NEUTRAL = FaceCoefficients.neutral()
SIZE = 256
# A pixel "changed" when its RGB channels moved by more than this in total (out of 765).
CHANGE = 40


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int32)


@pytest.fixture(scope="module", params=["flat", "shaded"])
def renderer(request) -> AvatarRenderer:
    return AvatarRenderer(request.param)


@pytest.fixture(scope="module")
def neutral_images(renderer) -> dict[int, np.ndarray]:
    return {ident: _pixels(renderer.render(NEUTRAL, identity=ident, size=SIZE)) for ident in (0, 7)}


@pytest.mark.parametrize("channel", BLENDSHAPES)
def test_each_blendshape_changes_inside_its_region(renderer, neutral_images, channel):
    for ident, base in neutral_images.items():
        image = _pixels(renderer.render(NEUTRAL.replace(**{channel: 1.0}), identity=ident, size=SIZE))
        diff = np.abs(image - base).sum(axis=2)
        x0, y0, x1, y1 = renderer.channel_region_box(channel, identity=ident, size=SIZE)
        inside = diff[y0:y1, x0:x1]
        changed_inside = int((inside > CHANGE).sum())
        # Meaningful: dozens of clearly changed pixels (a 2-px shift of a feature edge already gives ~20).
        assert changed_inside >= 25, f"{channel} (identity {ident}) changed only {changed_inside} pixels in its region"
        # Localised: almost all of the change is inside the channel's region.
        assert inside.sum() >= 0.9 * diff.sum(), f"{channel} (identity {ident}) changes pixels outside its region"


def test_region_boxes_follow_the_subjects_sides():
    avatar = AvatarRenderer()
    left = avatar.channel_region_box("eyeBlinkLeft")
    right = avatar.channel_region_box("eyeBlinkRight")
    # The subject's left eye is on the image's right, as in a photograph.
    assert left[0] > SIZE / 2 > right[2]
    assert avatar.channel_region_box("eyeBlink_L") == left  # any dialect
    with pytest.raises(ConfigError):
        avatar.channel_region_box("HeadYaw")


def test_head_pose_turns_the_face_and_mirrors():
    avatar = AvatarRenderer("flat", supersample=1)
    neutral = _pixels(avatar.render(NEUTRAL))
    for channel in ("HeadYaw", "HeadPitch", "HeadRoll"):
        moved = _pixels(avatar.render(NEUTRAL.replace(**{channel: 0.6})))
        assert (np.abs(moved - neutral).sum(axis=2) > CHANGE).sum() > 1500, channel
    # Identity 0 in flat style is left/right symmetric, so turning left is the mirror image of turning right.
    plus = _pixels(avatar.render(NEUTRAL.replace(HeadYaw=0.5)))
    minus = _pixels(avatar.render(NEUTRAL.replace(HeadYaw=-0.5)))
    assert np.abs(plus[:, ::-1] - minus).mean() < 0.1 * np.abs(plus - minus).mean()
    # Positive yaw turns the face towards the image's right: the eyes (dark lids, pupils) move right.
    _, y0, _, y1 = avatar.channel_region_box("eyeBlinkLeft")

    def features_x(image: np.ndarray) -> float:
        return float(np.nonzero(image[y0:y1].sum(axis=2) < 200)[1].mean())

    assert features_x(plus) > features_x(neutral) + 2 > features_x(minus) + 4


def test_eye_pose_moves_only_the_irises():
    avatar = AvatarRenderer("flat")
    base = _pixels(avatar.render(NEUTRAL))
    for channel, box_channel in (("LeftEyeYaw", "eyeLookOutLeft"), ("RightEyePitch", "eyeLookDownRight")):
        image = _pixels(avatar.render(NEUTRAL.replace(**{channel: 0.8})))
        diff = np.abs(image - base).sum(axis=2)
        x0, y0, x1, y1 = avatar.channel_region_box(box_channel)
        assert (diff[y0:y1, x0:x1] > CHANGE).sum() >= 25
        assert diff[y0:y1, x0:x1].sum() == diff.sum()


def test_eye_pose_agrees_with_eyelook_and_is_not_doubled():
    avatar = AvatarRenderer("flat")
    neutral = _pixels(avatar.render(NEUTRAL))
    by_shape = _pixels(avatar.render(NEUTRAL.replace(eyeLookInLeft=1.0)))
    # Live Link Face convention: positive LeftEyeYaw looks towards the subject's right, like eyeLookInLeft.
    by_pose = _pixels(avatar.render(NEUTRAL.replace(LeftEyeYaw=0.6)))
    assert np.abs(by_pose - by_shape).sum() < 0.2 * np.abs(by_shape - neutral).sum()
    # A capture that carries both (as the recordings do) shows the gaze once, not twice.
    both = _pixels(avatar.render(NEUTRAL.replace(eyeLookInLeft=1.0, LeftEyeYaw=0.6)))
    assert np.array_equal(both, by_shape)


def test_identities_are_deterministic_and_distinct():
    avatar = AvatarRenderer("shaded")
    a = _pixels(avatar.render(NEUTRAL, identity=3))
    assert np.array_equal(a, _pixels(avatar.render(NEUTRAL, identity=3)))
    assert np.array_equal(a, _pixels(avatar.render(NEUTRAL, identity=Identity.from_seed(3))))
    others = [_pixels(avatar.render(NEUTRAL, identity=k)) for k in (4, 5)]
    for other in others:
        assert np.abs(a - other).mean() > 5
    assert Identity.from_seed(3) != Identity.from_seed(4)


def test_styles_differ_and_sizes_are_respected():
    flat = AvatarRenderer("flat").render(NEUTRAL, size=128)
    shaded = AvatarRenderer("shaded").render(NEUTRAL, size=128)
    assert flat.size == shaded.size == (128, 128) and flat.mode == "RGB"
    assert np.abs(_pixels(flat) - _pixels(shaded)).mean() > 5


def test_missing_channels_render_as_rest():
    avatar = AvatarRenderer()
    missing = FaceCoefficients.from_array(np.zeros(61), missing=["tongueOut", "HeadYaw"])
    assert np.array_equal(_pixels(avatar.render(missing)), _pixels(avatar.render(NEUTRAL)))


def test_get_renderer_and_protocol():
    for name, style in (("avatar", "flat"), ("avatar-flat", "flat"), ("avatar-shaded", "shaded")):
        renderer = get_renderer(name)
        assert isinstance(renderer, Renderer) and renderer.style == style
    with pytest.raises(ConfigError):
        get_renderer("raytracer")
    with pytest.raises(ConfigError):
        AvatarRenderer("watercolour")
