"""Expression sampling: deterministic, valid, and faithful to the recordings it draws from."""

from __future__ import annotations

import numpy as np
import pytest

from semanticface.errors import ConfigError, DatasetError
from semanticface.llf import write_llf
from semanticface.sampling import ExpressionSampler, FramePool, SamplingConfig, sample_expressions
from semanticface.schema import CHANNEL_INDEX, NUM_BLENDSHAPES


def _values(samples) -> np.ndarray:
    return np.stack([s.coefficients.values for s in samples])


def test_same_seed_same_samples_and_different_seed_differs():
    config = SamplingConfig(source="uniform")
    a, b = sample_expressions(config, 20, seed=5), sample_expressions(config, 20, seed=5)
    assert np.array_equal(_values(a), _values(b))
    assert not np.array_equal(_values(a), _values(sample_expressions(config, 20, seed=6)))


def test_uniform_covers_every_channel_and_pose_stays_in_range():
    values = _values(sample_expressions(SamplingConfig(source="uniform", head_pose=0.4), 300, seed=1))
    blend = values[:, :NUM_BLENDSHAPES]
    assert blend.min() >= 0 and blend.max() <= 1
    assert (blend.max(axis=0) > 0.9).all()  # every blendshape reaches high values
    head = values[:, CHANNEL_INDEX["HeadYaw"] : CHANNEL_INDEX["HeadRoll"] + 1]
    assert np.abs(head).max() <= 0.4 and np.abs(head).max() > 0.3
    assert (values[:, CHANNEL_INDEX["LeftEyeYaw"]] == 0).all()  # gaze comes from eyeLook blendshapes


def test_sparse_samples_have_few_active_channels():
    config = SamplingConfig(source="sparse", min_active=2, max_active=4, neutral_fraction=0.0, head_pose=0.0)
    samples = sample_expressions(config, 200, seed=2)
    active = (_values(samples)[:, :NUM_BLENDSHAPES] > 0).sum(axis=1)
    assert active.min() == 2 and active.max() == 4
    assert {s.source for s in samples} == {"sparse"}
    assert (_values(samples)[:, NUM_BLENDSHAPES:] == 0).all()


def test_llf_samples_are_recorded_frames_mixes_or_jittered(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((50, 61))
    frames[:, :NUM_BLENDSHAPES] = rng.random((50, NUM_BLENDSHAPES))
    write_llf(tmp_path / "take.csv", frames)
    exact = SamplingConfig(source="llf", recordings=(str(tmp_path / "*.csv"),), mix_probability=0, jitter=0,
                           head_pose=0)  # fmt: skip
    samples = sample_expressions(exact, 40, seed=3)
    for sample in samples:
        distance = np.abs(frames - sample.coefficients.values).max(axis=1).min()
        assert distance < 1e-6 and sample.source.startswith("llf:take.csv#")
    mixed = SamplingConfig(source="llf", recordings=(str(tmp_path / "take.csv"),), mix_probability=1.0, jitter=0)
    for sample in sample_expressions(mixed, 10, seed=4):
        assert sample.source.startswith("llf-mix:take.csv#")
        blend = sample.coefficients.blendshapes
        assert blend.min() >= frames[:, :NUM_BLENDSHAPES].min(axis=0).min() - 1e-9
    jittered = SamplingConfig(source="llf", recordings=(str(tmp_path / "take.csv"),), mix_probability=0,
                              jitter=0.05, head_pose=0)  # fmt: skip
    values = _values(sample_expressions(jittered, 30, seed=5))
    gaps = [np.abs(frames - v).max(axis=1).min() for v in values]
    assert 0.01 < np.median(gaps) < 0.3


def test_real_recordings(shared_data):
    pool = FramePool.from_patterns([str(shared_data / "llf" / "*.csv")])
    assert len(pool) > 5000 and len(pool.origins) == 5
    assert np.isfinite(pool.values).all()  # tracking-lost rows were skipped, not zero-filled
    sampler = ExpressionSampler(SamplingConfig(source="llf", recordings=("unused",)), seed=0, pool=pool)
    values = _values(sampler.draw(200))
    assert values[:, :NUM_BLENDSHAPES].mean() > 0.02  # real expressions, not rest faces
    assert np.abs(values[:, CHANNEL_INDEX["HeadYaw"]]).max() > 0.1  # head pose added (LLF records none)


def test_bad_configs_and_missing_files_raise(tmp_path):
    with pytest.raises(ConfigError):
        SamplingConfig(source="gaussian")
    with pytest.raises(ConfigError):
        SamplingConfig(source="llf")
    with pytest.raises(ConfigError):
        SamplingConfig(min_active=5, max_active=2)
    with pytest.raises(DatasetError, match="no Live Link Face CSV matches"):
        ExpressionSampler(SamplingConfig(source="llf", recordings=(str(tmp_path / "*.csv"),)))


def test_prototype_faces_are_whole_expressions_that_stage1_recognises():
    from collections import Counter

    from semanticface.semantics import PROTOTYPES, describe

    samples = sample_expressions(SamplingConfig(source="prototype", jitter=0.0), 700, seed=2)
    assert {s.source for s in samples} == {"prototype"}
    values = _values(samples)[:, :NUM_BLENDSHAPES]
    assert values.min() >= 0 and values.max() <= 1
    categories = Counter(describe(s.coefficients).category.split(" ")[0] for s in samples)
    # Every basic emotion appears, recognised by the same EMFACS rules stage 1 describes faces with.
    assert {p.emotion for p in PROTOTYPES} <= set(categories)
    assert categories["other"] < 0.1 * len(samples)
    # Channels move together as in real faces: the two lip corners of a smile, the two lids of a blink.
    left, right = CHANNEL_INDEX["mouthSmileLeft"], CHANNEL_INDEX["mouthSmileRight"]
    assert np.corrcoef(values[:, left], values[:, right])[0, 1] > 0.9
    assert sample_expressions(SamplingConfig(source="prototype"), 5, seed=2) == sample_expressions(
        SamplingConfig(source="prototype"), 5, seed=2
    )
