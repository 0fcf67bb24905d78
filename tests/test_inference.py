"""SemanticFacePredictor on the tiny real-architecture model: full and adapter checkpoints, batching, sampling,
merge-and-export, and parse failures reported rather than raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from semanticface.checkpoint import CONFIG_FILENAME, is_adapter
from semanticface.errors import ConfigError, DatasetError
from semanticface.inference import GenerationOptions, Prediction, SemanticFacePredictor, merge_adapter

TOKENS = 12  # a random tiny model never stops by itself: keep generations short


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (56, 56), colour) for colour in ("red", "navy", "olive")]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model with non-zero weights (so it changes outputs), saved as training does:
    adapter, processor and semanticface_config.json in one folder."""
    import torch
    from peft import LoraConfig, get_peft_model

    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_model_dir, dtype="float32")
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / CONFIG_FILENAME).write_text(json.dumps({"target": {"target_format": "coefficients", "decimals": 2}}))
    return out


@pytest.fixture(scope="module")
def full(tiny_model_dir: Path) -> SemanticFacePredictor:
    return SemanticFacePredictor.from_pretrained(tiny_model_dir, dtype="float32", device="cpu")


def test_full_model_batched_predictions_are_typed_and_match_unbatched(full: SemanticFacePredictor, tmp_path: Path):
    paths = []
    for i, image in enumerate(_images()):
        image.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    batched = full.predict(paths, batch_size=2, max_new_tokens=TOKENS)
    assert len(batched) == 3 and all(isinstance(p, Prediction) for p in batched)
    # Left padding: a row's greedy output must not depend on what it was batched with.
    single = [full.predict([path], max_new_tokens=TOKENS)[0] for path in paths[1:]]
    assert [p.raw_text for p in single] == [p.raw_text for p in batched[1:]]
    for prediction in batched:
        # A random model emits no coefficient block: a counted failure with its reason, never an exception.
        assert not prediction.parse_ok and prediction.coefficients is None
        assert prediction.issues and "coefficient block" in prediction.issues[0]
        assert prediction.num_tokens == TOKENS and prediction.seconds > 0
        json.dumps(prediction.to_dict())


def test_sampling_is_seeded_and_returns_k_candidates_per_image(full: SemanticFacePredictor):
    images = _images()[:2]
    first = full.sample_candidates(images, 3, temperature=1.5, seed=7, batch_size=2, max_new_tokens=TOKENS)
    again = full.sample_candidates(images, 3, temperature=1.5, seed=7, batch_size=2, max_new_tokens=TOKENS)
    assert [len(c) for c in first] == [3, 3]
    assert [[p.raw_text for p in c] for c in first] == [[p.raw_text for p in c] for c in again]
    assert len({p.raw_text for p in first[0]}) > 1  # sampling, not three copies of the greedy output
    greedy = full.predict(images, max_new_tokens=TOKENS)
    assert greedy[0].raw_text == full.predict(images, max_new_tokens=TOKENS)[0].raw_text


def test_adapter_loads_from_its_config_and_merges_into_an_equivalent_full_model(
    adapter_dir: Path, full: SemanticFacePredictor, tmp_path: Path
):
    from peft import PeftModel

    assert is_adapter(adapter_dir) and not is_adapter(tmp_path)
    adapted = SemanticFacePredictor.from_pretrained(adapter_dir, dtype="float32")
    assert isinstance(adapted.model, PeftModel)
    assert adapted.target_config.target_format == "coefficients"  # read from semanticface_config.json
    images = _images()
    with_adapter = [p.raw_text for p in adapted.predict(images, max_new_tokens=TOKENS)]
    assert with_adapter != [p.raw_text for p in full.predict(images, max_new_tokens=TOKENS)]

    from semanticface.cli import main

    merged_dir = tmp_path / "merged"
    assert main(["merge", str(adapter_dir), "--out", str(merged_dir)]) == 0
    assert (merged_dir / "model.safetensors").is_file() and not is_adapter(merged_dir)
    assert json.loads((merged_dir / CONFIG_FILENAME).read_text())["target"]["target_format"] == "coefficients"
    merged = SemanticFacePredictor.from_pretrained(merged_dir, dtype="float32")
    assert not isinstance(merged.model, PeftModel)
    assert [p.raw_text for p in merged.predict(images, max_new_tokens=TOKENS)] == with_adapter


def test_adapter_without_processor_uses_the_base_models(adapter_dir: Path, tmp_path: Path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((adapter_dir / name).read_bytes())
    predictor = SemanticFacePredictor.from_pretrained(bare, dtype="float32")
    assert predictor.target_config.target_format == "semantic"  # no saved config: the default contract
    assert len(predictor.predict(_images()[:1], max_new_tokens=4)) == 1


def test_bad_inputs_raise_typed_errors(full: SemanticFacePredictor, tiny_model_dir: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="decoding"):
        SemanticFacePredictor(full.model, full.processor, decoding="beam")
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        merge_adapter(tiny_model_dir, tmp_path / "x")
    with pytest.raises(ConfigError):
        SemanticFacePredictor.from_pretrained(tmp_path / "does-not-exist")
    with pytest.raises(DatasetError, match=r"missing\.png: cannot read the file"):
        full.predict([tmp_path / "missing.png"])
    with pytest.raises(ConfigError, match="do_sample"):
        GenerationOptions(num_return_sequences=2)
    with pytest.raises(ConfigError, match="batch_size"):
        full.predict(_images(), batch_size=0)
