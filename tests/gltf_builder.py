"""Build real-world-style GLB rigs for tests: the ICT head as several meshes under node transforms, in metres,
Z-up under a rotating root (as Blender exports), ``_L/_R`` morph names, eye targets as sparse accessors,
positions and deltas quantized to normalized int16 (KHR_mesh_quantization) and every dense buffer view
meshopt-compressed (EXT_meshopt_compression, with an empty fallback buffer), written with pygltflib and the
meshopt encoder from ``meshoptimizer``."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

# Mesh name -> ICT materials; the transparent overlays (lacrimal fluid, occlusion) are left out as exporters do.
PARTS = {
    "Head": ("M_Face", "M_BackHead", "M_EyeLashes"),
    "Teeth": ("M_GumsTongue", "M_Teeth"),
    "Eye_L": ("M_ScleraLeft", "M_IrisLeft"),
    "Eye_R": ("M_ScleraRight", "M_IrisRight"),
}
# Root node: Z-up data turned Y-up by -90 degrees about x; its matrix written out by hand (not by the reader's code).
ROOT_QUATERNION = (-math.sin(math.pi / 4), 0.0, 0.0, math.cos(math.pi / 4))
Y_UP_FROM_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass
class _Blob:
    data: bytearray

    def add(self, raw: bytes) -> int:
        self.data += b"\0" * (-len(self.data) % 4)
        start = len(self.data)
        self.data += raw
        return start


def exponential_encode(values: np.ndarray) -> np.ndarray:
    """meshopt's EXPONENTIAL filter, encoding side: each float as a signed 24-bit mantissa and an 8-bit exponent."""
    values = np.asarray(values, np.float64)
    _, exponent = np.frexp(values)  # |value| < 2**exponent
    exponent = np.where(values == 0, 0, exponent - 23).astype(np.int64)  # 23 bits of mantissa plus the sign
    mantissa = np.round(values / np.exp2(exponent)).astype(np.int64)
    mantissa = np.clip(mantissa, -(2**23), 2**23 - 1)
    return ((exponent << 24) | (mantissa & 0xFFFFFF)).astype(np.uint32).view(np.int32)


def build_ict_glb(
    rig,
    path,
    *,
    meshopt: bool = True,
    quantize: bool = True,
    exponential: bool = False,
    required_extra: tuple[str, ...] = (),
):
    """Write the ICT ``MeshRig`` as a Face Cap-style GLB; returns the world positions (metres, Y-up) per vertex
    of the written parts, in the reader's order, for comparison. ``exponential`` (float, meshopt) stores the
    vertex data through meshopt's EXPONENTIAL filter, as gltfpack does for morph targets."""
    import meshoptimizer
    import pygltflib as g

    blob, fallback_size = _Blob(bytearray()), [0]
    views, accessors = [], []

    def dense_view(raw: np.ndarray, stride: int, mode: str, target: int | None, filter_: str | None = None) -> int:
        raw_bytes = np.ascontiguousarray(raw).tobytes()
        if not meshopt:
            views.append(g.BufferView(buffer=0, byteOffset=blob.add(raw_bytes), byteLength=len(raw_bytes),
                                      byteStride=stride if mode == "ATTRIBUTES" else None, target=target))  # fmt: skip
            return len(views) - 1
        count = len(raw_bytes) // stride
        if mode == "ATTRIBUTES":
            encoded = meshoptimizer.encode_vertex_buffer(np.frombuffer(raw_bytes, np.uint8).reshape(count, stride))
        else:
            encoded = meshoptimizer.encode_index_buffer(np.frombuffer(raw_bytes, np.uint32), count, int(raw.max()) + 1)
        start = blob.add(encoded)
        fallback_size[0] += -fallback_size[0] % 4
        ext = {"buffer": 0, "byteOffset": start, "byteLength": len(encoded), "byteStride": stride, "count": count,
               "mode": mode}  # fmt: skip
        if filter_:
            ext["filter"] = filter_
        views.append(g.BufferView(buffer=1, byteOffset=fallback_size[0], byteLength=len(raw_bytes),
                                  byteStride=stride if mode == "ATTRIBUTES" else None, target=target,
                                  extensions={"EXT_meshopt_compression": ext}))  # fmt: skip
        fallback_size[0] += len(raw_bytes)
        return len(views) - 1

    def vec3_accessor(values: np.ndarray, scale: float, *, sparse: bool = False) -> int:
        if sparse:
            rows = np.flatnonzero(np.abs(values).max(axis=1) > 0).astype(np.uint32)
            if rows.size == 0:
                rows = np.array([0], np.uint32)
            idx_view = len(views)
            views.append(g.BufferView(buffer=0, byteOffset=blob.add(rows.tobytes()), byteLength=rows.nbytes))
            vals = np.ascontiguousarray(values[rows] / scale, np.float32)
            val_view = len(views)
            views.append(g.BufferView(buffer=0, byteOffset=blob.add(vals.tobytes()), byteLength=vals.nbytes))
            accessors.append(g.Accessor(componentType=g.FLOAT, count=len(values), type=g.VEC3,
                                        sparse=g.Sparse(count=int(rows.size),
                                                        indices=g.AccessorSparseIndices(bufferView=idx_view, componentType=g.UNSIGNED_INT),
                                                        values=g.AccessorSparseValues(bufferView=val_view))))  # fmt: skip
            return len(accessors) - 1
        if quantize:
            q = np.zeros((len(values), 4), np.int16)
            q[:, :3] = np.round(np.clip(values / scale, -1, 1) * 32767)
            view = dense_view(q, 8, "ATTRIBUTES", g.ARRAY_BUFFER)
            accessors.append(g.Accessor(bufferView=view, componentType=g.SHORT, normalized=True,
                                        count=len(values), type=g.VEC3))  # fmt: skip
        elif exponential and meshopt:
            view = dense_view(exponential_encode(values / scale), 12, "ATTRIBUTES", g.ARRAY_BUFFER, "EXPONENTIAL")
            accessors.append(g.Accessor(bufferView=view, componentType=g.FLOAT, count=len(values), type=g.VEC3))
        else:
            f = np.zeros((len(values), 4), np.float32)
            f[:, :3] = values / scale
            view = dense_view(f, 16, "ATTRIBUTES", g.ARRAY_BUFFER)
            accessors.append(g.Accessor(bufferView=view, componentType=g.FLOAT, count=len(values), type=g.VEC3))
        return len(accessors) - 1

    materials = list(rig.material_names)
    meshes, nodes, expected = [], [], []
    for part, part_materials in PARTS.items():
        mats = [materials.index(m) for m in part_materials]
        keep = np.isin(rig.triangle_material, mats)
        used = np.unique(rig.triangles[keep])
        remap = np.full(len(rig.vertices), -1)
        remap[used] = np.arange(len(used))
        world_m = rig.vertices[used].astype(np.float64) * 0.01  # centimetres -> metres, Y-up
        zup = world_m @ Y_UP_FROM_Z_UP  # the inverse of the root rotation (orthonormal: transpose)
        centre = (zup.min(axis=0) + zup.max(axis=0)) / 2
        scale = float(np.abs(zup - centre).max()) * 1.01  # node scale carries the dequantisation
        primitives = []
        for mat in mats:
            tris = remap[rig.triangles[rig.triangle_material == mat]]
            indices = dense_view(tris.astype(np.uint32).reshape(-1), 4, "TRIANGLES", g.ELEMENT_ARRAY_BUFFER)
            accessors.append(g.Accessor(bufferView=indices, componentType=g.UNSIGNED_INT, count=tris.size,
                                        type=g.SCALAR))  # fmt: skip
            primitives.append((len(accessors) - 1, mat))
        position = vec3_accessor(zup - centre, scale)
        moved = [k for k in range(len(rig.target_names)) if np.abs(rig.deltas[k][used]).max() > 0]
        targets = []
        for k in moved:
            delta = rig.deltas[k][used].astype(np.float64) * 0.01 @ Y_UP_FROM_Z_UP
            targets.append({"POSITION": vec3_accessor(delta, scale, sparse=part.startswith("Eye"))})
        names = [rig.target_names[k] for k in moved]
        meshes.append(g.Mesh(name=part, extras={"targetNames": names}, weights=[0.0] * len(names),
                             primitives=[g.Primitive(attributes=g.Attributes(POSITION=position), indices=acc,
                                                     material=mat, targets=targets or None)
                                         for acc, mat in primitives]))  # fmt: skip
        nodes.append(g.Node(name=part, mesh=len(meshes) - 1, translation=centre.tolist(), scale=[scale] * 3))
        expected.append(world_m)
    root = g.Node(name="Armature", children=list(range(len(nodes))), rotation=list(ROOT_QUATERNION))
    nodes.append(root)
    used_ext = (["EXT_meshopt_compression"] if meshopt else []) + (["KHR_mesh_quantization"] if quantize else [])
    buffers = [g.Buffer(byteLength=0)]
    if meshopt:
        buffers.append(
            g.Buffer(byteLength=fallback_size[0], extensions={"EXT_meshopt_compression": {"fallback": True}})
        )
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="semanticface tests"),
        scene=0,
        scenes=[g.Scene(nodes=[len(nodes) - 1])],
        nodes=nodes,
        meshes=meshes,
        materials=[g.Material(name=m) for m in materials],
        accessors=accessors,
        bufferViews=views,
        buffers=buffers,
        extensionsUsed=used_ext + list(required_extra),
        extensionsRequired=used_ext + list(required_extra),
    )
    binary = bytes(blob.data) + b"\0" * (-len(blob.data) % 4)
    gltf.buffers[0].byteLength = len(binary)
    # The GLB container is written here: pygltflib's save_binary merges every buffer into the binary chunk,
    # which would give the data-less meshopt fallback buffer bytes (real exporters leave it empty).
    text = gltf.to_json().encode("utf-8")
    text += b" " * (-len(text) % 4)
    header = struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(text) + 8 + len(binary))
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(header + chunks)
    return np.concatenate(expected)
