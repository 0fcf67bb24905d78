"""Synthetic datasets: row layout, identity-disjoint splits, exact labels, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.cli import main
from semanticface.errors import ConfigError
from semanticface.render import AvatarRenderer
from semanticface.rows import COEFFICIENT_COLUMNS, dataset_coefficients
from semanticface.sampling import SamplingConfig
from semanticface.synth import SynthConfig, assign_identities, parse_splits, plan, synthesize


def test_identity_assignment_is_disjoint_and_covers_all():
    config = SynthConfig(identities=13, splits={"train": 0.7, "validation": 0.2, "test": 0.1})
    groups = assign_identities(config)
    ids = [i for g in groups.values() for i in g]
    assert sorted(ids) == list(range(13)) and all(groups.values())
    assert len(groups["train"]) > len(groups["test"])


def test_plan_is_deterministic_and_sized():
    config = SynthConfig(n=37, identities=6, seed=4)
    a, b = plan(config), plan(config)
    assert a == b and sum(len(v) for v in a.values()) == 37
    assert plan(SynthConfig(n=37, identities=6, seed=5)) != a


def test_synthesize_avatar_dataset(tmp_path):
    config = SynthConfig(n=24, identities=6, size=64, seed=3, sampling=SamplingConfig(source="sparse"))
    dataset = synthesize(config, tmp_path / "ds")
    assert set(dataset) == {"train", "validation", "test"}
    assert sum(len(s) for s in dataset.values()) == 24
    seen: dict[int, str] = {}
    for name, split in dataset.items():
        assert set(COEFFICIENT_COLUMNS) <= set(split.column_names)
        assert {"images", "identity", "style", "source", "renderer"} <= set(split.column_names)
        for identity in split["identity"]:
            assert seen.setdefault(identity, name) == name, f"identity {identity} is in two splits"
    row = dataset["train"][0]
    assert len(row["images"]) == 1 and row["images"][0].size == (64, 64)
    assert row["renderer"] == f"avatar-{row['style']}" and row["source"] == "sparse"
    # The stored label re-renders to exactly the stored image: labels are exact, not approximate.
    coefficients = dataset_coefficients(dataset["train"].select([0]))[0]
    again = AvatarRenderer(row["style"]).render(coefficients, identity=row["identity"], size=64)
    assert np.array_equal(np.asarray(again), np.asarray(row["images"][0].convert("RGB")))
    assert (tmp_path / "ds" / "synth_config.json").is_file()


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["synth", "--n", "12", "--out", str(out), "--size", "48", "--identities", "4", "--styles", "flat",
                 "--source", "uniform", "--splits", "train=3,test=1"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "train:" in text and "test:" in text and "wrote 12 images" in text
    from datasets import load_from_disk

    dataset = load_from_disk(str(out))
    assert set(dataset) == {"train", "test"} and set(dataset["train"]["style"]) == {"flat"}


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["synth", "--n", "5", "--out", str(tmp_path / "x"), "--renderer", "mesh"]) == 1
    assert "mesh_dir" in capsys.readouterr().err
    assert main(["synth", "--n", "5", "--out", str(tmp_path / "x"), "--source", "llf"]) == 1
    with pytest.raises(ConfigError):
        parse_splits("train=abc")
    with pytest.raises(ConfigError):
        SynthConfig(identities=2, splits={"a": 1, "b": 1, "c": 1})


def test_mesh_dataset_from_llf(shared_data, tmp_path):
    config = SynthConfig(
        renderer="mesh",
        n=6,
        identities=3,
        size=64,
        mesh_dir=str(shared_data / "meshes" / "ict_facekit"),
        sampling=SamplingConfig(source="llf", recordings=(str(shared_data / "llf" / "alexdjulin__alex_rom_3.csv"),)),
    )
    dataset = synthesize(config, tmp_path / "mesh")
    rows = [r for split in dataset.values() for r in split]
    assert {r["renderer"] for r in rows} == {"mesh"}
    assert all(r["source"].startswith("llf") for r in rows)
