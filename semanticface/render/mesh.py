"""Shaded rendering of ARKit-rigged meshes: a neutral mesh plus one vertex delta per blendshape.

Rigs load from an OBJ + npz pair in ICT-FaceKit's layout (``generic_neutral_mesh.obj`` and
``ict_expression_deltas.npz`` with ``neutral``, ``deltas`` and ``names``) or from glTF/GLB morph targets. Target
names go through the schema's dialects (``eyeBlink_L``, ``EyeBlinkLeft`` and ``eyeBlinkLeft`` all work).

ICT-FaceKit specifics, and how they are treated:

* ``browInnerUp`` and ``cheekPuff`` are split into ``_L``/``_R`` halves. Both halves are driven by the single
  ARKit value, so ``browInnerUp = 1`` raises both inner brows fully.
* ``mouthClose`` is a corrective sculpted on top of ``jawOpen``: on its own it pushes the lower lip up through
  the upper lip. ARKit defines mouthClose the same way (lips closing while the jaw is open), so by default its
  weight is clamped to ``min(mouthClose, jawOpen)`` (``mouth_close="clamp_to_jaw"``): with the jaw open the lips
  seal, with the jaw shut it has no effect. ``mouth_close="as_is"`` applies the raw shape.
* The extra ``cheekRaiser`` and ``PupilDilate`` shapes are not ARKit channels and are left unused
  (listed in :attr:`MeshRig.unused_targets`).
* There is no ``tongueOut`` shape, so tongueOut has no effect on the ICT head (:attr:`MeshRig.unsupported`).

Head pose rotates the mesh about a neck pivot. Eye-look blendshapes act through their deltas; eye pose channels
rotate the eyeballs (iris/sclera materials) about their centres by what they ask beyond the blendshapes
(:func:`~semanticface.render.camera.eye_pose_excess`), so captures that carry both are not doubled.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.render.camera import (
    FACE_DISTANCE_PER_HEIGHT,
    Camera,
    Lighting,
    eye_pose_excess,
    head_angles,
    rotation_matrix,
)
from semanticface.render.gltf import read_gltf
from semanticface.render.raster import rasterize, vertex_normals
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX, canonical_name, map_target_names

# Overlay materials of ICT-FaceKit that are meant to be alpha-blended; drawn opaque they hide the eyes.
HIDDEN_MATERIALS = frozenset({"M_EyeOcclusion", "M_LacrimalFluid", "M_EyeBlend"})

# Albedo per material name (matched case-insensitively by substring); skin comes from the identity.
_MATERIAL_COLOURS: tuple[tuple[str, tuple[float, float, float] | None], ...] = (
    ("teeth", (0.93, 0.91, 0.84)),
    ("gums", (0.72, 0.33, 0.35)),
    ("tongue", (0.72, 0.33, 0.35)),
    ("sclera", (0.95, 0.94, 0.92)),
    ("iris", None),  # identity eye colour, pupil darkened
    ("lash", (0.22, 0.16, 0.13)),
)

SKIN_TONES: tuple[tuple[float, float, float], ...] = (
    (0.96, 0.80, 0.69),
    (0.90, 0.72, 0.58),
    (0.80, 0.60, 0.45),
    (0.66, 0.46, 0.33),
    (0.50, 0.34, 0.24),
    (0.36, 0.24, 0.17),
)
EYE_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.30, 0.20, 0.12),
    (0.22, 0.38, 0.55),
    (0.30, 0.42, 0.28),
    (0.45, 0.32, 0.18),
)


@dataclass
class MeshRig:
    """A neutral mesh and its blendshape deltas, with each ARKit channel mapped to the deltas it drives."""

    vertices: np.ndarray  # (V, 3) neutral positions
    triangles: np.ndarray  # (F, 3) int32, counter-clockwise = outward
    triangle_material: np.ndarray  # (F,) int32 index into material_names (-1 = none)
    material_names: tuple[str, ...]
    deltas: np.ndarray  # (K, V, 3)
    target_names: tuple[str, ...]
    channel_targets: dict[str, tuple[int, ...]]  # canonical channel -> delta indices it drives at full weight
    unused_targets: tuple[str, ...] = ()
    mouth_close: str = "clamp_to_jaw"
    focus: np.ndarray | None = None  # vertices the camera frames (a GLB's head mesh); None: the "face" material

    @property
    def unsupported(self) -> tuple[str, ...]:
        """ARKit blendshapes this rig has no shape for (they render as neutral)."""
        return tuple(n for n in BLENDSHAPES if n not in self.channel_targets)

    def target_weights(self, coefficients: FaceCoefficients) -> np.ndarray:
        """Weight of every delta for the given coefficients (missing channels count as 0)."""
        values = np.nan_to_num(coefficients.blendshapes)
        weights = np.zeros(len(self.target_names))
        for channel, targets in self.channel_targets.items():
            value = float(values[CHANNEL_INDEX[channel]])
            if channel == "mouthClose" and self.mouth_close == "clamp_to_jaw":
                value = min(value, float(values[CHANNEL_INDEX["jawOpen"]]))
            weights[list(targets)] = value
        return weights

    def deform(self, coefficients: FaceCoefficients) -> np.ndarray:
        """Vertex positions with the blendshapes applied (pose is applied by the renderer)."""
        weights = self.target_weights(coefficients)
        active = np.flatnonzero(weights)
        if active.size == 0:
            return self.vertices.copy()
        return self.vertices + np.tensordot(weights[active].astype(np.float32), self.deltas[active], axes=1)

    def material_vertices(self, needle: str) -> np.ndarray:
        """Indices of vertices used by triangles whose material name contains ``needle`` (case-insensitive)."""
        mats = [i for i, n in enumerate(self.material_names) if needle.lower() in n.lower()]
        if not mats:
            return np.zeros(0, dtype=np.int64)
        return np.unique(self.triangles[np.isin(self.triangle_material, mats)])


MESH_KEYPOINTS = 64  # face vertices spread over the front of the face (plus one pupil centre per eye)


def _keypoint_vertices(rig: MeshRig, face: np.ndarray, eyes: dict[str, Any]) -> np.ndarray:
    """A fixed, well-spread set of front-facing face vertices (farthest-point sampling from the face's front-most
    vertex over the front 60% of its depth), then the front-most vertex of each eyeball (the pupil centre)."""
    face = face if face.size else np.arange(len(rig.vertices))
    pts = rig.vertices[face]
    front = face[pts[:, 2] >= np.quantile(pts[:, 2], 0.4)]
    chosen = [int(front[np.argmax(rig.vertices[front, 2])])]
    distance = np.linalg.norm(rig.vertices[front] - rig.vertices[chosen[0]], axis=1)
    while len(chosen) < min(MESH_KEYPOINTS, len(front)):
        chosen.append(int(front[np.argmax(distance)]))
        distance = np.minimum(distance, np.linalg.norm(rig.vertices[front] - rig.vertices[chosen[-1]], axis=1))
    for side in ("left", "right"):
        if eyes.get(side) is not None:
            idx = eyes[side][0]
            chosen.append(int(idx[np.argmax(rig.vertices[idx, 2])]))
    return np.asarray(chosen, dtype=np.int64)


def _hidden(material: str) -> bool:
    return any(name in material for name in HIDDEN_MATERIALS)


def _side_vertices(rig: MeshRig, side: str) -> np.ndarray:
    """Vertices of parts named for one side: "Left"/"right" anywhere, or a "_L"/"_R"/".L" suffix."""
    suffixes = ("_l", ".l", "_left") if side == "left" else ("_r", ".r", "_right")
    chosen = [
        i
        for i, name in enumerate(rig.material_names)
        if side in name.lower() or any(part.lower().endswith(suffixes) for part in name.split("/"))
    ]
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.unique(rig.triangles[np.isin(rig.triangle_material, chosen)])


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Vertices, triangles (polygons fan-split), per-triangle material index and material names of an OBJ."""
    path = Path(path)
    vertices: list[list[float]] = []
    tris: list[tuple[int, int, int]] = []
    tri_mat: list[int] = []
    materials: list[str] = []
    current = -1
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DatasetError(f"{path}: cannot read OBJ ({error.strerror})") from error
    with handle:
        for line_no, line in enumerate(handle, start=1):
            if line.startswith("v "):
                parts = line.split()
                try:
                    vertices.append([float(parts[1]), float(parts[2]), float(parts[3])])
                except (IndexError, ValueError):
                    raise DatasetError(f"{path}, line {line_no}: malformed vertex {line.strip()!r}") from None
            elif line.startswith("f "):
                try:
                    idx = [int(p.split("/")[0]) for p in line.split()[1:]]
                except ValueError:
                    raise DatasetError(f"{path}, line {line_no}: malformed face {line.strip()!r}") from None
                idx = [i - 1 if i > 0 else len(vertices) + i for i in idx]  # OBJ is 1-based; negatives are relative
                for k in range(1, len(idx) - 1):
                    tris.append((idx[0], idx[k], idx[k + 1]))
                    tri_mat.append(current)
            elif line.startswith("usemtl"):
                name = line.split(maxsplit=1)[1].strip() if len(line.split()) > 1 else ""
                if name not in materials:
                    materials.append(name)
                current = materials.index(name)
    if not vertices or not tris:
        raise DatasetError(f"{path}: OBJ has no vertices or no faces")
    triangles = np.asarray(tris, dtype=np.int32)
    if triangles.max() >= len(vertices) or triangles.min() < 0:
        raise DatasetError(f"{path}: a face refers to a vertex that does not exist")
    return np.asarray(vertices, np.float32), triangles, np.asarray(tri_mat, np.int32), tuple(materials)


def load_obj_npz_rig(obj_path: str | Path, npz_path: str | Path, *, mouth_close: str = "clamp_to_jaw") -> MeshRig:
    """A rig from an OBJ (topology, materials) and an npz with ``deltas`` [K,V,3] and ``names`` [K] (``neutral``
    [V,3] optional: it replaces the OBJ's positions)."""
    vertices, triangles, tri_mat, materials = read_obj(obj_path)
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            deltas = np.asarray(data["deltas"], dtype=np.float32)
            names = tuple(str(n) for n in data["names"])
            if "neutral" in data.files:
                vertices = np.asarray(data["neutral"], dtype=np.float32)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{npz_path}: cannot read blendshape npz ({error})") from error
    except KeyError as error:
        raise DatasetError(f"{npz_path}: npz lacks array {error}") from error
    if deltas.ndim != 3 or deltas.shape[1:] != vertices.shape or deltas.shape[0] != len(names):
        raise DatasetError(
            f"{npz_path}: deltas shape {deltas.shape} does not match {len(names)} names and {vertices.shape} vertices"
        )
    return _make_rig(vertices, triangles, tri_mat, materials, deltas, names, mouth_close)


def load_gltf_rig(path: str | Path, *, mouth_close: str = "clamp_to_jaw") -> MeshRig:
    """A rig from the morph targets of a glTF/GLB file's first mesh."""
    mesh = read_gltf(path)
    rig = _make_rig(
        mesh.vertices,
        mesh.triangles,
        mesh.triangle_material,
        mesh.material_names,
        mesh.deltas,
        mesh.target_names,
        mouth_close,
    )
    rig.focus = mesh.focus if mesh.focus.size else None
    return rig


def load_ict_rig(directory: str | Path, *, mouth_close: str = "clamp_to_jaw") -> MeshRig:
    """The ICT-FaceKit head from a folder holding ``generic_neutral_mesh.obj`` and ``ict_expression_deltas.npz``."""
    directory = Path(directory)
    obj, npz = directory / "generic_neutral_mesh.obj", directory / "ict_expression_deltas.npz"
    for path in (obj, npz):
        if not path.is_file():
            raise DatasetError(f"{path}: not found (an ICT-FaceKit folder needs the OBJ and the npz)")
    return load_obj_npz_rig(obj, npz, mouth_close=mouth_close)


def load_obj_folder_rig(directory: str | Path, *, mouth_close: str = "clamp_to_jaw") -> MeshRig:
    """A rig from a folder of OBJ files: ``neutral.obj`` plus one OBJ per shape, named by it in any dialect
    (``jawOpen.obj``, ``EyeBlinkLeft.obj``, ``eyeBlink_L.obj``), each with the neutral's vertex count and order
    (the layout Face Cap, FaceBuilder and many DCC exports use). Other OBJ files are listed as unused."""
    directory = Path(directory)
    neutral_path = directory / "neutral.obj"
    vertices, triangles, tri_mat, materials = read_obj(neutral_path)
    names, deltas = [], []
    for path in sorted(directory.glob("*.obj")):
        if path.name == "neutral.obj":
            continue
        shape = read_obj(path)[0]
        if shape.shape != vertices.shape:
            raise DatasetError(f"{path}: {len(shape)} vertices, but neutral.obj has {len(vertices)}")
        names.append(path.stem)
        deltas.append(shape - vertices)
    if not names:
        raise DatasetError(f"{directory}: neutral.obj but no shape OBJ files beside it")
    return _make_rig(vertices, triangles, tri_mat, materials, np.stack(deltas), tuple(names), mouth_close)


def load_rig(path: str | Path, *, mouth_close: str = "clamp_to_jaw") -> MeshRig:
    """A rig from a folder (ICT layout, or ``neutral.obj`` + one OBJ per shape), a ``.glb``/``.gltf`` file."""
    path = Path(path)
    if path.is_dir() and (path / "neutral.obj").is_file():
        return load_obj_folder_rig(path, mouth_close=mouth_close)
    if path.is_dir():
        glbs = sorted(path.glob("*.glb")) + sorted(path.glob("*.gltf"))
        if (path / "ict_expression_deltas.npz").is_file() or not glbs:
            return load_ict_rig(path, mouth_close=mouth_close)
        return load_gltf_rig(glbs[0], mouth_close=mouth_close)
    if path.suffix.lower() in (".glb", ".gltf"):
        return load_gltf_rig(path, mouth_close=mouth_close)
    raise DatasetError(f"{path}: expected a folder with an OBJ + npz rig or a .glb/.gltf file")


def _make_rig(vertices, triangles, tri_mat, materials, deltas, names, mouth_close) -> MeshRig:
    if mouth_close not in ("clamp_to_jaw", "as_is"):
        raise DatasetError(f"mouth_close must be 'clamp_to_jaw' or 'as_is', got {mouth_close!r}")
    mapping, unused = map_target_names(names)
    if not mapping:
        raise DatasetError(f"no morph target name maps to an ARKit blendshape (names: {', '.join(names[:8])} ...)")
    return MeshRig(
        vertices=np.asarray(vertices, np.float32),
        triangles=np.asarray(triangles, np.int32),
        triangle_material=np.asarray(tri_mat, np.int32),
        material_names=tuple(materials),
        deltas=np.asarray(deltas, np.float32),
        target_names=tuple(names),
        channel_targets=mapping,
        unused_targets=unused,
        mouth_close=mouth_close,
    )


@dataclass(frozen=True)
class MeshLook:
    """Per-identity appearance of a mesh (the geometry is the rig's own)."""

    skin: tuple[float, float, float]
    eyes: tuple[float, float, float]
    light_yaw: float = 0.0

    @classmethod
    def from_seed(cls, seed: int) -> MeshLook:
        rng = np.random.default_rng(zlib.crc32(f"mesh-look-{seed}".encode()))
        skin = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]) * rng.uniform(0.95, 1.05, 3)
        eyes = EYE_COLOURS[int(rng.integers(len(EYE_COLOURS)))]
        return cls(tuple(np.clip(skin, 0, 1).tolist()), eyes, float(rng.uniform(-25, 25)))


@dataclass
class MeshRenderer:
    """Renders a :class:`MeshRig` with a numpy z-buffer, Lambert + Blinn-Phong shading and head/eye pose."""

    rig: MeshRig
    camera: Camera = field(default_factory=Camera)
    lighting: Lighting = field(default_factory=Lighting)
    supersample: int = 1
    name: str = "mesh"

    def __post_init__(self) -> None:
        rig = self.rig
        visible = np.array(
            [rig.triangle_material[i] < 0 or not _hidden(rig.material_names[rig.triangle_material[i]])
             for i in range(len(rig.triangles))]
        ) if rig.material_names else np.ones(len(rig.triangles), bool)  # fmt: skip
        self._triangles = rig.triangles[visible]
        self._tri_material = rig.triangle_material[visible]
        # Per-vertex albedo class: 0 skin, 1 iris (identity colour), else fixed colours; computed once per rig.
        n = len(rig.vertices)
        self._fixed_colour = np.full((n, 3), np.nan, dtype=np.float32)
        self._iris = np.zeros(n, dtype=bool)
        self._pupil = np.zeros(n, dtype=bool)
        for needle, colour in _MATERIAL_COLOURS:
            idx = rig.material_vertices(needle)
            if colour is None:
                self._iris[idx] = True
            else:
                self._fixed_colour[idx] = colour
        self._eyes = {side: self._eye(side) for side in ("left", "right")}
        # ICT's iris sits behind a sclera sphere meant to be textured; colour the sphere's front cap instead:
        # a human iris spans about 30 degrees from the eye's axis, the pupil about 12.
        for eye in self._eyes.values():
            if eye is None:
                continue
            idx, centre = eye
            direction = rig.vertices[idx] - centre
            cos = direction[:, 2] / np.maximum(np.linalg.norm(direction, axis=1), 1e-9)
            self._iris[idx[cos > math.cos(math.radians(30))]] = True
            self._pupil[idx[cos > math.cos(math.radians(12))]] = True
        face = rig.focus if rig.focus is not None and rig.focus.size else rig.material_vertices("face")
        ref = rig.vertices[face] if face.size else rig.vertices
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        self._centre = np.array(
            self.camera.target if self.camera.target is not None else ((lo[0] + hi[0]) / 2, lo[1] + 0.6 * (hi[1] - lo[1]), (lo[2] + hi[2]) / 2)
        )  # fmt: skip
        self._distance = self.camera.distance or FACE_DISTANCE_PER_HEIGHT * float(hi[1] - lo[1])
        self._pivot = np.array([(lo[0] + hi[0]) / 2, lo[1] + 0.25 * (hi[1] - lo[1]), lo[2]])  # roughly the neck
        self.keypoint_vertices = _keypoint_vertices(rig, face, self._eyes)

    def keypoints(self, coefficients: FaceCoefficients, *, size: int = 256) -> np.ndarray:
        """Pixel positions ``(len(keypoint_vertices), 2)`` (x, y) in the ``size`` image :meth:`render` draws of the
        rig's keypoint vertices (a fixed spread of front-facing face vertices, then each eye's pupil centre), deformed
        and posed exactly as rendered. Occluded points keep their projected position."""
        verts = self._posed_vertices(coefficients)
        _, xy, _ = self._project(verts[self.keypoint_vertices], coefficients, size)
        return xy

    def _posed_vertices(self, coefficients: FaceCoefficients) -> np.ndarray:
        """Vertices with the blendshapes applied and the eyeballs turned by the eye pose channels."""
        verts = self.rig.deform(coefficients).astype(np.float64)
        for side, eye in self._eyes.items():
            yaw, pitch = eye_pose_excess(coefficients, side)
            if eye is not None and (yaw or pitch):
                idx, centre = eye
                # rotation_matrix turns +z towards +x for positive yaw; eye yaw looks towards -x (subject's right)
                verts[idx] = (verts[idx] - centre) @ rotation_matrix(-yaw, pitch, 0.0).T + centre
        return verts

    def _eye(self, side: str) -> tuple[np.ndarray, np.ndarray] | None:
        ball = np.union1d(self.rig.material_vertices("sclera"), self.rig.material_vertices("iris"))
        if ball.size == 0:  # separate eye nodes (a GLB's "EyeLeft"/"Eye_R" meshes) instead of eye materials
            ball = self.rig.material_vertices("eye")
            ball = np.setdiff1d(
                ball, np.union1d(self.rig.material_vertices("lash"), self.rig.material_vertices("brow"))
            )
        ball = np.intersect1d(ball, _side_vertices(self.rig, side))
        if ball.size == 0:
            return None
        pts = self.rig.vertices[ball]
        radius = (pts[:, 0].max() - pts[:, 0].min()) / 2
        centre = np.array([pts[:, 0].mean(), pts[:, 1].mean(), pts[:, 2].max() - radius])
        return ball, centre

    def render(self, coefficients: FaceCoefficients, *, identity: int | MeshLook = 0, size: int = 256) -> Image.Image:
        """An RGB image of the rig with the given expression and pose."""
        look = identity if isinstance(identity, MeshLook) else MeshLook.from_seed(int(identity))
        verts = self._posed_vertices(coefficients)
        res = size * self.supersample
        world, xy, depth = self._project(verts, coefficients, res)
        frags = rasterize(xy, depth, self._triangles, res, res)
        image = self._shade(frags, world, look, res)
        out = Image.fromarray(image, "RGB")
        if self.supersample > 1:
            out = out.reduce(self.supersample)
        return out

    def _project(self, verts: np.ndarray, coefficients: FaceCoefficients, res: int):
        """Camera-space positions, pixel positions and depths of ``verts`` under the frame's head pose."""
        rot = rotation_matrix(*head_angles(coefficients))
        cam = rotation_matrix(-self.camera.azimuth_degrees, self.camera.elevation_degrees, 0.0)
        world = ((verts - self._pivot) @ rot.T + self._pivot - self._centre) @ cam.T
        focal = (res / 2) / math.tan(math.radians(self.camera.fov_degrees) / 2)
        depth = self._distance - world[:, 2]
        xy = np.empty((len(world), 2))
        xy[:, 0] = res / 2 + focal * world[:, 0] / depth
        xy[:, 1] = res / 2 - focal * world[:, 1] / depth
        return world, xy, depth

    def channel_region_box(self, channel: str, *, size: int = 256) -> tuple[int, int, int, int] | None:
        """Pixel box ``(x0, y0, x1, y1)`` of the neutral vertices a blendshape moves (None if the rig lacks it)."""
        targets = self.rig.channel_targets.get(canonical_name(channel), ())
        if not targets:
            return None
        moved = np.linalg.norm(self.rig.deltas[list(targets)], axis=2).max(axis=0)
        idx = np.flatnonzero(moved > 0.05 * moved.max()) if moved.max() > 0 else np.zeros(0, int)
        if idx.size == 0:
            return None
        _, xy, _ = self._project(self.rig.vertices.astype(np.float64), FaceCoefficients.neutral(), size)
        x0, y0 = np.floor(xy[idx].min(axis=0)).astype(int)
        x1, y1 = np.ceil(xy[idx].max(axis=0)).astype(int)
        return max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)

    def _shade(self, frags, world: np.ndarray, look: MeshLook, res: int) -> np.ndarray:
        covered = frags.triangle >= 0
        tri = self._triangles[frags.triangle[covered]]  # (P, 3)
        bary = frags.bary[covered][:, :, None]  # (P, 3, 1)
        normals = vertex_normals(world, self._triangles)
        n = (normals[tri] * bary).sum(axis=1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
        albedo = np.where(np.isnan(self._fixed_colour), np.array(look.skin, np.float32), self._fixed_colour)
        albedo[self._iris] = look.eyes
        albedo[self._pupil] = (0.03, 0.03, 0.03)
        colour = (albedo[tri] * bary).sum(axis=1)
        light = np.array(self.lighting.direction, dtype=np.float64)
        light = rotation_matrix(look.light_yaw, 0, 0) @ (light / np.linalg.norm(light))
        lambert = np.clip(n @ light, 0, 1)
        half = light + np.array([0.0, 0.0, 1.0])
        half /= np.linalg.norm(half)
        spec = self.lighting.specular * np.clip(n @ half, 0, 1) ** self.lighting.shininess
        shaded = colour * (self.lighting.ambient + self.lighting.diffuse * lambert)[:, None] + spec[:, None]
        image = np.empty((res, res, 3), dtype=np.uint8)
        # A soft vertical gradient background, cheap and less "synthetic" for face detectors than flat colour.
        bg = np.array(self.lighting.background, dtype=np.float64)
        ramp = np.linspace(1.12, 0.82, res)[:, None, None]
        image[:] = np.clip(bg[None, None, :] * ramp, 0, 255).astype(np.uint8)
        image[covered] = np.clip(shaded * 255, 0, 255).astype(np.uint8)
        return image
