"""A z-buffered triangle rasteriser in numpy (no GPU, no OpenGL).

Meshes of faces have many tiny triangles (a 26k-vertex head at 256 px covers a few pixels per triangle), so
instead of scanning each triangle in Python we group triangles by the size of their pixel bounding box and test
every candidate pixel of a whole group at once with edge functions. The nearest sample per pixel is picked with a
sort (deterministic, unlike scattered assignment).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048, 4096)


@dataclass
class Fragments:
    """Per-pixel result of rasterisation: which triangle is visible, and where in it."""

    triangle: np.ndarray  # (H, W) int32, -1 where nothing was drawn
    bary: np.ndarray  # (H, W, 3) float32 barycentric weights of the visible triangle's corners
    depth: np.ndarray  # (H, W) float32 view depth, +inf where nothing was drawn


def rasterize(
    xy: np.ndarray,
    depth: np.ndarray,
    triangles: np.ndarray,
    width: int,
    height: int,
    *,
    cull_backfaces: bool = True,
) -> Fragments:
    """Rasterise triangles given in pixel coordinates (x right, y down) with per-vertex depth (smaller = nearer).

    Front faces are those whose corners run counter-clockwise as seen by the viewer (y up), the OBJ/glTF
    convention; with ``cull_backfaces`` the others are skipped.
    """
    xy = np.asarray(xy, dtype=np.float64)
    p0, p1, p2 = xy[triangles[:, 0]], xy[triangles[:, 1]], xy[triangles[:, 2]]
    # Signed area with y pointing down: counter-clockwise on screen (y up) is negative here.
    area = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p2[:, 0] - p0[:, 0])
    front = np.flatnonzero(area < 0 if cull_backfaces else area != 0)
    # Work on the surviving triangles only (culling removes about half of a closed mesh).
    triangles, area = triangles[front], area[front]
    corners = np.stack([p0[front], p1[front], p2[front]], axis=1)  # (F', 3, 2)
    lo = np.floor(corners.min(axis=1) - 0.5).astype(np.int64) + 1  # first pixel whose centre may be inside
    hi = np.floor(corners.max(axis=1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi[:, 0] = np.minimum(hi[:, 0], width - 1)
    hi[:, 1] = np.minimum(hi[:, 1], height - 1)
    ids = np.flatnonzero((hi >= lo).all(axis=1))
    extent = (hi[ids] - lo[ids] + 1).max(axis=1)
    bucket_of = np.searchsorted(_BUCKETS, extent)

    pix_all, z_all, tri_all, bary_all = [], [], [], []
    tri_depth = depth[triangles]  # (F, 3)
    for b in np.unique(bucket_of):
        s = _BUCKETS[b]
        group = ids[bucket_of == b]
        oy, ox = np.divmod(np.arange(s * s), s)
        px = lo[group, 0:1] + ox[None, :]  # (G, s*s)
        py = lo[group, 1:2] + oy[None, :]
        cx, cy = px + 0.5, py + 0.5
        a, bb, c = corners[group, 0], corners[group, 1], corners[group, 2]
        inv = 1.0 / area[group][:, None]
        # Barycentric weight of each corner = area of the opposite sub-triangle / total area.
        w0 = ((bb[:, 0:1] - cx) * (c[:, 1:2] - cy) - (bb[:, 1:2] - cy) * (c[:, 0:1] - cx)) * inv
        w1 = ((c[:, 0:1] - cx) * (a[:, 1:2] - cy) - (c[:, 1:2] - cy) * (a[:, 0:1] - cx)) * inv
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (px <= hi[group, 0:1]) & (py <= hi[group, 1:2])
        g_idx, k_idx = np.nonzero(inside)
        if g_idx.size == 0:
            continue
        tri = group[g_idx]  # index into the surviving triangles; mapped back to ``front`` below
        bary = np.stack([w0[g_idx, k_idx], w1[g_idx, k_idx], w2[g_idx, k_idx]], axis=1)
        z = (bary * tri_depth[tri]).sum(axis=1)
        pix_all.append(py[g_idx, k_idx] * width + px[g_idx, k_idx])
        z_all.append(z)
        tri_all.append(tri)
        bary_all.append(bary)

    triangle = np.full(width * height, -1, dtype=np.int32)
    bary_img = np.zeros((width * height, 3), dtype=np.float32)
    depth_img = np.full(width * height, np.inf, dtype=np.float32)
    if pix_all:
        pix = np.concatenate(pix_all)
        z = np.concatenate(z_all)
        order = np.lexsort((z, pix))  # by pixel, nearest first
        pix_sorted = pix[order]
        first = np.ones(pix_sorted.size, dtype=bool)
        first[1:] = pix_sorted[1:] != pix_sorted[:-1]
        win = order[first]
        target = pix[win]
        triangle[target] = front[np.concatenate(tri_all)[win]]
        bary_img[target] = np.concatenate(bary_all)[win]
        depth_img[target] = z[win]
    return Fragments(
        triangle.reshape(height, width), bary_img.reshape(height, width, 3), depth_img.reshape(height, width)
    )


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (counter-clockwise corners face outwards)."""
    v0, v1, v2 = vertices[triangles[:, 0]], vertices[triangles[:, 1]], vertices[triangles[:, 2]]
    face_n = np.cross(v1 - v0, v2 - v0)
    normals = np.zeros_like(vertices)
    for k in range(3):
        idx = triangles[:, k]
        # bincount is several times faster than np.add.at for scatter-adds.
        for axis in range(3):
            normals[:, axis] += np.bincount(idx, weights=face_n[:, axis], minlength=len(vertices))
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(norm, 1e-12)
