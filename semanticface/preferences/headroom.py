"""Headroom of a candidate set: how often, and by how much, the best candidate beats the model's own output.

DPO can only move a model towards candidates that are better than what it already says; when the best of the
candidates is rarely better than the model's own output, no annotator can make the pairs informative. This reads
the truth (it is a measurement for benchmarks, never an input of candidate construction or annotation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.preferences.manifest import CandidateSet
from semanticface.preferences.simulated import distance, judged_channels


@dataclass(frozen=True)
class Headroom:
    items: int  # items with an own-output candidate and a truth
    best_beats_own: float  # fraction of those where some other candidate is strictly closer to the truth
    own_distance: float  # mean distance (MAE over the judged channels) of the own output
    best_distance: float  # mean distance of the best candidate (own output included)
    mean_gain: float  # own_distance - best_distance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def headroom(candidates: CandidateSet, truths: Mapping[str, FaceCoefficients]) -> Headroom:
    """Headroom over the items of ``candidates`` whose first candidate is the model's own output (``origin.kind``
    ``own_output``, or a region item's base that is); distances on each item's judged channels."""
    own, best, wins = [], [], 0
    for item in candidates:
        first = item.candidates[0]
        if first.origin.get("kind") != "own_output":
            continue
        if item.id not in truths:
            raise DatasetError(f"no ground truth for item {item.id!r}")
        channels = judged_channels(item.region)
        distances = [distance(c.coefficients, truths[item.id], channels) for c in item.candidates]
        own.append(distances[0])
        best.append(min(distances))
        wins += min(distances[1:], default=np.inf) < distances[0]
    if not own:
        return Headroom(0, 0.0, float("nan"), float("nan"), float("nan"))
    return Headroom(
        len(own), wins / len(own), float(np.mean(own)), float(np.mean(best)), float(np.mean(own) - np.mean(best))
    )
