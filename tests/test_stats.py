"""Statistics for honest comparisons: mean ± s.e. across seeds, paired bootstrap CIs, per-image error files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semanticface.errors import ConfigError, DatasetError
from semanticface.evaluation.stats import (
    compare_per_image_errors,
    load_per_image_errors,
    mean_se,
    paired_bootstrap_ci,
    save_per_image_errors,
)
from semanticface.schema import BLENDSHAPES


def test_mean_se_known_answer():
    mean, se = mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1.0 / math.sqrt(3))  # sample std 1, n 3
    assert mean_se([0.5])[0] == 0.5 and math.isnan(mean_se([0.5])[1])
    with pytest.raises(DatasetError, match="index 1"):
        mean_se([1.0, float("nan")])
    with pytest.raises(DatasetError, match="no values"):
        mean_se([])


def test_identical_inputs_give_a_zero_interval():
    errors = np.random.default_rng(0).uniform(0, 0.2, 50)
    result = paired_bootstrap_ci(errors, errors, n_boot=500)
    assert result["mean_diff"] == 0 and result["ci_low"] == 0 and result["ci_high"] == 0
    assert not result["excludes_zero"] and result["ratio"] == pytest.approx(1.0)
    assert result["ratio_ci_low"] == pytest.approx(1.0) and result["ratio_ci_high"] == pytest.approx(1.0)


def test_constant_shift_is_recovered_and_noise_widens_the_interval():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.05, 0.15, 200)
    exact = paired_bootstrap_ci(b + 0.02, b, n_boot=1000)
    assert exact["ci_low"] == pytest.approx(0.02) and exact["ci_high"] == pytest.approx(0.02)
    assert exact["excludes_zero"] and exact["n"] == 200
    noisy = paired_bootstrap_ci(b + 0.02 + rng.normal(0, 0.01, 200), b, n_boot=2000)
    assert noisy["ci_low"] < 0.02 < noisy["ci_high"] and noisy["ci_low"] > 0.015 and noisy["ci_high"] < 0.025
    # Standard error of the mean difference is 0.01 / sqrt(200) ~ 0.0007: a 95% interval is ~4 of them wide.
    assert 0.0015 < noisy["ci_high"] - noisy["ci_low"] < 0.004
    assert noisy["ratio_ci_low"] < noisy["ratio"] < noisy["ratio_ci_high"] and noisy["ratio"] > 1


def test_small_noisy_difference_is_not_significant_and_seed_reproduces():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 1, 20), rng.uniform(0, 1, 20)
    first = paired_bootstrap_ci(a, b, n_boot=3000, seed=7)
    assert first == paired_bootstrap_ci(a, b, n_boot=3000, seed=7)
    assert first != paired_bootstrap_ci(a, b, n_boot=3000, seed=8)
    assert first["ci_low"] < 0 < first["ci_high"] and not first["excludes_zero"]
    assert first["mean_diff"] == pytest.approx(a.mean() - b.mean())
    narrower = paired_bootstrap_ci(a, b, n_boot=3000, seed=7, confidence=0.5)
    assert narrower["ci_high"] - narrower["ci_low"] < first["ci_high"] - first["ci_low"]


def test_bootstrap_refuses_mismatched_or_non_finite_input():
    with pytest.raises(DatasetError, match="3 errors for a, 2 for b"):
        paired_bootstrap_ci([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(DatasetError, match="errors_b: value at index 1 is nan"):
        paired_bootstrap_ci([0.1, 0.2], [0.1, float("nan")])
    with pytest.raises(ConfigError, match="confidence"):
        paired_bootstrap_ci([0.1], [0.2], confidence=1.0)
    with pytest.raises(ConfigError, match="n_boot"):
        paired_bootstrap_ci([0.1], [0.2], n_boot=0)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_per_image_errors_round_trip_and_compare(tmp_path, suffix):
    rng = np.random.default_rng(3)
    matrix = rng.uniform(0, 0.3, (8, len(BLENDSHAPES)))
    matrix[2, 5] = np.nan  # a cell not scored (truth missing)
    ids = [f"face-{i}" for i in range(8)]
    path = tmp_path / f"errors{suffix}"
    save_per_image_errors(path, ids, matrix, system="model")
    save_per_image_errors(path, ids[::-1], matrix[::-1] + 0.01, system="median", append=True)
    model = load_per_image_errors(path, system="model")
    assert model.row_ids == ids and model.channels == BLENDSHAPES
    assert np.allclose(model.errors, np.nanmean(matrix, axis=1))
    assert np.isnan(model.channel_errors[2, 5]) and np.allclose(model.channel_errors[0], matrix[0])
    with pytest.raises(DatasetError, match="several systems"):
        load_per_image_errors(path)
    with pytest.raises(DatasetError, match="already holds"):
        save_per_image_errors(path, ids, matrix, system="model", append=True)
    result = compare_per_image_errors(path, path, system_a="model", system_b="median", n_boot=500)
    # Rows are aligned by id even though "median" was saved in reverse order: an exact shift of -0.01.
    assert result["mean_diff"] == pytest.approx(-0.01)
    assert result["ci_low"] == pytest.approx(-0.01) and result["ci_high"] == pytest.approx(-0.01)
    assert result["system_a"] == "model" and result["system_b"] == "median"


def test_per_image_vectors_and_mismatched_rows(tmp_path):
    a = save_per_image_errors(tmp_path / "a.jsonl", [0, 1, 2], [0.1, 0.2, 0.3], system="run-a")
    b = save_per_image_errors(tmp_path / "b.jsonl", [0, 1, 3], [0.1, 0.2, 0.3], system="run-b")
    assert load_per_image_errors(a).channel_errors is None
    with pytest.raises(DatasetError, match=r"only in run-a \(e.g. '2'\).*only in run-b \(e.g. '3'\)"):
        compare_per_image_errors(a, b)
    with pytest.raises(DatasetError, match="row id '1' appears twice"):
        save_per_image_errors(tmp_path / "c.jsonl", [0, 1, 1], [0.1, 0.2, 0.3], system="x")
    with pytest.raises(DatasetError, match="2 row ids for 3 rows"):
        save_per_image_errors(tmp_path / "c.jsonl", [0, 1], [0.1, 0.2, 0.3], system="x")
    with pytest.raises(DatasetError, match="index 2 is nan"):
        save_per_image_errors(tmp_path / "c.jsonl", [0, 1, 2], [0.1, 0.2, float("nan")], system="x")
    with pytest.raises(ConfigError, match="jsonl or .csv"):
        save_per_image_errors(tmp_path / "c.txt", [0], [0.1], system="x")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"row": 0, "system": "x", "mae": 0.1}\n{"row": 1, "system": "x", "mae": "lots"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl, line 2, field 'mae'"):
        load_per_image_errors(bad)
    bad.write_text('{"row": 0, "system": "x", "mae": 0.1, "errors": {"jawOpen": 0.1}}\n')
    with pytest.raises(DatasetError, match="no system 'y'"):
        load_per_image_errors(bad, system="y")
