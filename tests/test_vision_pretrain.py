"""Vision-tower pretraining of a tiny random VLM: what trains, what is saved, that it learns, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from semanticface.errors import ConfigError, DatasetError
from semanticface.modeling import load_model_and_processor
from semanticface.training.vision_pretrain import RECORD_FILE, VisionPretrainConfig, pretrain_vision_tower


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Rendered avatar faces with their exact coefficients (training split of a small synthetic dataset)."""
    from semanticface.synth import SynthConfig, build_dataset

    out = tmp_path_factory.mktemp("faces")
    return build_dataset(SynthConfig(n=48, size=56, seed=0, identities=6), cache_dir=str(out / "cache"))["train"]


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / "model"))


def _is_vision(name: str) -> bool:
    return ".visual." in f".{name}"


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_qwen3_dir"])
def test_only_the_vision_tower_changes_and_the_checkpoint_loads(fixture, faces, tmp_path, request):
    checkpoint = _copy(request.getfixturevalue(fixture), tmp_path)
    before = load_file(checkpoint / "model.safetensors")

    record = pretrain_vision_tower(
        checkpoint, faces, VisionPretrainConfig(vision_pretrain_steps=20, vision_pretrain_batch_size=4)
    )

    after = load_file(checkpoint / "model.safetensors")
    assert after.keys() == before.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(_is_vision(name) for name in changed)
    assert any(_is_vision(name) and "patch_embed" in name for name in changed)  # gradient reaches the first layer
    assert record["steps"] == 20 and record["rows"] == len(faces)
    assert json.loads((checkpoint / RECORD_FILE).read_text())["steps"] == 20
    model, processor = load_model_and_processor(checkpoint)  # the same path the distillation recipe takes
    inputs = processor.image_processor(images=[faces[0]["images"][0]], return_tensors="pt")
    assert model.get_image_features(**inputs).pooler_output[0].isfinite().all()


@pytest.mark.parametrize(("loss", "pooling"), [("l1", "mean"), ("mse", "tokens")])
def test_image_features_learn_to_predict_the_coefficients(tiny_qwen3_dir, tmp_path, loss, pooling):
    from semanticface.sampling import SamplingConfig
    from semanticface.synth import SynthConfig, build_dataset

    # Uniformly sampled expressions: every channel varies, so the per-channel median (the head's start) is poor.
    config = SynthConfig(
        n=16, size=56, seed=1, identities=4, splits={"train": 1.0}, sampling=SamplingConfig("uniform")
    )
    faces = build_dataset(config, cache_dir=str(tmp_path / "cache"))["train"]
    checkpoint = _copy(tiny_qwen3_dir, tmp_path)
    config = VisionPretrainConfig(
        vision_pretrain_steps=200, vision_pretrain_loss=loss, vision_pretrain_pooling=pooling
    )
    record = pretrain_vision_tower(checkpoint, faces, config)
    assert record["loss"] == loss and record["final_loss"] < 0.7 * record["initial_loss"], record


def test_bad_input_is_refused_with_a_clear_error(tiny_model_dir, faces, tmp_path):
    with pytest.raises(ConfigError, match="not a local checkpoint directory"):
        pretrain_vision_tower(tmp_path / "nowhere", faces)
    with pytest.raises(DatasetError, match="'images' column"):
        pretrain_vision_tower(tiny_model_dir, faces.remove_columns("images"))
    with pytest.raises(DatasetError, match="coefficient column"):
        pretrain_vision_tower(tiny_model_dir, faces.remove_columns("jawOpen"))
    with pytest.raises(ConfigError, match="vision_pretrain_steps"):
        VisionPretrainConfig(vision_pretrain_steps=-1)
    with pytest.raises(ConfigError, match="vision_pretrain_loss"):
        VisionPretrainConfig(vision_pretrain_loss="huber")
    with pytest.raises(ConfigError, match="vision_pretrain_pooling"):
        VisionPretrainConfig(vision_pretrain_pooling="max")


def test_landmark_pretraining_learns_the_geometry_without_coefficients(tiny_qwen3_dir, tmp_path):
    from semanticface.render.avatar import KEYPOINT_NAMES
    from semanticface.sampling import SamplingConfig
    from semanticface.synth import SynthConfig, build_dataset

    config = SynthConfig(
        n=16, size=56, seed=1, identities=4, splits={"train": 1.0}, sampling=SamplingConfig("uniform")
    )
    faces = build_dataset(config, cache_dir=str(tmp_path / "cache"))["train"]
    checkpoint = _copy(tiny_qwen3_dir, tmp_path)
    config = VisionPretrainConfig(
        vision_pretrain_steps=200, vision_pretrain_target="landmarks", vision_pretrain_loss="mse",
        vision_pretrain_pooling="tokens",
    )  # fmt: skip
    record = pretrain_vision_tower(checkpoint, faces, config)
    assert record["target"] == "landmarks" and record["target_size"] == 2 * len(KEYPOINT_NAMES)
    assert record["final_loss"] < 0.7 * record["initial_loss"], record


def test_landmark_targets_need_rendered_rows(tiny_model_dir, faces):
    config = VisionPretrainConfig(vision_pretrain_steps=1, vision_pretrain_target="landmarks")
    with pytest.raises(DatasetError, match="'renderer' column"):
        pretrain_vision_tower(tiny_model_dir, faces.remove_columns("renderer"), config)
    with pytest.raises(ConfigError, match="vision_pretrain_target"):
        VisionPretrainConfig(vision_pretrain_target="pixels")
