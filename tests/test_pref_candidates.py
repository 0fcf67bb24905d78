"""Candidate generation: perturbations, half composition, region-aware items, rendering, model samples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, parse_output, render_target
from semanticface.errors import ConfigError
from semanticface.preferences.candidates import (
    CandidateConfig,
    compose_half,
    generate_candidates,
    perturb,
)
from semanticface.preferences.manifest import CandidateSet
from semanticface.render.avatar import AvatarRenderer
from semanticface.schema import BLENDSHAPES, LOWER_FACE, UPPER_FACE


def _label(seed: int) -> FaceCoefficients:
    return FaceCoefficients.from_array(np.random.default_rng(seed).uniform(0, 0.7, 52))


def test_perturb_and_compose_half():
    base, donor = _label(0), _label(1)
    noisy = perturb(base, 0.2, np.random.default_rng(0))
    assert np.all((noisy.blendshapes >= 0) & (noisy.blendshapes <= 1))
    assert not np.allclose(noisy.blendshapes, base.blendshapes) and np.array_equal(noisy.pose, base.pose)
    upper = compose_half(base, donor, "upper")
    assert all(upper[n] == donor[n] for n in UPPER_FACE) and all(upper[n] == base[n] for n in LOWER_FACE)
    lower = compose_half(base, donor, "lower")
    assert all(lower[n] == donor[n] for n in LOWER_FACE) and all(lower[n] == base[n] for n in UPPER_FACE)


def test_pseudo_label_candidates_full_and_region_modes(tmp_path):
    images = [Image.new("RGB", (48, 48), c) for c in ("red", "green", "blue")]
    labels = [_label(i) for i in range(3)]
    config = CandidateConfig(
        num_samples=0, num_perturbations=3, include_pseudo_label=True, region_mode="alternate", render_size=64
    )
    out = generate_candidates(tmp_path / "c", images, AvatarRenderer(), pseudo_labels=labels, config=config)
    reloaded = CandidateSet.load(tmp_path / "c")
    assert [item.region for item in reloaded] == ["upper", "lower", "upper"] == [item.region for item in out]
    for item, label in zip(reloaded, labels):
        assert len(item.candidates) == 4
        judged = UPPER_FACE if item.region == "upper" else LOWER_FACE
        other = [n for n in BLENDSHAPES if n not in judged]
        base = item.candidates[0].coefficients
        assert base == label and item.candidates[0].origin["kind"] == "pseudo_label"
        for candidate in item.candidates[1:]:
            assert candidate.origin["kind"] == "composed" and candidate.origin["donor"]["kind"] == "perturbation"
            assert all(candidate.coefficients[n] == base[n] for n in other)  # only the judged half differs
            assert any(candidate.coefficients[n] != base[n] for n in judged)
        for candidate in item.candidates:
            assert candidate.completion == render_target(candidate.coefficients, TargetConfig())
            with Image.open(reloaded.root / candidate.render) as render:
                assert render.size == (64, 64)
        # Different expressions render differently.
        renders = [np.asarray(Image.open(reloaded.root / c.render)) for c in item.candidates]
        assert not np.array_equal(renders[0], renders[1])
        assert (reloaded.root / item.image).is_file()


def test_config_and_inputs_are_checked(tmp_path):
    with pytest.raises(ConfigError):
        CandidateConfig(region_mode="left")
    with pytest.raises(ConfigError):
        CandidateConfig(temperatures=(0.0,))
    with pytest.raises(ConfigError, match="predictor"):
        generate_candidates(tmp_path, [Image.new("RGB", (8, 8))], AvatarRenderer())
    with pytest.raises(ConfigError, match="item id"):
        generate_candidates(
            tmp_path,
            [Image.new("RGB", (8, 8))],
            AvatarRenderer(),
            pseudo_labels=[_label(0)],
            item_ids=["../escape"],
            config=CandidateConfig(num_samples=0, num_perturbations=2),
        )


def test_model_samples_from_the_tiny_model(tmp_path, tiny_model_dir):
    from semanticface.inference import SemanticFacePredictor

    images = [Image.new("RGB", (56, 56), c) for c in ("red", "navy")]
    labels = [_label(0), _label(1)]
    config = CandidateConfig(num_samples=3, temperatures=(0.7, 1.3), max_new_tokens=12, num_perturbations=2)
    # Free generation: a random tiny model emits no coefficient block in 12 tokens, so its samples are dropped.
    free = SemanticFacePredictor.from_pretrained(tiny_model_dir, dtype="float32", device="cpu")
    out = generate_candidates(
        tmp_path / "free", images, AvatarRenderer(), predictor=free, pseudo_labels=labels, config=config
    )
    assert all([c.origin["kind"] for c in item.candidates] == ["perturbation"] * 2 for item in out)
    # Template-forced decoding: every sample parses; origins record temperature and seed.
    forced = SemanticFacePredictor.from_pretrained(
        tiny_model_dir, dtype="float32", device="cpu", decoding="forced", target_config=TargetConfig("coefficients")
    )
    config = CandidateConfig(num_samples=3, temperatures=(0.7, 1.3), max_new_tokens=1024, render_size=48)
    out = generate_candidates(tmp_path / "forced", images, AvatarRenderer(), predictor=forced, config=config)
    for item in out:
        assert len(item.candidates) == 3
        assert [(c.origin["kind"], c.origin["temperature"]) for c in item.candidates] == [
            ("sample", 0.7), ("sample", 0.7), ("sample", 1.3)
        ]  # fmt: skip
        for c in item.candidates:
            assert parse_output(c.raw_text).coefficients == c.coefficients
            assert c.completion == render_target(c.coefficients, TargetConfig("coefficients"))
