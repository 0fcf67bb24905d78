"""recipes/benchmarks/semantic.py: the arms' targets (matched number weight, filler of the description's length)
and the whole benchmark in --quick mode (slow stage)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import FreeText, LiteralPiece, TargetConfig, parse_output, render_target, target_skeleton
from semanticface.testing.faces import random_faces

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_semantic", REPO / "recipes" / "benchmarks" / "semantic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen3_dir):
    from semanticface.modeling import load_processor

    processor = load_processor(tiny_qwen3_dir)
    return getattr(processor, "tokenizer", processor)


def _faces(n: int = 12) -> list[FaceCoefficients]:
    return random_faces(n, high=0.8, active=0.3)


def test_matched_weight_gives_the_numbers_the_coefficients_share(bench, tokenizer):
    shares = bench.token_shares(tokenizer, _faces())
    assert shares["semantic_number_tokens"] == shares["coefficients_number_tokens"]  # the same 52 values
    assert shares["semantic_tokens"] > shares["coefficients_tokens"] + shares["description_tokens"] * 0.9
    w = bench.matched_weight(shares)
    numbers, other = shares["semantic_number_tokens"], shares["semantic_tokens"] - shares["semantic_number_tokens"]
    share = shares["coefficients_number_tokens"] / shares["coefficients_tokens"]
    assert w > 1 and w * numbers / (w * numbers + other) == pytest.approx(share)


def test_filler_replaces_the_description_with_fixed_text_of_its_length(bench, tokenizer, tmp_path):
    folder = bench.filler_templates(tokenizer, 90, tmp_path / "filler")
    text = (folder / "description.j2").read_text().strip()
    assert abs(len(tokenizer(text, add_special_tokens=False)["input_ids"]) - 90) <= 2
    assert not re.search(r"[0-9{}]", text)  # no number tokens, nothing the block parser or Jinja could read
    config = TargetConfig(target_format="semantic", template_dir=str(folder))
    face = _faces(1)[0]
    target = render_target(face, config)
    assert target.startswith(text) and "Muscle movements" not in target
    assert render_target(_faces(2)[1], config).startswith(text)  # the same text for every face
    parsed = parse_output(target)
    assert np.allclose(parsed.coefficients.blendshapes, face.quantized(2).blendshapes)
    skeleton = target_skeleton(config)  # forced decoding forces the filler: no free-text slot to fill
    assert isinstance(skeleton[0], LiteralPiece) and skeleton[0].text.startswith(text)
    assert not any(isinstance(s, FreeText) for s in skeleton)


def test_seeds_are_spread_over_workers_by_cost(bench):
    assert bench.balance_seeds({0: 1.5, 1: 1.0, 2: 1.0}, 2) == [[0], [1, 2]]
    assert bench.balance_seeds({0: 1.5, 1: 1.0, 2: 1.0, 3: 1.0}, 2) == [[0, 3], [1, 2]]
    assert bench.balance_seeds({0: 1.0, 1: 1.0}, 4) == [[0], [1]]  # no idle worker
    assert bench.balance_seeds({0: 1.0, 1: 1.0, 2: 1.0}, 1) == [[0, 1, 2]]
    with pytest.raises(ValueError):
        bench.balance_seeds({0: 1.0}, 0)


@pytest.mark.slow
def test_quick_mode_writes_the_report(bench, tmp_path):
    # Two seeds in two worker processes (--jobs 2), then the report from their stored stages.
    out = tmp_path / "quick"
    bench.main(["--quick", "--seeds", "2", "--jobs", "2", "--out", str(out)])
    assert "seeds [1]" in (out / "worker1.log").read_text()
    report = json.loads((out / "report.json").read_text())
    assert set(report["arms"]) == set(bench.ARMS)
    for arm in report["arms"].values():
        assert {"mae", "mae_se", "per_seed", "curve", "description"} <= set(arm)
        assert set(arm["curve"]) == {"0.25", "0.5", "1.0"} and set(arm["readouts"]) == {"median", "greedy"}
        assert 0 < arm["mae"] < 1 and len(arm["per_seed"]) == 2
    assert report["arms"]["coefficients"]["description"] is None  # nothing to judge without a description
    assert {f"{arm} vs coefficients (median)" for arm in bench.ARMS[1:]} <= set(report["comparisons"])
    assert "shaded+mesh -> flat (unseen)" in report["domains"] and "flat -> shaded (seen)" in report["domains"]
    assert report["seeds"]["seed0"]["targets"]["shaded+mesh"]["number_token_weight"] > 1
    assert (out / "seed0" / "errors.jsonl").is_file()
