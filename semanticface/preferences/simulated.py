"""A simulated annotator for tests and benchmarks: ranks candidates by their distance to the true coefficients.

The distance is the mean absolute error over the channels the item asks about (the whole face, or only the upper
or lower half for region items; optionally restricted to some regions). Noise models an imperfect person: each
distance gets Gaussian noise of standard deviation ``noise`` before sorting. Candidates whose noisy distances are
within ``tie_threshold`` of the best of their group are tied. With ``all_bad_threshold`` set, an item whose best
candidate is still farther than that is marked "all bad". Rankings go through :meth:`RankingStore.submit`, the
same validated, transactional path the web app uses.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from semanticface.choices import check_choices
from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.evaluation.metrics import channel_mae
from semanticface.preferences.manifest import CandidateSet, Item
from semanticface.preferences.storage import Ranking, RankingStore
from semanticface.schema import BLENDSHAPES, FACE_HALVES, REGION_CHANNELS


@dataclass
class SimulatedAnnotatorConfig:
    name: str = field(default="simulated", metadata={"help": "Annotator name stored with each ranking."})
    noise: float = field(
        default=0.0, metadata={"help": "Std of Gaussian noise added to each candidate's distance (MAE units)."}
    )
    tie_threshold: float = field(
        default=0.0, metadata={"help": "Candidates whose noisy distances differ by at most this are tied."}
    )
    all_bad_threshold: float | None = field(
        default=None, metadata={"help": "Mark the item 'all bad' when even the best distance exceeds this."}
    )
    regions: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "Judge only these regions (e.g. ('mouth', 'jaw')); default: the item's face half.",
            "choices": tuple(REGION_CHANNELS),
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the noise (combined with the item id)."})

    def __post_init__(self) -> None:
        if self.noise < 0 or self.tie_threshold < 0:
            raise ConfigError("noise and tie_threshold must be >= 0")
        check_choices(self)


def judged_channels(region_mode: str, regions: Sequence[str] | None = None) -> tuple[str, ...]:
    """The channels a judgement of ``region_mode`` ("full", "upper", "lower") looks at."""
    channels = BLENDSHAPES if region_mode == "full" else FACE_HALVES[region_mode]
    if regions:
        wanted = {c for r in regions for c in REGION_CHANNELS[r]}
        channels = tuple(c for c in channels if c in wanted)
    return tuple(channels)


def distance(candidate: FaceCoefficients, truth: FaceCoefficients, channels: Sequence[str]) -> float:
    """The candidate's MAE over ``channels`` (:func:`~semanticface.evaluation.metrics.channel_mae`); an error when
    every judged channel is missing."""
    value = channel_mae(candidate, truth, channels)
    if math.isnan(value):
        raise DatasetError("no channel to compare: all judged channels are missing")
    return value


class SimulatedAnnotator:
    def __init__(self, config: SimulatedAnnotatorConfig | None = None) -> None:
        self.config = config or SimulatedAnnotatorConfig()

    def _rng(self, item_id: str) -> np.random.Generator:
        # Per-item seed: the same item gets the same noise whatever order items are annotated in.
        digest = hashlib.sha256(f"{self.config.seed}:{self.config.name}:{item_id}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def rank(self, item: Item, truth: FaceCoefficients) -> Ranking:
        channels = judged_channels(item.region, self.config.regions)
        distances = np.array([distance(c.coefficients, truth, channels) for c in item.candidates])
        noisy = distances + self._rng(item.id).normal(0.0, self.config.noise, len(distances))
        order = np.argsort(noisy, kind="stable")
        groups: list[list[str]] = []
        group_start = None
        for i in order:
            if groups and noisy[i] - group_start <= self.config.tie_threshold:
                groups[-1].append(item.candidates[i].id)
            else:
                groups.append([item.candidates[i].id])
                group_start = noisy[i]
        threshold = self.config.all_bad_threshold
        all_bad = threshold is not None and float(distances.min()) > threshold
        submission = hashlib.sha256(f"{self.config.name}:{item.id}:{groups}:{all_bad}".encode()).hexdigest()[:32]
        return Ranking(item.id, self.config.name, tuple(tuple(g) for g in groups), all_bad, submission)

    def annotate(self, candidates: CandidateSet, truths: Mapping[str, FaceCoefficients], store: RankingStore) -> int:
        """Rank every item of ``candidates`` that has a truth and store it; returns how many were stored anew."""
        stored = 0
        for item in candidates:
            if item.id not in truths:
                raise DatasetError(f"no ground truth for item {item.id!r}")
            status = store.submit(self.rank(item, truths[item.id]), item.candidate_ids)
            stored += status != "duplicate"
        return stored
