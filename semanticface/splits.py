"""Leak-free splits of recorded expressions: hold out whole recordings, or contiguous time blocks with a gap.

Identities are always split (see :func:`semanticface.synth.assign_identities`); this module splits the *expression
source* as well, so that a test face never shows a recorded frame — or a neighbour of one — that training saw.

* ``recording``: whole Live Link Face takes go to one split each (every split gets at least one take).
* ``block``: each take is cut into contiguous blocks of at least ``block_frames`` frames; blocks are shuffled and dealt to
  the splits in proportion; the first ``gap`` frames of a block that follows a block of another split are dropped,
  so frames of different splits are always more than ``gap`` frames apart.
* ``auto``: ``recording`` when there are at least two takes per split, else ``block``.
* ``none``: every split draws from every frame (the old behaviour; test expressions leak).

Frame numbers are positions among a take's usable frames (tracking-lost rows are skipped by the reader).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from semanticface.errors import ConfigError
from semanticface.sampling import FramePool
from semanticface.schema import NUM_BLENDSHAPES

ExpressionHoldout = Literal["none", "recording", "block", "auto"]
EXPRESSION_HOLDOUTS: tuple[str, ...] = ("none", "recording", "block", "auto")


@dataclass
class ExpressionSplit:
    """One :class:`FramePool` per split, the mode used, and where each split's frames come from."""

    mode: str
    pools: dict[str, FramePool]
    ranges: dict[str, dict[str, list[list[int]]]]  # split -> take -> [[start, end), ...]

    def provenance(self) -> dict[str, Any]:
        return {
            "expression_holdout": self.mode,
            "splits": {
                name: {"frames": len(pool), "recordings": self.ranges[name]} for name, pool in self.pools.items()
            },
        }


def resolve_mode(mode: str, recordings: int, splits: int) -> str:
    """The concrete mode for ``auto`` (recording when every split can get two takes, else block)."""
    if mode not in EXPRESSION_HOLDOUTS:
        raise ConfigError(f"unknown expression_holdout {mode!r} (choose from {', '.join(EXPRESSION_HOLDOUTS)})")
    if mode == "auto":
        return "recording" if recordings >= 2 * splits else "block"
    if mode == "recording" and recordings < splits:
        raise ConfigError(
            f"expression_holdout=recording needs at least one recording per split: {recordings} recording(s) "
            f"for {splits} splits (use block)"
        )
    return mode


def _ranges(frames: np.ndarray) -> list[list[int]]:
    """Sorted frame numbers -> merged half-open ranges."""
    out: list[list[int]] = []
    for frame in np.sort(frames).tolist():
        if out and out[-1][1] == frame:
            out[-1][1] = frame + 1
        else:
            out.append([frame, frame + 1])
    return out


def _deal(count: int, fractions: list[float]) -> list[int]:
    """Split ``count`` items into parts proportional to ``fractions`` (largest remainder)."""
    total = sum(fractions)
    exact = [count * f / total for f in fractions]
    parts = [int(np.floor(x)) for x in exact]
    order = np.argsort([-(x - p) for x, p in zip(exact, parts)], kind="stable")
    for k in order[: count - sum(parts)]:
        parts[int(k)] += 1
    return parts


def split_pool(
    pool: FramePool,
    fractions: Mapping[str, float],
    mode: str = "auto",
    *,
    seed: int = 0,
    block_frames: int = 120,
    gap: int = 30,
) -> ExpressionSplit:
    """Partition ``pool``'s frames between the splits named in ``fractions``."""
    names = list(fractions)
    if not names or any(f <= 0 for f in fractions.values()):
        raise ConfigError("splits need positive fractions")
    if block_frames < 1 or not 0 <= gap < block_frames:
        raise ConfigError(f"need block_frames >= 1 and 0 <= gap < block_frames, got {block_frames} and {gap}")
    takes = len(pool.origins)
    mode = resolve_mode(mode, takes, len(names))
    rng = np.random.default_rng([seed, 3])
    take_of_row = pool.takes
    label = np.full(len(pool), -1, dtype=np.int64)  # split index per pool row, -1 = dropped
    if mode == "none":
        selections = {name: np.arange(len(pool)) for name in names}
    elif mode == "recording":
        sizes = np.bincount(take_of_row, minlength=takes)
        order = rng.permutation(takes).tolist()
        owner = np.full(takes, -1)
        for k, take in enumerate(order[: len(names)]):  # every split gets one take first
            owner[take] = k
        target = np.array([fractions[n] for n in names]) / sum(fractions.values()) * len(pool)
        for take in order[len(names) :]:  # then each take goes to the split furthest below its share
            assigned = np.array([sizes[owner == k].sum() for k in range(len(names))])
            owner[take] = int(np.argmax(target - assigned))
        label = owner[take_of_row]
        selections = {name: np.flatnonzero(label == k) for k, name in enumerate(names)}
    else:  # block
        shares = [fractions[n] for n in names]
        for take in range(takes):
            rows = np.flatnonzero(take_of_row == take)
            blocks = np.array_split(rows, max(1, len(rows) // block_frames))  # no short tail block
            parts = _deal(len(blocks), shares)
            owners = np.repeat(np.arange(len(names)), parts)[rng.permutation(len(blocks))]
            for k, (block, owner_k) in enumerate(zip(blocks, owners)):
                keep = block
                if k > 0 and owners[k - 1] != owner_k:
                    keep = block[gap:]
                label[keep] = owner_k
        selections = {name: np.flatnonzero(label == k) for k, name in enumerate(names)}
    pools, ranges = {}, {}
    for name in names:
        rows = selections[name]
        if len(rows) == 0:
            raise ConfigError(
                f"split {name!r} received no recorded frames ({mode} holdout over {takes} recording(s), "
                f"{len(pool)} frames): use fewer splits, smaller blocks or more recordings"
            )
        sub = pool.select(rows)
        pools[name] = sub
        sub_takes = sub.takes
        ranges[name] = {
            origin: _ranges(sub.frames[sub_takes == t])
            for t, origin in enumerate(sub.origins)
            if (sub_takes == t).any()
        }
    return ExpressionSplit(mode=mode, pools=pools, ranges=ranges)


def nearest_distances(test: np.ndarray, train: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """For each test vector, the mean absolute blendshape difference to its nearest training vector."""
    a = np.asarray(test, dtype=np.float32)[:, :NUM_BLENDSHAPES]
    b = np.asarray(train, dtype=np.float32)[:, :NUM_BLENDSHAPES]
    if len(b) == 0:
        raise ConfigError("nearest_distances needs at least one training vector")
    out = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), chunk):
        block = np.abs(a[start : start + chunk, None, :] - b[None, :, :]).mean(axis=2)
        out[start : start + chunk] = block.min(axis=1)
    return out


def distance_summary(distances: np.ndarray) -> dict[str, float]:
    """Quantiles of nearest-training-expression distances, and the share of near-duplicates (< 0.01)."""
    d = np.asarray(distances, dtype=np.float64)
    if d.size == 0:
        return {}
    q = np.quantile(d, [0.0, 0.1, 0.5, 0.9])
    return {
        "min": round(float(q[0]), 5),
        "p10": round(float(q[1]), 5),
        "median": round(float(q[2]), 5),
        "p90": round(float(q[3]), 5),
        "near_duplicate_fraction": round(float((d < 0.01).mean()), 4),
        "n": int(d.size),
    }
