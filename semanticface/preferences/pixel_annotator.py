"""A simulated annotator that judges what a person judges: how each candidate's render looks next to the input.

Each candidate is rendered with the same renderer, identity (look) and size as the input image, and candidates are
ranked by the mean absolute pixel difference to the input. In region mode ("upper"/"lower") only the pixels the
judged half moves are compared: a pixel belongs to the half when moving every channel of that half changes it more
than moving every channel of the other half does (measured on the item's own look). It reads no coefficient truth:
its inputs are the candidate set (images, candidate coefficients) and each item's look, e.g. a dataset's
``identity`` column. Rankings go through :meth:`RankingStore.submit` like the web app's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from semanticface.errors import ConfigError, DatasetError
from semanticface.preferences.candidates import Renderer
from semanticface.preferences.halves import half_mask, pixels
from semanticface.preferences.manifest import CandidateSet, Item
from semanticface.preferences.storage import Ranking, RankingStore


@dataclass
class PixelAnnotatorConfig:
    name: str = field(default="pixels", metadata={"help": "Annotator name stored with each ranking."})
    tie_threshold: float = field(
        default=0.0, metadata={"help": "Candidates whose pixel distances (0-255 scale) differ by at most this tie."}
    )
    mask_level: float = field(
        default=0.5, metadata={"help": "Half masks keep pixels that move by more than this (0-255) at all."}
    )

    def __post_init__(self) -> None:
        if self.tie_threshold < 0 or self.mask_level < 0:
            raise ConfigError("tie_threshold and mask_level must be >= 0")


class PixelAnnotator:
    def __init__(self, renderer: Renderer, config: PixelAnnotatorConfig | None = None) -> None:
        self.renderer = renderer
        self.config = config or PixelAnnotatorConfig()
        self._masks: dict[tuple[str, str, int], np.ndarray] = {}

    def _mask(self, half: str, identity: Any, size: int) -> np.ndarray:
        key = (half, repr(identity), size)
        if key not in self._masks:
            self._masks[key] = half_mask(
                self.renderer, half, identity=identity, size=size, level=self.config.mask_level
            )
        return self._masks[key]

    def distances(self, item: Item, image: Image.Image, identity: Any) -> np.ndarray:
        """Mean absolute pixel difference of each candidate's render to ``image`` (judged half only)."""
        if image.width != image.height:
            raise DatasetError(f"item {item.id!r}: the input image is {image.width}x{image.height}, not square")
        target = pixels(image)
        size = image.width
        mask = None if item.region == "full" else self._mask(item.region, identity, size)
        if mask is not None and not mask.any():
            raise DatasetError(f"item {item.id!r}: the renderer moves no pixel for the {item.region} half")
        out = []
        for candidate in item.candidates:
            render = pixels(self.renderer.render(candidate.coefficients, identity=identity, size=size))
            diff = np.abs(render - target).mean(-1)
            out.append(float(diff[mask].mean() if mask is not None else diff.mean()))
        return np.array(out)

    def rank(self, item: Item, image: Image.Image, identity: Any) -> Ranking:
        distances = self.distances(item, image, identity)
        order = np.argsort(distances, kind="stable")
        groups: list[list[str]] = []
        start = 0.0
        for i in order:
            if groups and distances[i] - start <= self.config.tie_threshold:
                groups[-1].append(item.candidates[i].id)
            else:
                groups.append([item.candidates[i].id])
                start = distances[i]
        submission = hashlib.sha256(f"{self.config.name}:{item.id}:{groups}".encode()).hexdigest()[:32]
        return Ranking(item.id, self.config.name, tuple(tuple(g) for g in groups), False, submission)

    def annotate(self, candidates: CandidateSet, identities: Mapping[str, Any], store: RankingStore) -> int:
        """Rank every item against its saved input image, rendered with ``identities[item.id]``; returns how many
        rankings were stored anew."""
        stored = 0
        for item in candidates:
            if item.id not in identities:
                raise DatasetError(f"no identity (look) for item {item.id!r}")
            with Image.open(candidates.root / item.image) as image:
                ranking = self.rank(item, image.convert("RGB"), identities[item.id])
            stored += store.submit(ranking, item.candidate_ids) != "duplicate"
        return stored


def identities_from_rows(candidates: CandidateSet, rows: Any) -> dict[str, Any]:
    """Each item's look from the ``identity`` column of the dataset row it came from (``item.metadata['row']``);
    only that column is read."""
    if "identity" not in rows.column_names:
        raise DatasetError("the dataset has no 'identity' column: the pixel annotator needs each face's look")
    column = rows.select_columns(["identity"])
    out = {}
    for item in candidates:
        if "row" not in item.metadata:
            raise DatasetError(f"item {item.id!r}: no 'row' in its metadata")
        out[item.id] = int(column[int(item.metadata["row"])]["identity"])
    return out
