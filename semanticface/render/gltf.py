"""A minimal glTF 2.0 / GLB reader and writer for meshes with morph targets (numpy + json + struct only).

It reads what a blendshape rig needs: the first mesh's positions and indices per primitive, its morph targets'
POSITION deltas and their names (``mesh.extras.targetNames``, the convention Blender, three.js and Ready Player Me
use), and material names. Skins, animations, node transforms and textures are ignored on purpose.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semanticface.errors import DatasetError

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@dataclass
class MorphMesh:
    """Geometry of one glTF mesh: all primitives merged."""

    vertices: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (F, 3) int32
    triangle_material: np.ndarray  # (F,) int32 index into material_names
    material_names: tuple[str, ...]
    target_names: tuple[str, ...]
    deltas: np.ndarray  # (K, V, 3) float32


def read_gltf(path: str | Path) -> MorphMesh:
    """Read the first mesh of a ``.glb`` or ``.gltf`` file (buffers embedded, base64 or beside the file)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read glTF file ({error.strerror})") from error
    if raw[:4] == b"glTF":
        doc, bin_chunk = _split_glb(raw, path)
    else:
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DatasetError(f"{path}: not a GLB and not glTF JSON ({error})") from error
        bin_chunk = None
    buffers = [_load_buffer(b, i, path, bin_chunk) for i, b in enumerate(doc.get("buffers", []))]
    meshes = doc.get("meshes") or []
    if not meshes:
        raise DatasetError(f"{path}: the glTF file has no mesh")
    mesh = meshes[0]
    names = tuple((mesh.get("extras") or {}).get("targetNames") or ())
    materials = tuple(m.get("name", f"material{i}") for i, m in enumerate(doc.get("materials", [])))
    verts, tris, tri_mat, deltas = [], [], [], []
    offset = 0
    for p_i, prim in enumerate(mesh.get("primitives", [])):
        if prim.get("mode", 4) != 4:
            raise DatasetError(f"{path}: primitive {p_i} is not a triangle list (mode {prim.get('mode')})")
        attributes = prim.get("attributes", {})
        if "POSITION" not in attributes:
            raise DatasetError(f"{path}: primitive {p_i} has no POSITION attribute")
        pos = _accessor(doc, buffers, attributes["POSITION"], path).astype(np.float32)
        if "indices" in prim:
            idx = _accessor(doc, buffers, prim["indices"], path).astype(np.int64).reshape(-1, 3)
        else:
            idx = np.arange(len(pos)).reshape(-1, 3)
        targets = prim.get("targets", [])
        if names and len(targets) != len(names):
            raise DatasetError(f"{path}: primitive {p_i} has {len(targets)} morph targets but {len(names)} names")
        prim_deltas = []
        for t_i, target in enumerate(targets):
            if "POSITION" in target:
                prim_deltas.append(_accessor(doc, buffers, target["POSITION"], path).astype(np.float32))
            else:
                prim_deltas.append(np.zeros_like(pos))
            if prim_deltas[-1].shape != pos.shape:
                raise DatasetError(f"{path}: primitive {p_i} target {t_i} has the wrong number of vertices")
        verts.append(pos)
        tris.append(idx + offset)
        tri_mat.append(np.full(len(idx), prim.get("material", -1), dtype=np.int32))
        deltas.append(np.stack(prim_deltas) if prim_deltas else np.zeros((0, len(pos), 3), np.float32))
        offset += len(pos)
    if not verts:
        raise DatasetError(f"{path}: the first mesh has no primitives")
    counts = {d.shape[0] for d in deltas}
    if len(counts) != 1:
        raise DatasetError(f"{path}: primitives disagree on the number of morph targets ({sorted(counts)})")
    k = counts.pop()
    if not names:
        names = tuple(f"target{i}" for i in range(k))
    return MorphMesh(
        vertices=np.concatenate(verts),
        triangles=np.concatenate(tris).astype(np.int32),
        triangle_material=np.concatenate(tri_mat),
        material_names=materials,
        target_names=names,
        deltas=np.concatenate(deltas, axis=1) if k else np.zeros((0, offset, 3), np.float32),
    )


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


def _split_glb(raw: bytes, path: Path) -> tuple[dict, bytes | None]:
    if len(raw) < 20:
        raise DatasetError(f"{path}: truncated GLB header")
    magic, version, _length = struct.unpack_from("<III", raw, 0)
    if magic != _GLB_MAGIC or version != 2:
        raise DatasetError(f"{path}: not a glTF 2.0 binary (magic {magic:#x}, version {version})")
    pos, doc, binary = 12, None, None
    while pos + 8 <= len(raw):
        length, kind = struct.unpack_from("<II", raw, pos)
        chunk = raw[pos + 8 : pos + 8 + length]
        if len(chunk) != length:
            raise DatasetError(f"{path}: truncated GLB chunk at byte {pos}")
        if kind == _CHUNK_JSON:
            doc = json.loads(chunk.decode("utf-8"))
        elif kind == _CHUNK_BIN and binary is None:
            binary = chunk
        pos += 8 + length
    if doc is None:
        raise DatasetError(f"{path}: GLB has no JSON chunk")
    return doc, binary


def _load_buffer(buffer: dict, index: int, path: Path, bin_chunk: bytes | None) -> bytes:
    uri = buffer.get("uri")
    if uri is None:
        if bin_chunk is None:
            raise DatasetError(f"{path}: buffer {index} has no uri and the file has no binary chunk")
        return bin_chunk
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    # External buffers must sit beside the file: no absolute paths or parent escapes.
    candidate = (path.parent / uri).resolve()
    if path.parent.resolve() not in candidate.parents:
        raise DatasetError(f"{path}: buffer {index} uri {uri!r} points outside the file's folder")
    try:
        return candidate.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read buffer {index} ({candidate}): {error.strerror}") from error


def _accessor(doc: dict, buffers: list[bytes], index: int, path: Path) -> np.ndarray:
    try:
        acc = doc["accessors"][index]
        dtype = np.dtype(_COMPONENT[acc["componentType"]])
        width = _WIDTH[acc["type"]]
        count = acc["count"]
        if "bufferView" not in acc:  # all-zero accessor (sparse accessors are not supported)
            return np.zeros((count, width) if width > 1 else count, dtype=dtype)
        view = doc["bufferViews"][acc["bufferView"]]
        data = buffers[view["buffer"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        stride = view.get("byteStride") or dtype.itemsize * width
    except (KeyError, IndexError, TypeError) as error:
        raise DatasetError(f"{path}: malformed accessor {index} ({error!r})") from error
    if "sparse" in acc:
        raise DatasetError(f"{path}: sparse accessor {index} is not supported")
    need = start + stride * (count - 1) + dtype.itemsize * width if count else start
    if need > len(data):
        raise DatasetError(f"{path}: accessor {index} reads past the end of its buffer")
    if stride == dtype.itemsize * width:
        arr = np.frombuffer(data, dtype=dtype, count=count * width, offset=start)
    else:
        rows = np.lib.stride_tricks.as_strided(
            np.frombuffer(data, dtype=np.uint8, offset=start),
            shape=(count, dtype.itemsize * width),
            strides=(stride, 1),
        )
        arr = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    return arr.reshape(count, width) if width > 1 else arr
