"""Leak-free splits: identities and expression sources (whole recordings, or time blocks with a gap)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semanticface.errors import ConfigError
from semanticface.llf import write_llf
from semanticface.sampling import FramePool, SamplingConfig
from semanticface.schema import NUM_BLENDSHAPES
from semanticface.splits import nearest_distances, resolve_mode, split_pool
from semanticface.synth import PROVENANCE_FILENAME, SynthConfig, plan_splits, source_frames, synthesize

SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _takes(folder, count: int, frames: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    for k in range(count):
        values = np.zeros((frames, 61))
        values[:, :NUM_BLENDSHAPES] = rng.random((frames, NUM_BLENDSHAPES))
        write_llf(folder / f"take{k}.csv", values)
    return str(folder / "*.csv")


def _frames_by_split(jobs) -> dict[str, set[str]]:
    return {name: {f for row in rows for f in source_frames(row["source"])} for name, rows in jobs.items()}


def _config(pattern: str, holdout: str, **kwargs) -> SynthConfig:
    sampling = SamplingConfig(source="llf", recordings=(pattern,), **kwargs)
    return SynthConfig(n=600, identities=10, splits=SPLITS, sampling=sampling, expression_holdout=holdout)


@pytest.mark.parametrize("mix", [0.0, 0.5])
def test_recording_holdout_shares_no_identity_no_frame_no_take(tmp_path, mix):
    pattern = _takes(tmp_path, 6, 80)
    result = plan_splits(_config(pattern, "recording", mix_probability=mix))
    assert result.provenance["expression_holdout"] == "recording"
    identities = result.provenance["identities"]
    assert not set(identities["train"]) & set(identities["test"])
    assert not set(identities["train"]) & set(identities["validation"])
    for name, rows in result.jobs.items():
        assert {row["identity"] for row in rows} <= set(identities[name])
    frames = _frames_by_split(result.jobs)
    takes = {name: {f.split("#")[0] for f in fs} for name, fs in frames.items()}
    assert frames["test"] and not frames["train"] & frames["test"] and not frames["train"] & frames["validation"]
    assert not takes["train"] & takes["test"] and not takes["train"] & takes["validation"]
    check = result.provenance["nearest_training_expression"]["test"]
    assert check["shared_source_frame_fraction"] == 0 and check["n"] == len(result.jobs["test"])


@pytest.mark.parametrize("gap", [0, 7, 30])
def test_block_holdout_keeps_a_gap_between_splits(tmp_path, gap):
    pattern = _takes(tmp_path, 2, 500)
    config = _config(pattern, "block", mix_probability=0.3)
    config.block_frames, config.block_gap = 40, gap
    result = plan_splits(config)
    assert result.provenance["expression_holdout"] == "block"
    numbers: dict[str, dict[str, set[int]]] = {}
    for name, frames in _frames_by_split(result.jobs).items():
        for frame in frames:
            take, _, number = frame.partition("#")
            numbers.setdefault(name, {}).setdefault(take, set()).add(int(number))
    for held_out in ("validation", "test"):
        for take, test_frames in numbers[held_out].items():
            train = np.array(sorted(numbers["train"].get(take, set())))
            if len(train):
                nearest = min(int(np.abs(train - f).min()) for f in test_frames)
                assert nearest > gap, f"{held_out} frame within {nearest} frames of a training frame in {take}"
    # Provenance ranges cover exactly the frames each split may draw from, disjoint across splits.
    ranges = result.provenance["splits"]
    for take in ("take0.csv", "take1.csv"):
        owned = [set().union(*(range(a, b) for a, b in ranges[s]["recordings"].get(take, []))) for s in SPLITS]
        assert not owned[0] & owned[1] and not owned[0] & owned[2] and not owned[1] & owned[2]
        assert 500 - len(owned[0] | owned[1] | owned[2]) <= gap * 500 // 40  # only gaps are dropped


def test_no_holdout_leaks_and_the_check_reports_it(tmp_path):
    pattern = _takes(tmp_path, 2, 60)
    result = plan_splits(_config(pattern, "none", mix_probability=0.0, jitter=0.0))
    check = result.provenance["nearest_training_expression"]["test"]
    assert check["shared_source_frame_fraction"] > 0.5 and check["min"] == 0.0


def test_auto_mode_and_errors(tmp_path):
    assert resolve_mode("auto", recordings=6, splits=3) == "recording"
    assert resolve_mode("auto", recordings=5, splits=3) == "block"
    with pytest.raises(ConfigError, match="one recording per split"):
        resolve_mode("recording", recordings=2, splits=3)
    with pytest.raises(ConfigError, match="expression_holdout"):
        SynthConfig(expression_holdout="frames")
    pool = FramePool.from_patterns([_takes(tmp_path, 1, 10)])
    with pytest.raises(ConfigError, match="received no recorded frames"):
        split_pool(pool, SPLITS, "block", block_frames=100)


def test_nearest_distances():
    train = np.zeros((3, 61))
    test = np.zeros((2, 61))
    test[1, :NUM_BLENDSHAPES] = 0.5
    assert nearest_distances(test, train).tolist() == [0.0, 0.5]


def test_synthesize_saves_provenance(tmp_path):
    pattern = _takes(tmp_path, 6, 40)
    config = SynthConfig(
        n=30, identities=6, size=48, styles=("flat",), splits=SPLITS, expression_holdout="recording",
        sampling=SamplingConfig(source="llf", recordings=(pattern,)),
    )  # fmt: skip
    dataset = synthesize(config, tmp_path / "ds")
    provenance = json.loads((tmp_path / "ds" / PROVENANCE_FILENAME).read_text())
    assert set(provenance["splits"]) == set(SPLITS) and provenance["expression_holdout"] == "recording"
    for name, split in dataset.items():
        takes = {f.split("#")[0] for s in split["source"] for f in source_frames(s)}
        assert takes <= set(provenance["splits"][name]["recordings"])
        assert set(split["identity"]) <= set(provenance["identities"][name])


def test_real_recordings_default_to_block_holdout(shared_data):
    config = SynthConfig(
        n=400, sampling=SamplingConfig(source="llf", recordings=(str(shared_data / "llf" / "*.csv"),))
    )
    result = plan_splits(config)
    assert result.provenance["expression_holdout"] == "block"  # 5 takes < 2 per split
    assert result.provenance["nearest_training_expression"]["test"]["shared_source_frame_fraction"] == 0
