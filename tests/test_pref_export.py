"""Rankings -> TRL preference dataset: pairs, ties and "all bad" dropped, margin/annotator kept, TRL collates it."""

from __future__ import annotations

import pytest
from pref_helpers import make_candidate_set

from semanticface.contract import TargetConfig, build_prompt_messages, render_target
from semanticface.errors import ConfigError, DatasetError
from semanticface.preferences.export import ExportConfig, preference_dataset, preference_rows, ranking_pairs
from semanticface.preferences.manifest import Candidate, CandidateSet, Item
from semanticface.preferences.storage import Ranking, RankingStore


@pytest.fixture()
def ranked(tmp_path):
    base = make_candidate_set(tmp_path / "c", n_items=3, k=4)
    # Completions are real contract targets, as the candidate builder writes them.
    items = [
        Item(
            item.id,
            item.image,
            tuple(
                Candidate(c.id, c.render, c.coefficients, render_target(c.coefficients), c.origin)
                for c in item.candidates
            ),
            item.region,
        )
        for item in base
    ]
    candidates = CandidateSet(base.root, items)
    candidates.save()
    store = RankingStore(tmp_path / "r.sqlite")
    ids = ["c0", "c1", "c2", "c3"]
    store.submit(Ranking("item-000", "ana", (("c2",), ("c0", "c3"), ("c1",)), False, "sub-ana-0"), ids)
    store.submit(Ranking("item-001", "ana", (("c1",), ("c0",), ("c2",), ("c3",)), False, "sub-ana-1"), ids)
    store.submit(Ranking("item-002", "ana", (("c0",), ("c1",), ("c2",), ("c3",)), True, "sub-ana-2"), ids)
    store.submit(Ranking("item-000", "bo", (("c0", "c1", "c2", "c3"),), False, "sub-bo-00"), ids)
    return CandidateSet.load(tmp_path / "c"), store


def test_pairs_all_and_best_vs_rest():
    ranking = Ranking("i", "a", (("c2",), ("c0", "c3"), ("c1",)), False, "s" * 8)
    assert ranking_pairs(ranking, "all") == [
        ("c2", "c0", 1),
        ("c2", "c3", 1),
        ("c2", "c1", 2),
        ("c0", "c1", 1),
        ("c3", "c1", 1),
    ]
    assert ranking_pairs(ranking, "best_vs_rest") == [("c2", "c0", 1), ("c2", "c3", 1), ("c2", "c1", 2)]
    assert ranking_pairs(ranking, "all", min_margin=2) == [("c2", "c1", 2)]
    assert ranking_pairs(Ranking("i", "a", (("c0", "c1"),), False, "s" * 8)) == []  # all tied: nothing


def test_dataset_columns_margin_annotator_and_drops(ranked, tmp_path):
    candidates, store = ranked
    prompt = build_prompt_messages(TargetConfig())
    dataset = preference_dataset(candidates, store.rankings(), prompt)
    # ana item-000: 5 pairs (the c0=c3 tie gives none); item-001: 6; item-002 all bad: dropped; bo all tied: none.
    assert len(dataset) == 11
    assert set(dataset.column_names) >= {"prompt", "chosen", "rejected", "images", "margin", "annotator"}
    row = dataset[0]
    assert row["prompt"][0]["role"] == "system" and row["prompt"][1]["content"][0]["type"] == "image"
    assert row["prompt"][1]["content"][1]["text"] == prompt[1]["content"][1]["text"]
    item = candidates.get("item-000")
    assert (row["chosen_id"], row["rejected_id"], row["margin"]) == ("c2", "c0", 1.0)
    assert row["chosen"] == [
        {"role": "assistant", "content": [{"type": "text", "text": item.candidate("c2").completion}]}
    ]
    assert row["rejected"][0]["content"][0]["text"] == render_target(item.candidate("c0").coefficients)
    assert row["images"][0].size == (32, 32) and row["annotator"] == "ana"
    assert not any(r["chosen_id"] == r["rejected_id"] for r in dataset)
    assert set(dataset["item_id"]) == {"item-000", "item-001"}

    best = preference_rows(candidates, store.rankings(), prompt, ExportConfig(pairs="best_vs_rest", keep_all_bad=True))
    assert len(best) == 3 + 3 + 3
    assert len(preference_rows(candidates, store.rankings(), prompt, ExportConfig(annotators=("bo",)))) == 0

    dataset.save_to_disk(tmp_path / "prefs")
    from datasets import load_from_disk

    reloaded = load_from_disk(tmp_path / "prefs")
    assert reloaded[3]["chosen"] == dataset[3]["chosen"] and reloaded[3]["images"][0].size == (32, 32)


def test_bad_inputs(ranked):
    candidates, store = ranked
    with pytest.raises(ConfigError):
        ExportConfig(pairs="some")
    with pytest.raises(ConfigError, match="image placeholder"):
        preference_rows(candidates, store.rankings(), [{"role": "user", "content": "no image"}])
    with pytest.raises(DatasetError, match="no preference pair"):
        preference_dataset(candidates, store.rankings(annotator="bo"), build_prompt_messages())
    stray = Ranking("item-404", "ana", (("c0",), ("c1",)), False, "sub-stray")
    with pytest.raises(DatasetError, match="item-404"):
        preference_rows(candidates, [stray], build_prompt_messages())


def test_trl_vision_collator_accepts_the_rows(ranked, tiny_model_dir):
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from semanticface.modeling import load_processor

    candidates, store = ranked
    dataset = preference_dataset(candidates, store.rankings(), build_prompt_messages())
    processor = load_processor(str(tiny_model_dir))
    batch = DataCollatorForVisionPreference(processor)([dataset[0], dataset[1]])
    assert batch["input_ids"].shape[0] == 4  # chosen and rejected of two pairs
    assert batch["completion_mask"].sum() > 0 and "pixel_values" in batch
