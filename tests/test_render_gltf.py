"""Rigs as tools export them: a meshopt-compressed, quantized GLB with several meshes, node transforms, sparse
morph targets and `_L/_R` names (built by tests/gltf_builder.py from the ICT head), and a per-shape OBJ folder."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.render.gltf import read_gltf
from semanticface.render.mesh import MeshRenderer, load_gltf_rig, load_ict_rig
from semanticface.schema import BLENDSHAPES

pytest.importorskip("pygltflib", reason="glTF rigs need pygltflib (a core dependency)")
pytest.importorskip("meshoptimizer", reason="meshopt-compressed rigs need meshoptimizer (a core dependency)")

from gltf_builder import build_ict_glb  # noqa: E402

NEUTRAL = FaceCoefficients.neutral()
SIZE = 256


@pytest.fixture(scope="module")
def ict(shared_data):
    return load_ict_rig(shared_data / "meshes" / "ict_facekit")


@pytest.fixture(scope="module")
def facecap_glb(ict, tmp_path_factory):
    path = tmp_path_factory.mktemp("glb") / "facecap_head.glb"
    expected = build_ict_glb(ict, path)
    return path, expected


def test_compressed_quantized_multi_mesh_glb_reads_in_world_space(ict, facecap_glb):
    path, expected = facecap_glb
    raw = path.read_bytes()
    assert b"EXT_meshopt_compression" in raw and b"KHR_mesh_quantization" in raw and b'"sparse"' in raw
    mesh = read_gltf(path)
    # Every part is placed by its node transforms: the world positions are ICT's, in metres, Y-up.
    assert mesh.vertices.shape == expected.shape
    assert np.abs(mesh.vertices - expected).max() < 2e-5  # int16 quantization of a ~0.1 m part
    assert [name for name, _, _ in mesh.parts] == ["Head", "Teeth", "Eye_L", "Eye_R"]
    head_name, start, end = mesh.parts[0]
    assert mesh.focus.tolist() == list(range(start, end))  # the head (most ARKit targets) is framed
    # Targets merged by name across meshes; the eye mesh's sparse target (ICT's PupilDilate_L) moves only it.
    rig = load_gltf_rig(path)
    assert rig.unsupported == ("tongueOut",)
    eye_start, eye_end = mesh.parts[2][1:]
    pupil = np.abs(mesh.deltas[list(mesh.target_names).index("PupilDilate_L")]).max(axis=1)
    assert pupil[eye_start:eye_end].max() > 1e-4 and pupil[:eye_start].max() == 0 == pupil[eye_end:].max()
    jaw = np.abs(mesh.deltas[list(mesh.target_names).index("jawOpen")]).max(axis=1)
    assert jaw[mesh.parts[1][1] : mesh.parts[1][2]].max() > 0.005  # the teeth mesh's own jawOpen target
    coeffs = NEUTRAL.replace(jawOpen=0.7, eyeBlinkLeft=0.5, browInnerUp=0.4, eyeLookInLeft=1.0)
    ict_moved = _ict_parts(ict, ict.deform(coeffs)) * 0.01
    assert np.abs(rig.deform(coeffs) - ict_moved).max() < 5e-5


def _ict_parts(ict, vertices):
    from gltf_builder import PARTS

    out = []
    for materials in PARTS.values():
        mats = [ict.material_names.index(m) for m in materials]
        out.append(vertices[np.unique(ict.triangles[np.isin(ict.triangle_material, mats)])])
    return np.concatenate(out)


def test_glb_in_metres_renders_a_centred_face_like_ict_and_every_channel_shows(facecap_glb, ict, tmp_path):
    path, _ = facecap_glb
    renderer = MeshRenderer(load_gltf_rig(path))
    base = np.asarray(renderer.render(NEUTRAL, size=SIZE), dtype=int)
    background = base[0, 0]
    face = np.abs(base - background).sum(axis=2) > 30
    assert face.mean() >= 0.30, f"the face covers only {face.mean():.0%} of the image"
    ys, xs = np.nonzero(face)
    assert abs(xs.mean() - SIZE / 2) < SIZE * 0.08 and abs(ys.mean() - SIZE / 2) < SIZE * 0.15
    lit = base[face].mean(axis=1)
    assert lit.std() > 10 and lit.max() > 150  # shaded, not a flat silhouette
    ict_face = np.abs(np.asarray(MeshRenderer(ict).render(NEUTRAL, size=SIZE), int) - background).sum(axis=2) > 30
    assert abs(face.mean() - ict_face.mean()) < 0.05  # framed like ICT in centimetres
    sheet = [renderer.render(NEUTRAL, size=128)]
    for channel in BLENDSHAPES:
        box = renderer.channel_region_box(channel, size=SIZE)
        if channel == "tongueOut":
            assert box is None  # the ICT head has no tongue shape
            continue
        reference, start = base, NEUTRAL
        if channel == "mouthClose":  # ARKit's mouthClose closes lips the jaw has opened: alone it does nothing
            start = NEUTRAL.replace(jawOpen=0.6)
            reference = np.asarray(renderer.render(start, size=SIZE), dtype=int)
        image = renderer.render(start.replace(**{channel: 1.0}), size=SIZE)
        diff = np.abs(np.asarray(image, int) - reference).sum(axis=2) > 30
        x0, y0, x1, y1 = box
        inside = diff[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2].sum()
        assert inside >= 10, f"{channel} changed only {inside} pixels inside its region {box}"
        if channel != "mouthClose":  # its box is drawn at rest; with the jaw open the lips sit below it
            assert inside >= 0.9 * diff.sum(), f"{channel} changes pixels outside its region {box}"
        if channel in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp", "eyeLookInLeft"):
            sheet.append(image.resize((128, 128)))
    from PIL import Image

    contact = Image.new("RGB", (128 * len(sheet), 128))
    for i, image in enumerate(sheet):
        contact.paste(image, (128 * i, 0))
    contact.save(tmp_path / "glb_contact_sheet.png")


def test_gaze_turns_separate_eye_nodes(facecap_glb):
    path, _ = facecap_glb
    renderer = MeshRenderer(load_gltf_rig(path))
    assert all(eye is not None for eye in renderer._eyes.values())  # found from the Eye_L / Eye_R nodes
    base = np.asarray(renderer.render(NEUTRAL, size=128), dtype=int)
    gaze = np.abs(np.asarray(renderer.render(NEUTRAL.replace(LeftEyeYaw=0.8), size=128), dtype=int) - base)
    changed = gaze.sum(axis=2) > 40
    assert 5 < changed.sum() < 300 and np.nonzero(changed)[1].min() > 64  # only the subject's left eye


def test_required_extension_that_cannot_be_read_is_named(ict, tmp_path):
    path = tmp_path / "draco.glb"
    build_ict_glb(ict, path, meshopt=False, quantize=False, required_extra=("KHR_draco_mesh_compression",))
    with pytest.raises(DatasetError, match=r"draco\.glb: requires the glTF extension 'KHR_draco_mesh_compression'"):
        read_gltf(path)
    plain = tmp_path / "plain.glb"
    expected = build_ict_glb(ict, plain, meshopt=False, quantize=False)
    assert np.abs(read_gltf(plain).vertices - expected).max() < 1e-6  # float, uncompressed: exact


def test_meshopt_exponential_filter_decodes(ict, tmp_path):
    path = tmp_path / "exp.glb"
    expected = build_ict_glb(ict, path, quantize=False, exponential=True)
    assert b'"EXPONENTIAL"' in path.read_bytes()
    mesh = read_gltf(path)
    assert np.abs(mesh.vertices - expected).max() < 1e-6  # 24-bit mantissas: float precision
    coeffs = NEUTRAL.replace(jawOpen=0.7, eyeBlinkLeft=0.5)
    assert np.abs(load_gltf_rig(path).deform(coeffs) - _ict_parts(ict, ict.deform(coeffs)) * 0.01).max() < 1e-6


@pytest.mark.skipif(shutil.which("gltf-transform") is None, reason="gltf-transform CLI (npm) not on PATH")
def test_a_file_compressed_by_gltf_transform_reads_the_same(ict, tmp_path):
    plain = tmp_path / "plain.glb"
    expected = build_ict_glb(ict, plain, meshopt=False, quantize=False)
    packed = tmp_path / "packed.glb"
    subprocess.run(["gltf-transform", "meshopt", str(plain), str(packed)], check=True, capture_output=True)
    assert b"EXT_meshopt_compression" in packed.read_bytes()
    mesh = read_gltf(packed)
    # gltf-transform quantizes, reorders and splits vertex data per primitive: compare bounds and renders.
    assert np.allclose(mesh.vertices.min(axis=0), expected.min(axis=0), atol=2e-4)
    assert np.allclose(mesh.vertices.max(axis=0), expected.max(axis=0), atol=2e-4)
    packed_renderer, plain_renderer = MeshRenderer(load_gltf_rig(packed)), MeshRenderer(load_gltf_rig(plain))
    assert set(packed_renderer.rig.channel_targets) == set(plain_renderer.rig.channel_targets)
    for face in (NEUTRAL, NEUTRAL.replace(jawOpen=1.0, eyeBlinkLeft=1.0, mouthSmileRight=1.0)):
        a = np.asarray(packed_renderer.render(face, size=128), dtype=float)
        b = np.asarray(plain_renderer.render(face, size=128), dtype=float)
        assert np.abs(a - b).mean() < 2.0


def test_a_folder_of_per_shape_obj_files_is_a_rig(ict, tmp_path):
    from semanticface.render import get_renderer
    from semanticface.render.mesh import load_obj_folder_rig

    def write_obj(path, vertices):
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in ict.triangles]
        path.write_text("\n".join(lines) + "\n")

    folder = tmp_path / "shapes"
    folder.mkdir()
    write_obj(folder / "neutral.obj", ict.vertices)
    shapes = {"jawOpen": "jawOpen", "EyeBlinkLeft": "eyeBlink_L", "mouthSmile_R": "mouthSmile_R"}
    for file_name, ict_name in shapes.items():
        write_obj(folder / f"{file_name}.obj", ict.vertices + ict.deltas[ict.target_names.index(ict_name)])
    (folder / "notes_backup.obj").write_text((folder / "neutral.obj").read_text())
    rig = load_obj_folder_rig(folder)
    assert set(rig.channel_targets) == {"jawOpen", "eyeBlinkLeft", "mouthSmileRight"}
    assert rig.unused_targets == ("notes_backup",)
    coeffs = NEUTRAL.replace(jawOpen=0.5, eyeBlinkLeft=1.0, mouthSmileRight=0.3)
    reference = ict.deform(NEUTRAL.replace(jawOpen=0.5, eyeBlinkLeft=1.0, mouthSmileRight=0.3))
    assert np.abs(rig.deform(coeffs) - reference).max() < 1e-4
    assert get_renderer("mesh", mesh_dir=folder).rig.target_names == rig.target_names
    (folder / "jawLeft.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(DatasetError, match=r"jawLeft\.obj: 3 vertices, but neutral\.obj has"):
        load_obj_folder_rig(folder)
