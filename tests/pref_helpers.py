"""Builds small real candidate directories (PNG files + manifest) for the preference-stage tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from semanticface.preferences.manifest import Candidate, CandidateSet, Item
from semanticface.testing.faces import random_face


def make_candidate_set(
    root: Path, *, n_items: int = 3, k: int = 4, regions: tuple[str, ...] = ("full",), seed: int = 0
) -> CandidateSet:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "renders").mkdir(exist_ok=True)
    items = []
    for i in range(n_items):
        item_id = f"item-{i:03d}"
        image = f"images/{item_id}.png"
        Image.new("RGB", (32, 32), tuple(int(v) for v in rng.integers(0, 255, 3))).save(root / image)
        candidates = []
        for j in range(k):
            render = f"renders/{item_id}_c{j}.png"
            Image.new("RGB", (32, 32), (40 * j, 255 - 40 * j, 90)).save(root / render)
            coefficients = random_face(rng, 0.6, decimals=2)
            candidates.append(
                Candidate(f"c{j}", render, coefficients, f"completion {item_id} c{j}", {"kind": "test", "seed": j})
            )
        items.append(Item(item_id, image, tuple(candidates), regions[i % len(regions)], {"index": i}))
    candidate_set = CandidateSet(root, items)
    candidate_set.save()
    return CandidateSet.load(root)
