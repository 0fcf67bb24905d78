"""Simulated annotator: orders by distance to the truth (whole face or one half), noise, ties, same write path."""

from __future__ import annotations

import numpy as np
import pytest
from pref_helpers import make_candidate_set

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.preferences.manifest import Candidate, CandidateSet, Item
from semanticface.preferences.simulated import SimulatedAnnotator, SimulatedAnnotatorConfig, judged_channels
from semanticface.preferences.storage import RankingStore
from semanticface.schema import FACE_HALVES, LOWER_FACE, UPPER_FACE
from semanticface.testing.faces import random_face


def _item(region: str, offsets: dict[str, tuple[float, float]]) -> tuple[Item, FaceCoefficients]:
    """Candidates whose upper and lower halves are off the truth (all 0.2) by the given amounts."""
    truth = FaceCoefficients.from_array(np.full(52, 0.2))
    candidates = []
    for cid, (upper, lower) in offsets.items():
        values = {**{n: 0.2 + upper for n in UPPER_FACE}, **{n: 0.2 + lower for n in LOWER_FACE}}
        candidates.append(Candidate(cid, f"r/{cid}.png", truth.replace(**values), cid))
    return Item("it", "i.png", tuple(candidates), region), truth


def test_orders_by_distance_to_truth_whole_face_and_halves():
    item, truth = _item("full", {"a": (0.3, 0.3), "b": (0.0, 0.1), "c": (0.1, 0.0), "d": (0.02, 0.02)})
    ranking = SimulatedAnnotator().rank(item, truth)
    # d: 0.02 everywhere; b and c: 0.1 on one half (upper has 16 channels, lower 36): c is closer.
    assert ranking.groups == (("d",), ("c",), ("b",), ("a",))
    upper_item = Item("it", "i.png", item.candidates, "upper")
    assert SimulatedAnnotator().rank(upper_item, truth).groups[0] == ("b",)  # only the upper half counts
    lower_item = Item("it", "i.png", item.candidates, "lower")
    assert SimulatedAnnotator().rank(lower_item, truth).groups[0] == ("c",)
    assert set(judged_channels("upper")) == set(FACE_HALVES["upper"])
    assert set(judged_channels("full", ["mouth"])) < set(LOWER_FACE)


def test_ties_all_bad_and_noise():
    item, truth = _item("full", {"a": (0.10, 0.10), "b": (0.105, 0.105), "c": (0.4, 0.4)})
    tied = SimulatedAnnotator(SimulatedAnnotatorConfig(tie_threshold=0.01)).rank(item, truth)
    assert tied.groups == (("a", "b"), ("c",))
    strict = SimulatedAnnotator(SimulatedAnnotatorConfig(all_bad_threshold=0.05)).rank(item, truth)
    assert strict.all_bad
    # Heavy noise scrambles the order for some items; no noise never does. Noise is reproducible per item.
    noisy = SimulatedAnnotator(SimulatedAnnotatorConfig(noise=0.5, seed=1))
    orders = {noisy.rank(Item(f"it{i}", "i.png", item.candidates), truth).groups for i in range(30)}
    assert len(orders) > 1
    assert noisy.rank(item, truth) == noisy.rank(item, truth)
    with pytest.raises(ConfigError):
        SimulatedAnnotatorConfig(noise=-1)
    with pytest.raises(ConfigError):
        SimulatedAnnotatorConfig(regions=("forehead",))


def test_noise_lowers_agreement_with_truth_order(tmp_path):
    candidates = make_candidate_set(tmp_path / "c", n_items=40, k=4)
    rng = np.random.default_rng(3)
    truths = {item.id: random_face(rng, 0.6) for item in candidates}

    def best_is_closest(noise: float) -> float:
        annotator = SimulatedAnnotator(SimulatedAnnotatorConfig(noise=noise))
        hits = 0
        for item in candidates:
            errors = [np.abs(c.coefficients.blendshapes - truths[item.id].blendshapes).mean() for c in item.candidates]
            hits += annotator.rank(item, truths[item.id]).groups[0][0] == item.candidates[int(np.argmin(errors))].id
        return hits / len(candidates)

    assert best_is_closest(0.0) == 1.0
    assert best_is_closest(0.2) < 0.8


def test_writes_through_the_store_idempotently(tmp_path):
    candidates = make_candidate_set(tmp_path / "c", n_items=5, k=3)
    truths = {item.id: item.candidates[1].coefficients for item in candidates}
    store = RankingStore(tmp_path / "r.sqlite")
    annotator = SimulatedAnnotator(SimulatedAnnotatorConfig(name="sim-1"))
    assert annotator.annotate(candidates, truths, store) == 5
    assert annotator.annotate(candidates, truths, store) == 0  # same submissions again: stored once
    rankings = store.rankings(annotator="sim-1")
    assert len(rankings) == 5 and all(r.groups[0] == ("c1",) for r in rankings)
    with pytest.raises(DatasetError, match="no ground truth"):
        annotator.annotate(CandidateSet.load(tmp_path / "c"), {}, store)
