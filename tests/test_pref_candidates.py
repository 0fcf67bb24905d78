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
from semanticface.testing.faces import face_dataset, random_face


def _label(seed: int) -> FaceCoefficients:
    return random_face(np.random.default_rng(seed), 0.7)


def test_perturb_and_compose_half():
    base, donor = _label(0), _label(1)
    noisy = perturb(base, 0.2, np.random.default_rng(0))
    assert np.all((noisy.blendshapes >= 0) & (noisy.blendshapes <= 1))
    assert not np.allclose(noisy.blendshapes, base.blendshapes) and np.array_equal(noisy.pose, base.pose)
    upper = compose_half(base, donor, "upper")
    assert all(upper[n] == donor[n] for n in UPPER_FACE) and all(upper[n] == base[n] for n in LOWER_FACE)
    lower = compose_half(base, donor, "lower")
    assert all(lower[n] == donor[n] for n in LOWER_FACE) and all(lower[n] == base[n] for n in UPPER_FACE)


@pytest.fixture(scope="module")
def forced(tiny_model_dir):
    from semanticface.inference import SemanticFacePredictor

    return SemanticFacePredictor.from_pretrained(
        tiny_model_dir, dtype="float32", device="cpu", decoding="forced", target_config=TargetConfig("coefficients")
    )


def test_own_output_and_half_perturbations_in_region_modes(tmp_path, forced):
    images = [Image.new("RGB", (56, 56), c) for c in ("red", "green", "blue")]
    config = CandidateConfig(num_samples=0, num_perturbations=3, region_mode="alternate", render_size=64)
    out = generate_candidates(tmp_path / "c", images, AvatarRenderer(), predictor=forced, config=config)
    reloaded = CandidateSet.load(tmp_path / "c")
    own = forced.predict(images, number_estimate="median")
    assert [item.region for item in reloaded] == ["upper", "lower", "upper"] == [item.region for item in out]
    for item, prediction in zip(reloaded, own):
        assert len(item.candidates) == 4
        judged = UPPER_FACE if item.region == "upper" else LOWER_FACE
        other = [n for n in BLENDSHAPES if n not in judged]
        base = item.candidates[0].coefficients
        # The base is the model's own median-number output, not any label.
        assert base == prediction.coefficients and item.candidates[0].origin["kind"] == "own_output"
        assert item.candidates[0].origin["number_estimate"] == "median"
        for candidate in item.candidates[1:]:
            assert candidate.origin["kind"] == "composed"
            assert candidate.origin["donor"]["kind"] == "perturbation"
            assert candidate.origin["donor"]["of"] == "own_output"
            assert all(candidate.coefficients[n] == base[n] for n in other)  # only the judged half differs
            assert any(candidate.coefficients[n] != base[n] for n in judged)
        for candidate in item.candidates:
            assert candidate.completion == render_target(candidate.coefficients, TargetConfig("coefficients"))
            with Image.open(reloaded.root / candidate.render) as render:
                assert render.size == (64, 64)
        renders = [np.asarray(Image.open(reloaded.root / c.render)) for c in item.candidates]
        assert not np.array_equal(renders[0], renders[1])
        assert (reloaded.root / item.image).is_file()


def test_full_face_perturbations_alternate_halves(forced):
    from semanticface.preferences.candidates import own_output_proposals, perturbation_proposals

    config = CandidateConfig(num_samples=0, num_perturbations=4)
    own = own_output_proposals(forced, [Image.new("RGB", (56, 56), "red")], config)[0]
    assert own is not None
    proposals = perturbation_proposals(own, config, "full", 7)
    assert [p.origin["half"] for p in proposals] == ["upper", "lower", "upper", "lower"]
    for p in proposals:
        still = LOWER_FACE if p.origin["half"] == "upper" else UPPER_FACE
        assert all(p.coefficients[n] == own.coefficients[n] for n in still)


def _dataset(rows_truth, images):
    return face_dataset(rows_truth, images=images, identity_column=True)


def test_candidates_never_read_truth_columns(tmp_path, tiny_model_dir):
    """The CLI and the DPO rounds build the same candidates from a dataset whose coefficient columns hold the
    truth, hold poison (another face) or are removed: only the images are read."""
    from semanticface.cli import main
    from semanticface.preferences.rounds import DPOScriptArguments, write_candidates

    rng = np.random.default_rng(0)
    images = [AvatarRenderer().render(_label(i), identity=i, size=56) for i in range(3)]
    truth = _dataset([_label(i) for i in range(3)], images)
    poisoned = _dataset([random_face(rng, 1.0) for _ in range(3)], images)
    stripped = truth.select_columns(["images"])
    manifests = []
    for name, data in (("truth", truth), ("poisoned", poisoned), ("stripped", stripped)):
        data.save_to_disk(str(tmp_path / name))
        out = tmp_path / f"c-{name}"
        assert main([
            "candidates", "--dataset", str(tmp_path / name), "--model", str(tiny_model_dir), "--out", str(out),
            "--decoding", "forced", "--num-samples", "2", "--num-perturbations", "2", "--region-mode", "upper",
            "--render-size", "32", "--quiet",
        ]) == 0  # fmt: skip
        manifests.append([[c.coefficients for c in item.candidates] for item in CandidateSet.load(out)])
        args = DPOScriptArguments(dataset_name=str(tmp_path / name), decoding="forced")
        config = CandidateConfig(num_samples=1, num_perturbations=2, render_size=32)
        rounds = write_candidates(str(tiny_model_dir), data, [0, 1], tmp_path / f"r-{name}", args, config)
        manifests.append([[c.coefficients for c in item.candidates] for item in rounds])
    assert manifests[0] == manifests[2] == manifests[4] and manifests[0]
    assert manifests[1] == manifests[3] == manifests[5] and manifests[1]


def test_headroom_counts_items_where_a_candidate_beats_the_own_output(tmp_path, forced):
    from semanticface.preferences.headroom import headroom

    images = [Image.new("RGB", (56, 56), c) for c in ("red", "green")]
    config = CandidateConfig(num_samples=0, num_perturbations=3, render_size=32)
    out = generate_candidates(tmp_path / "h", images, AvatarRenderer(), predictor=forced, config=config)
    # Truth = the second candidate of item 0 (it must win), the own output of item 1 (nothing beats it).
    truths = {
        out.items[0].id: out.items[0].candidates[1].coefficients,
        out.items[1].id: out.items[1].candidates[0].coefficients,
    }
    result = headroom(out, truths)
    assert result.items == 2 and result.best_beats_own == 0.5
    assert result.best_distance == pytest.approx(0.0) and result.own_distance > 0 and result.mean_gain > 0


def test_config_and_inputs_are_checked(tmp_path):
    with pytest.raises(ConfigError):
        CandidateConfig(region_mode="left")
    with pytest.raises(ConfigError):
        CandidateConfig(temperatures=(0.0,))
    with pytest.raises(ConfigError, match="own_output"):
        CandidateConfig(num_perturbations=2, include_own_output=False)
    with pytest.raises(ConfigError, match="predictor"):
        generate_candidates(tmp_path, [Image.new("RGB", (8, 8))], AvatarRenderer(), predictor=None)


def test_model_samples_from_the_tiny_model(tmp_path, tiny_model_dir):
    from semanticface.inference import SemanticFacePredictor

    images = [Image.new("RGB", (56, 56), c) for c in ("red", "navy")]
    config = CandidateConfig(num_samples=3, temperatures=(0.7, 1.3), max_new_tokens=12, num_perturbations=2)
    # Free generation: a random tiny model emits no coefficient block in 12 tokens: no own output, no samples,
    # nothing to perturb (the data's coefficients are never a fallback), so no item.
    free = SemanticFacePredictor.from_pretrained(tiny_model_dir, dtype="float32", device="cpu")
    out = generate_candidates(tmp_path / "free", images, AvatarRenderer(), predictor=free, config=config)
    assert len(out) == 0
    # Template-forced decoding: every sample parses; origins record temperature and seed.
    forced = SemanticFacePredictor.from_pretrained(
        tiny_model_dir, dtype="float32", device="cpu", decoding="forced", target_config=TargetConfig("coefficients")
    )
    config = CandidateConfig(
        num_samples=3, temperatures=(0.7, 1.3), max_new_tokens=1024, render_size=48, include_own_output=False
    )
    out = generate_candidates(tmp_path / "forced", images, AvatarRenderer(), predictor=forced, config=config)
    for item in out:
        assert len(item.candidates) == 3
        assert [(c.origin["kind"], c.origin["temperature"]) for c in item.candidates] == [
            ("sample", 0.7), ("sample", 0.7), ("sample", 1.3)
        ]  # fmt: skip
        for c in item.candidates:
            assert parse_output(c.raw_text).coefficients == c.coefficients
            assert c.completion == render_target(c.coefficients, TargetConfig("coefficients"))
