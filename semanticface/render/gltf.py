"""glTF 2.0 / GLB rigs as tools export them: read through ``pygltflib`` and a meshopt decoder (``meshoptimizer``).

What a blendshape rig exported by a face-capture or DCC tool uses, and how it is read:

* the **scene graph**: every node with a mesh is placed by its world transform (``matrix`` or TRS, parents
  first); morph deltas are turned by the node's linear part. All meshes are kept (head, eyes, teeth, lashes) and
  merged into one :class:`MorphMesh`; their morph targets are merged by name, so an eye mesh's ``eyeLookIn_L``
  drives the same channel as the head's. The **head** is the mesh with the most targets that map to ARKit names
  (:attr:`MorphMesh.focus` holds its vertices: the camera frames it).
* ``EXT_meshopt_compression``: compressed buffer views are decoded (ATTRIBUTES / TRIANGLES / INDICES modes,
  OCTAHEDRAL / QUATERNION / EXPONENTIAL filters); the uncompressed fallback buffer may be absent.
* ``KHR_mesh_quantization``: integer attributes, ``normalized`` ones mapped to [-1, 1] / [0, 1] as the spec says
  (the node transform carries the dequantisation scale).
* **sparse accessors** (Blender writes morph targets so), on a zero or a real base.
* target names from ``mesh.extras.targetNames`` (Blender, three.js, Ready Player Me) or the first primitive's
  ``extras.targetNames``.
* an ``extensionsRequired`` entry that changes geometry and is not handled here (Draco, instancing, ...) is a
  :class:`~semanticface.errors.DatasetError` naming it; required texture/material extensions are harmless (this
  renderer draws no textures) and ignored.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.errors import DatasetError
from semanticface.extras import require
from semanticface.schema import map_target_names

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_NORMALIZE = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
HANDLED_EXTENSIONS = frozenset({"EXT_meshopt_compression", "KHR_meshopt_compression", "KHR_mesh_quantization"})
# Required extensions that only affect textures or materials, which this renderer does not draw.
IGNORABLE_PREFIXES = ("KHR_texture_", "EXT_texture_", "KHR_materials_", "KHR_lights_", "MSFT_texture_dds")


@dataclass
class MorphMesh:
    """Geometry of every mesh in the scene, placed by its node transform and merged."""

    vertices: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (F, 3) int32
    triangle_material: np.ndarray  # (F,) int32 index into material_names
    material_names: tuple[str, ...]
    target_names: tuple[str, ...]
    deltas: np.ndarray  # (K, V, 3) float32
    focus: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # vertices of the head mesh
    parts: tuple[tuple[str, int, int], ...] = ()  # (node name, first vertex, end vertex) per placed mesh


def read_gltf(path: str | Path) -> MorphMesh:
    """Read every mesh of a ``.glb`` or ``.gltf`` scene (buffers embedded, base64, or beside the file)."""
    GLTF2 = require("pygltflib", "reading glTF/GLB rigs").GLTF2
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read glTF file ({error.strerror})") from error
    _check_container(raw, path)
    try:
        gltf = GLTF2.load_from_bytes(raw)
    except Exception as error:  # pygltflib raises assorted errors on malformed JSON/chunks
        raise DatasetError(f"{path}: not a readable glTF file ({type(error).__name__}: {error})") from None
    return _Reader(gltf, path).read()


def write_glb(
    path: str | Path,
    vertices: np.ndarray,
    triangles: np.ndarray,
    target_names: list[str] | tuple[str, ...],
    deltas: np.ndarray,
) -> Path:
    """Write one mesh with named morph targets as a binary glTF (one primitive, float32 positions, uint32 indices)."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    indices = np.ascontiguousarray(triangles, dtype=np.uint32).reshape(-1)
    deltas = np.ascontiguousarray(deltas, dtype=np.float32)
    blobs = [vertices.tobytes(), indices.tobytes()] + [d.tobytes() for d in deltas]
    views, accessors, binary = [], [], b""
    for i, blob in enumerate(blobs):
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(blob)})
        binary += blob + b"\0" * (-len(blob) % 4)
        if i == 1:
            accessors.append({"bufferView": i, "componentType": 5125, "count": int(indices.size), "type": "SCALAR"})
        else:
            data = vertices if i == 0 else deltas[i - 2]
            accessors.append(
                {
                    "bufferView": i,
                    "componentType": 5126,
                    "count": len(data),
                    "type": "VEC3",
                    "min": data.min(axis=0).tolist(),
                    "max": data.max(axis=0).tolist(),
                }
            )
    doc = {
        "asset": {"version": "2.0", "generator": "semanticface"},
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": accessors,
        "meshes": [
            {
                "primitives": [
                    {
                        "attributes": {"POSITION": 0},
                        "indices": 1,
                        "targets": [{"POSITION": 2 + i} for i in range(len(deltas))],
                    }
                ],
                "weights": [0.0] * len(deltas),
                "extras": {"targetNames": list(target_names)},
            }
        ],
        "nodes": [{"mesh": 0}],
        "scenes": [{"nodes": [0]}],
        "scene": 0,
    }
    json_bytes = json.dumps(doc).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    total = 12 + 8 + len(json_bytes) + 8 + len(binary)
    out = struct.pack("<III", _GLB_MAGIC, 2, total)
    out += struct.pack("<II", len(json_bytes), _CHUNK_JSON) + json_bytes
    out += struct.pack("<II", len(binary), _CHUNK_BIN) + binary
    path = Path(path)
    path.write_bytes(out)
    return path


def _check_container(raw: bytes, path: Path) -> None:
    if raw[:4] == b"glTF":
        if len(raw) < 20:
            raise DatasetError(f"{path}: truncated GLB header")
        magic, version, length = struct.unpack_from("<III", raw, 0)
        if version != 2:
            raise DatasetError(f"{path}: not a glTF 2.0 binary (version {version})")
        pos = 12
        while pos + 8 <= len(raw):
            size, _kind = struct.unpack_from("<II", raw, pos)
            if pos + 8 + size > len(raw):
                raise DatasetError(f"{path}: truncated GLB chunk at byte {pos}")
            pos += 8 + size
        return
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not a GLB and not glTF JSON ({error})") from None


class _Reader:
    def __init__(self, gltf: Any, path: Path) -> None:
        self.gltf, self.path = gltf, path
        self._buffers: dict[int, bytes] = {}
        self._views: dict[int, bytes] = {}
        for name in gltf.extensionsRequired or []:
            if name not in HANDLED_EXTENSIONS and not name.startswith(IGNORABLE_PREFIXES):
                raise DatasetError(
                    f"{path}: requires the glTF extension {name!r}, which semanticface cannot read "
                    f"(handled: {', '.join(sorted(HANDLED_EXTENSIONS))}); re-export without it"
                )

    # --- buffers and accessors ---------------------------------------------------------------------------------

    def buffer(self, index: int) -> bytes:
        if index not in self._buffers:
            try:
                buffer = self.gltf.buffers[index]
            except (IndexError, TypeError):
                raise DatasetError(f"{self.path}: buffer {index} does not exist") from None
            uri = buffer.uri
            if uri is None:
                blob = self.gltf.binary_blob() if index == 0 else None
                if blob is None:
                    fallback = (buffer.extensions or {}).get("EXT_meshopt_compression", {}).get("fallback")
                    why = "a meshopt fallback buffer with no data" if fallback else "no uri and no binary chunk"
                    raise DatasetError(f"{self.path}: buffer {index} is {why}, yet an accessor reads it")
                self._buffers[index] = bytes(blob)
            elif uri.startswith("data:"):
                self._buffers[index] = base64.b64decode(uri.split(",", 1)[1])
            else:
                # External buffers must sit beside the file: no absolute paths or parent escapes.
                candidate = (self.path.parent / uri).resolve()
                if self.path.parent.resolve() not in candidate.parents:
                    raise DatasetError(f"{self.path}: buffer {index} uri {uri!r} points outside the file's folder")
                try:
                    self._buffers[index] = candidate.read_bytes()
                except OSError as error:
                    raise DatasetError(
                        f"{self.path}: cannot read buffer {index} ({candidate}): {error.strerror}"
                    ) from None
        return self._buffers[index]

    def view(self, index: int) -> tuple[bytes, int | None]:
        """The bytes of a buffer view (meshopt-decoded when compressed) and its byte stride."""
        try:
            view = self.gltf.bufferViews[index]
        except (IndexError, TypeError):
            raise DatasetError(f"{self.path}: buffer view {index} does not exist") from None
        ext = (view.extensions or {}).get("EXT_meshopt_compression") or (view.extensions or {}).get(
            "KHR_meshopt_compression"
        )
        if index not in self._views:
            if ext:
                self._views[index] = self._meshopt(index, ext)
            else:
                data = self.buffer(view.buffer)
                start = view.byteOffset or 0
                if start + view.byteLength > len(data):
                    raise DatasetError(f"{self.path}: buffer view {index} reads past the end of its buffer")
                self._views[index] = data[start : start + view.byteLength]
        stride = (ext or {}).get("byteStride") if ext else view.byteStride
        return self._views[index], stride

    def _meshopt(self, index: int, ext: dict[str, Any]) -> bytes:
        meshoptimizer = require("meshoptimizer", f"{self.path} is meshopt-compressed; decoding it")

        try:
            data = self.buffer(int(ext["buffer"]))
            start, length = int(ext.get("byteOffset", 0)), int(ext["byteLength"])
            count, stride, mode = int(ext["count"]), int(ext["byteStride"]), ext.get("mode", "ATTRIBUTES")
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(
                f"{self.path}: buffer view {index}: malformed EXT_meshopt_compression ({error!r})"
            ) from None
        encoded = data[start : start + length]
        try:
            if mode == "ATTRIBUTES":
                # (The decoder's own dtype= path overflows its buffer in meshoptimizer 0.2.30; the default
                # float32 path holds the same bytes.)
                decoded = np.ascontiguousarray(meshoptimizer.decode_vertex_buffer(count, stride, encoded)).view(
                    np.uint8
                )
                decoded = self._filter(decoded, count, stride, ext.get("filter", "NONE"), index)
            elif mode == "TRIANGLES":
                # The decoder writes ``stride``-byte indices into a uint32 array: take its bytes, not its values.
                decoded = np.ascontiguousarray(meshoptimizer.decode_index_buffer(count, stride, encoded))
                decoded = decoded.view(np.uint8)[: count * stride]
            elif mode == "INDICES":
                decoded = np.ascontiguousarray(meshoptimizer.decode_index_sequence(count, stride, encoded))
                decoded = decoded.view(np.uint8)[: count * stride]
            else:
                raise DatasetError(f"{self.path}: buffer view {index}: unknown meshopt mode {mode!r}")
        except (ValueError, RuntimeError) as error:
            raise DatasetError(f"{self.path}: buffer view {index}: meshopt data does not decode ({error})") from None
        return decoded.tobytes()

    def _filter(self, decoded: np.ndarray, count: int, stride: int, name: str, index: int) -> np.ndarray:
        meshoptimizer = require("meshoptimizer", f"{self.path} is meshopt-compressed; decoding it")

        if name == "NONE":
            return decoded
        functions = {
            "OCTAHEDRAL": meshoptimizer.decode_filter_oct,
            "QUATERNION": meshoptimizer.decode_filter_quat,
            "EXPONENTIAL": meshoptimizer.decode_filter_exp,
        }
        if name not in functions:
            raise DatasetError(f"{self.path}: buffer view {index}: unknown meshopt filter {name!r}")
        filtered = functions[name](decoded.copy(), count, stride)
        return np.ascontiguousarray(filtered).view(np.uint8).reshape(-1)[: count * stride]

    def accessor(self, index: int) -> np.ndarray:
        """An accessor's values as float64 (normalized integers mapped to [-1, 1] / [0, 1]); sparse applied."""
        try:
            acc = self.gltf.accessors[index]
            dtype = np.dtype(_COMPONENT[acc.componentType])
            width = _WIDTH[acc.type]
            count = int(acc.count)
        except (IndexError, KeyError, TypeError):
            raise DatasetError(f"{self.path}: accessor {index} is missing or malformed") from None
        if acc.bufferView is None:
            values = np.zeros((count, width), dtype=dtype)
        else:
            data, stride = self.view(acc.bufferView)
            values = self._strided(data, acc.byteOffset or 0, stride, dtype, width, count, f"accessor {index}")
        out = values.astype(np.float64)
        if acc.normalized and acc.componentType in _NORMALIZE:
            out = out / _NORMALIZE[acc.componentType]
            if dtype.kind == "i":
                out = np.maximum(out, -1.0)
        if acc.sparse is not None and acc.sparse.count:
            out = out.copy()
            sparse = acc.sparse
            idx_data, _ = self.view(sparse.indices.bufferView)
            idx_type = np.dtype(_COMPONENT.get(sparse.indices.componentType, np.uint32))
            rows = self._strided(idx_data, sparse.indices.byteOffset or 0, None, idx_type, 1, sparse.count, "sparse")
            val_data, _ = self.view(sparse.values.bufferView)
            vals = self._strided(val_data, sparse.values.byteOffset or 0, None, dtype, width, sparse.count, "sparse")
            vals = vals.astype(np.float64)
            if acc.normalized and acc.componentType in _NORMALIZE:
                vals = vals / _NORMALIZE[acc.componentType]
            rows = rows.reshape(-1).astype(np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= count):
                raise DatasetError(f"{self.path}: accessor {index}: sparse index out of range")
            out[rows] = vals
        return out

    def _strided(self, data, offset, stride, dtype, width, count, what) -> np.ndarray:
        item = dtype.itemsize * width
        stride = stride or item
        need = offset + stride * (count - 1) + item if count else offset
        if need > len(data):
            raise DatasetError(f"{self.path}: {what} reads past the end of its buffer view")
        if not count:
            return np.zeros((0, width), dtype)
        raw = np.frombuffer(data, dtype=np.uint8)
        rows = np.lib.stride_tricks.as_strided(raw[offset:], shape=(count, item), strides=(stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(count, width)

    # --- scene graph ---------------------------------------------------------------------------------------------

    def placed_meshes(self) -> list[tuple[int, np.ndarray, str]]:
        """``(mesh index, 4x4 world matrix, node name)`` for every node with a mesh in the scene."""
        gltf = self.gltf
        nodes = gltf.nodes or []
        if gltf.scenes:
            scene = gltf.scenes[gltf.scene if gltf.scene is not None else 0]
            roots = list(scene.nodes or [])
        else:  # no scene: every node that is nobody's child
            children = {c for n in nodes for c in (n.children or [])}
            roots = [i for i in range(len(nodes)) if i not in children]
        placed, stack, seen = [], [(r, np.eye(4)) for r in reversed(roots)], set()
        while stack:
            index, parent = stack.pop()
            if index in seen or not 0 <= index < len(nodes):
                raise DatasetError(f"{self.path}: node {index} is missing or part of a cycle")
            seen.add(index)
            node = nodes[index]
            world = parent @ _local_matrix(node)
            if node.mesh is not None:
                placed.append((node.mesh, world, node.name or f"node{index}"))
            stack += [(c, world) for c in reversed(node.children or [])]
        if not placed and gltf.meshes:  # meshes but no nodes: take them as they are
            placed = [(i, np.eye(4), m.name or f"mesh{i}") for i, m in enumerate(gltf.meshes)]
        return placed

    def read(self) -> MorphMesh:
        gltf = self.gltf
        if not gltf.meshes:
            raise DatasetError(f"{self.path}: the glTF file has no mesh")
        materials = [m.name or f"material{i}" for i, m in enumerate(gltf.materials or [])]
        names: list[str] = []
        verts, tris, tri_mat, parts, per_mesh = [], [], [], [], []
        offset, head, head_score = 0, None, -1
        for mesh_index, world, node_name in self.placed_meshes():
            mesh = gltf.meshes[mesh_index]
            mesh_names = _target_names(mesh)
            linear = world[:3, :3]
            start = offset
            shared: dict[tuple, tuple[int, int]] = {}
            for p_i, prim in enumerate(mesh.primitives or []):
                where = f"mesh {mesh_index} primitive {p_i}"
                if (prim.mode if prim.mode is not None else 4) != 4:
                    continue  # points and lines are not part of a face surface
                if prim.attributes.POSITION is None:
                    raise DatasetError(f"{self.path}: {where} has no POSITION attribute")
                targets = prim.targets or []
                if mesh_names and len(targets) != len(mesh_names):
                    raise DatasetError(
                        f"{self.path}: {where} has {len(targets)} morph targets but {len(mesh_names)} names"
                    )
                # Primitives of one mesh often share their vertex data (one per material): place it once.
                key = (prim.attributes.POSITION, tuple(t.get("POSITION") for t in targets))
                if key in shared:
                    first, count = shared[key]
                else:
                    pos = self.accessor(prim.attributes.POSITION)
                    prim_deltas = {}
                    for t_i, target in enumerate(targets):
                        name = mesh_names[t_i] if mesh_names else f"{mesh.name or f'mesh{mesh_index}'}_target{t_i}"
                        if target.get("POSITION") is None:
                            continue
                        delta = self.accessor(target["POSITION"])
                        if delta.shape != pos.shape:
                            raise DatasetError(f"{self.path}: {where} target {t_i} has the wrong number of vertices")
                        prim_deltas[name] = (delta @ linear.T).astype(np.float32)
                        if name not in names:
                            names.append(name)
                    verts.append((pos @ linear.T + world[:3, 3]).astype(np.float32))
                    per_mesh.append((offset, len(pos), prim_deltas))
                    first, count = shared[key] = (offset, len(pos))
                    offset += len(pos)
                if prim.indices is not None:
                    idx = self.accessor(prim.indices).astype(np.int64).reshape(-1, 3)
                else:
                    idx = np.arange(count - count % 3).reshape(-1, 3)
                if idx.size and (idx.min() < 0 or idx.max() >= count):
                    raise DatasetError(f"{self.path}: {where} has an index past its vertices")
                det = np.linalg.det(linear)
                tris.append((idx[:, ::-1] if det < 0 else idx) + first)  # a mirroring node flips the winding
                label = (
                    materials[prim.material] if prim.material is not None and prim.material < len(materials) else ""
                )
                part_label = f"{node_name}/{label}" if label else node_name
                tri_mat.append(np.full(len(idx), _intern(materials, part_label), dtype=np.int32))
            if offset > start:
                parts.append((node_name, start, offset))
                mapped = len(map_target_names(mesh_names)[0]) if mesh_names else 0
                if mapped > head_score:
                    head, head_score = (start, offset), mapped
        if not verts:
            raise DatasetError(f"{self.path}: no mesh in the scene has triangles")
        deltas = np.zeros((len(names), offset, 3), np.float32)
        for first, count, prim_deltas in per_mesh:
            for name, delta in prim_deltas.items():
                deltas[names.index(name), first : first + count] = delta
        focus = np.arange(*head) if head else np.arange(offset)
        return MorphMesh(
            vertices=np.concatenate(verts),
            triangles=np.concatenate(tris).astype(np.int32),
            triangle_material=np.concatenate(tri_mat),
            material_names=tuple(materials),
            target_names=tuple(names),
            deltas=deltas,
            focus=focus,
            parts=tuple(parts),
        )


def _intern(materials: list[str], label: str) -> int:
    if label not in materials:
        materials.append(label)
    return materials.index(label)


def _target_names(mesh: Any) -> list[str]:
    extras = mesh.extras if isinstance(mesh.extras, dict) else {}
    names = extras.get("targetNames")
    if not names and mesh.primitives:
        prim_extras = mesh.primitives[0].extras if isinstance(mesh.primitives[0].extras, dict) else {}
        names = prim_extras.get("targetNames")
    return [str(n) for n in names] if names else []


def _local_matrix(node: Any) -> np.ndarray:
    if node.matrix is not None:
        return np.asarray(node.matrix, dtype=np.float64).reshape(4, 4).T  # glTF stores column-major
    translation = np.asarray(node.translation if node.translation is not None else (0, 0, 0), np.float64)
    x, y, z, w = node.rotation if node.rotation is not None else (0.0, 0.0, 0.0, 1.0)
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    scale = np.asarray(node.scale if node.scale is not None else (1, 1, 1), np.float64)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * scale[None, :]
    matrix[:3, 3] = translation
    return matrix
