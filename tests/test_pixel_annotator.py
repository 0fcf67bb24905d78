"""The pixel annotator: ranks candidates by their renders next to the input, never reads coefficient truth."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig
from semanticface.errors import DatasetError
from semanticface.preferences.agreement import annotator_agreement, inter_annotator_agreement, kendall_tau
from semanticface.preferences.candidates import CandidateConfig, Proposal, build_item, perturb
from semanticface.preferences.halves import half_boundary, half_mask
from semanticface.preferences.manifest import CandidateSet
from semanticface.preferences.pixel_annotator import PixelAnnotator, identities_from_rows
from semanticface.preferences.simulated import SimulatedAnnotator
from semanticface.preferences.storage import Ranking, RankingStore
from semanticface.render.avatar import AvatarRenderer
from semanticface.schema import NUM_BLENDSHAPES


def _face(rng: np.random.Generator) -> FaceCoefficients:
    values = np.zeros(NUM_BLENDSHAPES)
    active = rng.choice(NUM_BLENDSHAPES, 8, replace=False)
    values[active] = rng.uniform(0.3, 0.9, 8)
    return FaceCoefficients.from_array(values)


def _candidate_set(root, n: int = 6, k: int = 4) -> tuple[CandidateSet, list[FaceCoefficients], Dataset]:
    rng = np.random.default_rng(0)
    renderer = AvatarRenderer()
    truths = [_face(rng) for _ in range(n)]
    images = [renderer.render(t, identity=i, size=64) for i, t in enumerate(truths)]
    items = []
    for i, truth in enumerate(truths):
        # candidates at growing distance from the truth; the order is shuffled so position says nothing
        proposals = [Proposal(perturb(truth, s, rng), {"kind": "test", "scale": s}) for s in (0.02, 0.15, 0.3, 0.5)]
        proposals = [proposals[j] for j in rng.permutation(k)]
        region = ("full", "upper", "lower")[i % 3]
        config = CandidateConfig(render_size=32)
        item = build_item(root, f"item-{i}", images[i], proposals, renderer, region=region,
                          target_config=TargetConfig(), config=config, metadata={"row": i})  # fmt: skip
        assert item is not None
        items.append(item)
    candidate_set = CandidateSet(root, items)
    candidate_set.save()
    # What the annotator gets: images and each face's look, no coefficient column at all.
    rows = Dataset.from_list([{"images": [im], "identity": i} for i, im in enumerate(images)])
    return CandidateSet.load(root), truths, rows


def test_kendall_tau():
    assert kendall_tau({"a": 0, "b": 1, "c": 2}, {"a": 0, "b": 1, "c": 2}) == 1
    assert kendall_tau({"a": 0, "b": 1, "c": 2}, {"a": 2, "b": 1, "c": 0}) == -1
    assert kendall_tau({"a": 0, "b": 0}, {"a": 0, "b": 1}) is None
    assert kendall_tau({"a": 0, "b": 0, "c": 1}, {"a": 0, "b": 1, "c": 2}) == pytest.approx(2 / np.sqrt(6))
    people = [Ranking("i", "ann", (("a",), ("b",), ("c",))), Ranking("i", "bob", (("c",), ("b",), ("a",)))]
    assert inter_annotator_agreement(people) == {"items_ranked_twice": 1, "pairs": 1, "kendall_tau": -1.0}


def test_half_mask_covers_the_half():
    renderer = AvatarRenderer()
    upper, lower = (half_mask(renderer, h, identity=0, size=64) for h in ("upper", "lower"))
    assert upper.any() and lower.any() and not (upper & lower).any()
    rows_upper, rows_lower = np.nonzero(upper)[0], np.nonzero(lower)[0]
    assert rows_upper.mean() < rows_lower.mean()  # the upper half is above the lower one in the image
    boundary = half_boundary(renderer, identity=0, size=64)
    assert rows_upper.mean() / 64 < boundary < rows_lower.mean() / 64


def test_pixel_annotator_agrees_with_the_oracle_without_truth(tmp_path):
    candidates, truths, rows = _candidate_set(tmp_path / "c")
    assert not any(c.startswith(("eye", "mouth", "jaw")) for c in rows.column_names)
    annotator = PixelAnnotator(AvatarRenderer())
    store = RankingStore(tmp_path / "r.sqlite")
    assert annotator.annotate(candidates, identities_from_rows(candidates, rows), store) == len(candidates)
    oracle_store = RankingStore(tmp_path / "o.sqlite")
    SimulatedAnnotator().annotate(candidates, {item.id: truths[i] for i, item in enumerate(candidates)}, oracle_store)
    agreement = annotator_agreement(store.rankings(), oracle_store.rankings())
    assert agreement["items"] == len(candidates)
    assert agreement["kendall_tau"] > 0.5, agreement
    with pytest.raises(DatasetError, match="identity"):
        identities_from_rows(candidates, rows.remove_columns(["identity"]))
    with pytest.raises(DatasetError, match="item-0"):
        annotator.annotate(candidates, {}, store)
