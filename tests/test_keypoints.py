"""Exact 2-D keypoints of rendered faces: where the renderers draw them, how they move, and dataset targets."""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.render import get_renderer
from semanticface.render.avatar import KEYPOINT_NAMES

NEUTRAL = FaceCoefficients.neutral()


def _at(points: np.ndarray, name: str) -> np.ndarray:
    return points[KEYPOINT_NAMES.index(name)]


@pytest.mark.parametrize("style", ["flat", "shaded"])
def test_avatar_keypoints_sit_on_what_is_drawn(style):
    renderer = get_renderer(f"avatar-{style}")
    for identity in range(4):
        points = renderer.keypoints(NEUTRAL, identity=identity, size=224)
        assert points.shape == (len(KEYPOINT_NAMES), 2)
        assert ((points > 0) & (points < 224)).all()
        image = np.asarray(renderer.render(NEUTRAL, identity=identity, size=224)).astype(int)
        for side in ("Left", "Right"):  # the pupil is drawn (near-black) at the iris keypoint
            x, y = np.round(_at(points, f"eye{side}_iris")).astype(int)
            assert image[y, x].sum() < 150, (identity, side, image[y, x])
        # the subject's left eye is on the image's right
        assert _at(points, "eyeLeft_iris")[0] > _at(points, "eyeRight_iris")[0]


def test_avatar_keypoints_move_with_their_channels_and_scale_with_the_image():
    renderer = get_renderer("avatar")
    base = renderer.keypoints(NEUTRAL, identity=1, size=112)
    assert np.allclose(renderer.keypoints(NEUTRAL, identity=1, size=224), 2 * base)
    moved = renderer.keypoints(NEUTRAL.replace(jawOpen=0.8), identity=1, size=112) - base
    assert moved[KEYPOINT_NAMES.index("mouth_lower_2"), 1] > 3  # image y grows downwards
    assert moved[KEYPOINT_NAMES.index("outline_6"), 1] > 3  # the chin drops
    brows = [i for i, n in enumerate(KEYPOINT_NAMES) if n.startswith("brow")]
    assert np.abs(moved[brows]).max() < 1e-9
    blink = renderer.keypoints(NEUTRAL.replace(eyeBlinkLeft=1.0), identity=1, size=112) - base
    assert blink[KEYPOINT_NAMES.index("eyeLeft_upper_2"), 1] > 1
    assert np.abs(blink[[i for i, n in enumerate(KEYPOINT_NAMES) if n.startswith("eyeRight")]]).max() < 1e-9
    look = renderer.keypoints(NEUTRAL.replace(eyeLookOutLeft=1.0), identity=1, size=112) - base
    assert look[KEYPOINT_NAMES.index("eyeLeft_iris"), 0] > 1  # looking out to the subject's left: image right
    turned = renderer.keypoints(NEUTRAL.replace(HeadYaw=0.5), identity=1, size=112) - base
    assert np.abs(turned[KEYPOINT_NAMES.index("nose_tip"), 0]) > 2


@pytest.fixture(scope="module")
def mesh(shared_data):
    return get_renderer("mesh", mesh_dir=shared_data / "meshes" / "ict_facekit")


def test_mesh_keypoints_follow_the_render(mesh):
    points = mesh.keypoints(NEUTRAL, size=160)
    assert points.shape == (len(mesh.keypoint_vertices), 2) and len(mesh.keypoint_vertices) == 66
    assert ((points > 0) & (points < 160)).all()
    image = np.asarray(mesh.render(NEUTRAL, size=160)).astype(int)
    for x, y in np.round(points[-2:]).astype(int):  # the pupils are drawn dark at the last two keypoints
        assert image[y, x].sum() < 200, image[y, x]
    background = np.array(image[0, 0])
    inside = [np.abs(image[y, x] - background).sum() > 30 for x, y in np.round(points).astype(int)]
    assert np.mean(inside) > 0.95  # on the face, not the background
    opened = mesh.keypoints(NEUTRAL.replace(jawOpen=0.8), size=160) - points
    assert opened[:, 1].max() > 4 and np.median(np.abs(opened[:, 1])) < 1  # the jaw moves, the forehead does not
    turned = mesh.keypoints(NEUTRAL.replace(HeadYaw=0.5), size=160) - points
    assert np.median(np.abs(turned[:, 0])) > 3


def test_dataset_targets_mix_renderers_with_a_mask(shared_data, tmp_path):
    from semanticface.render.keypoints import keypoint_targets
    from semanticface.rows import row_to_coefficients
    from semanticface.synth import SynthConfig, build_dataset

    avatar = build_dataset(SynthConfig(n=6, size=48, seed=0, identities=2, splits={"train": 1.0}), cache_dir=str(tmp_path / "a"))["train"]  # fmt: skip
    values, mask = keypoint_targets(avatar)
    assert values.shape == mask.shape == (6, 2 * len(KEYPOINT_NAMES)) and mask.all()
    row = avatar[0]
    exact = get_renderer(row["renderer"]).keypoints(row_to_coefficients(row), identity=row["identity"], size=48)
    assert np.allclose(values[0], exact.reshape(-1) / 48, atol=1e-6)
    import datasets

    mesh_dir = str(shared_data / "meshes" / "ict_facekit")
    meshes = build_dataset(SynthConfig(renderer="mesh", mesh_dir=mesh_dir, n=3, size=48, seed=0, identities=1, splits={"train": 1.0}), cache_dir=str(tmp_path / "m"))["train"]  # fmt: skip
    both = datasets.concatenate_datasets([avatar, meshes])
    values, mask = keypoint_targets(both, mesh_dir=mesh_dir)
    avatar_width = 2 * len(KEYPOINT_NAMES)
    assert values.shape[1] == avatar_width + 2 * 66
    assert mask[:6, :avatar_width].all() and not mask[:6, avatar_width:].any()
    assert mask[6:, avatar_width:].all() and not mask[6:, :avatar_width].any()
    with pytest.raises(DatasetError, match="'renderer' column"):
        keypoint_targets(avatar.remove_columns("renderer"))
    with pytest.raises(DatasetError, match="row 0: renderer 'photo'"):
        keypoint_targets(avatar.map(lambda r: {"renderer": "photo"}))
