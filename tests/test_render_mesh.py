"""The mesh renderer: numpy rasteriser, OBJ/npz and GLB rigs, dialect mapping, ICT-FaceKit treatment."""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.render import get_renderer
from semanticface.render.gltf import read_gltf, write_glb
from semanticface.render.mesh import MeshRenderer, load_gltf_rig, load_ict_rig, load_obj_npz_rig, map_target_names
from semanticface.render.raster import rasterize

NEUTRAL = FaceCoefficients.neutral()


def _grid_mesh(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A bumped square sheet facing +z (counter-clockwise triangles)."""
    u = np.linspace(-10, 10, n)
    xx, yy = np.meshgrid(u, u)
    zz = 3 * np.exp(-(xx**2 + yy**2) / 40)
    vertices = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1).astype(np.float32)
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            tris += [(a, b, e), (a, e, d)]
    return vertices, np.array(tris, dtype=np.int32)


def test_rasterize_covers_the_triangle_area_and_keeps_the_nearest():
    xy = np.array([[10, 10], [10, 90], [90, 90], [20, 20], [20, 60], [60, 60]], dtype=float)
    depth = np.array([5, 5, 5, 1, 1, 1], dtype=float)
    # Counter-clockwise on screen with y up = clockwise in pixel rows; both triangles face the viewer.
    tris = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int32)
    frags = rasterize(xy, depth, tris, 100, 100)
    assert abs((frags.triangle >= 0).sum() - 0.5 * 80 * 80) < 80  # area of the big triangle, up to its edges
    assert (frags.triangle == 1).sum() > 0.9 * 0.5 * 40 * 40  # the nearer small triangle wins where they overlap
    assert np.allclose(frags.bary[frags.triangle >= 0].sum(axis=1), 1, atol=1e-5)
    # Reversed winding faces away and is culled, unless culling is off.
    back = rasterize(xy, depth, tris[:, ::-1].copy(), 100, 100)
    assert (back.triangle >= 0).sum() == 0
    assert (rasterize(xy, depth, tris[:, ::-1].copy(), 100, 100, cull_backfaces=False).triangle >= 0).sum() > 3000


def test_target_names_map_through_every_dialect():
    names = ["eyeBlink_L", "EyeBlinkRight", "jawOpen", "browInnerUp_L", "browInnerUp_R", "cheekRaiser_L", "mystery"]
    mapping, unused = map_target_names(names)
    assert mapping["eyeBlinkLeft"] == (0,) and mapping["eyeBlinkRight"] == (1,) and mapping["jawOpen"] == (2,)
    assert mapping["browInnerUp"] == (3, 4)  # one ARKit value drives both ICT halves
    assert unused == ("cheekRaiser_L", "mystery")


def test_glb_round_trip_and_render(tmp_path):
    vertices, triangles = _grid_mesh()
    deltas = np.zeros((2, len(vertices), 3), dtype=np.float32)
    deltas[0, :, 2] = 2.0 * (vertices[:, 1] > 0)  # "jawOpen" lifts the top half towards the camera
    deltas[1, :, 0] = 1.5  # "JawLeft" (Live Link Face spelling) shifts everything sideways
    path = write_glb(tmp_path / "sheet.glb", vertices, triangles, ["jawOpen", "JawLeft"], deltas)
    mesh = read_gltf(path)
    assert np.array_equal(mesh.vertices, vertices) and np.array_equal(mesh.triangles, triangles)
    assert np.array_equal(mesh.deltas, deltas) and mesh.target_names == ("jawOpen", "JawLeft")
    rig = load_gltf_rig(path)
    assert set(rig.channel_targets) == {"jawOpen", "jawLeft"}
    moved = rig.deform(NEUTRAL.replace(jawOpen=0.5, jawLeft=1.0))
    assert np.allclose(moved - vertices, 0.5 * deltas[0] + deltas[1])
    renderer = MeshRenderer(rig)
    base = np.asarray(renderer.render(NEUTRAL, size=96), dtype=int)
    shifted = np.asarray(renderer.render(NEUTRAL.replace(jawLeft=1.0), size=96), dtype=int)
    assert base.shape == (96, 96, 3) and (np.abs(base - shifted).sum(axis=2) > 30).sum() > 20
    # get_renderer accepts a GLB path directly
    assert get_renderer("mesh", mesh_dir=path).rig.target_names == rig.target_names


def test_bad_mesh_files_raise_dataset_errors(tmp_path):
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF\x02\x00\x00\x00\x10\x00\x00\x00")
    with pytest.raises(DatasetError, match="bad.glb"):
        read_gltf(bad)
    obj = tmp_path / "m.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    npz = tmp_path / "d.npz"
    np.savez(npz, deltas=np.zeros((1, 4, 3)), names=np.array(["jawOpen"]))
    with pytest.raises(DatasetError, match="does not match"):
        load_obj_npz_rig(obj, npz)
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    with pytest.raises(DatasetError, match="vertex that does not exist"):
        load_obj_npz_rig(obj, npz)


@pytest.fixture(scope="module")
def ict(shared_data):
    return load_ict_rig(shared_data / "meshes" / "ict_facekit")


def test_ict_rig_mapping_is_documented(ict):
    assert ict.unsupported == ("tongueOut",)
    assert set(ict.unused_targets) == {"cheekRaiser_L", "cheekRaiser_R", "PupilDilate_L", "PupilDilate_R"}
    assert len(ict.channel_targets["browInnerUp"]) == 2 and len(ict.channel_targets["cheekPuff"]) == 2
    # mouthClose only closes lips as far as the jaw is open (ICT sculpted it on top of jawOpen).
    assert np.allclose(ict.deform(NEUTRAL.replace(mouthClose=1.0)), ict.vertices)
    open_jaw = ict.deform(NEUTRAL.replace(jawOpen=0.6))
    sealed = ict.deform(NEUTRAL.replace(jawOpen=0.6, mouthClose=0.6))
    assert np.abs(sealed - open_jaw).max() > 1.0


def test_ict_renders_expression_and_pose(ict, tmp_path):
    renderer = MeshRenderer(ict)
    base = np.asarray(renderer.render(NEUTRAL, size=128), dtype=int)
    skin = (np.abs(base - base[0, 0]).sum(axis=2) > 30).mean()
    assert 0.25 < skin < 0.8  # a head fills a good part of the frame
    jaw = np.abs(np.asarray(renderer.render(NEUTRAL.replace(jawOpen=1.0), size=128), dtype=int) - base).sum(axis=2)
    rows = np.nonzero(jaw > 40)[0]
    assert rows.size > 100 and rows.mean() > 64  # the change is in the lower half
    brow = np.abs(np.asarray(renderer.render(NEUTRAL.replace(browInnerUp=1.0), size=128), dtype=int) - base)
    assert np.nonzero(brow.sum(axis=2) > 40)[0].mean() < 64
    yaw = np.abs(np.asarray(renderer.render(NEUTRAL.replace(HeadYaw=0.5), size=128), dtype=int) - base).sum(axis=2)
    assert (yaw > 40).sum() > 1000
    gaze = np.abs(np.asarray(renderer.render(NEUTRAL.replace(LeftEyeYaw=0.8), size=128), dtype=int) - base)
    assert 5 < (gaze.sum(axis=2) > 40).sum() < 300  # only the eye changes
    assert np.nonzero(gaze.sum(axis=2) > 40)[1].min() > 64  # the subject's left eye is on the image's right
    # Pose that merely repeats the eyeLook shapes (as captures do) adds nothing.
    look = renderer.render(NEUTRAL.replace(eyeLookInLeft=1.0), size=128)
    both = renderer.render(NEUTRAL.replace(eyeLookInLeft=1.0, LeftEyeYaw=0.6), size=128)
    assert np.array_equal(np.asarray(look), np.asarray(both))
    # A GLB written from ICT data deforms identically to the OBJ + npz rig.
    keep = [ict.target_names.index(n) for n in ("jawOpen", "eyeBlink_L", "browInnerUp_L", "browInnerUp_R")]
    path = write_glb(tmp_path / "ict.glb", ict.vertices, ict.triangles, [ict.target_names[k] for k in keep],
                     ict.deltas[keep])  # fmt: skip
    glb = load_gltf_rig(path)
    coeffs = NEUTRAL.replace(jawOpen=0.7, eyeBlinkLeft=0.5, browInnerUp=0.4)
    assert np.allclose(glb.deform(coeffs), ict.deform(coeffs), atol=1e-5)
