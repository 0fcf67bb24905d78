"""Qwen3-VL-4B's own processor (tokenizer, image processor, chat template), built offline from the shared folder
through ``from_pretrained``, and a tiny model of the real class with the real 151,936-token vocabulary run through
the whole path: format -> training steps -> plain and forced decoding -> parse -> eval.

Skips with the reason when ``../shared/data/qwen3_vl_4b`` is absent."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import (
    TargetConfig,
    build_prompt_messages,
    completion_messages,
    parse_target,
    render_target,
    target_skeleton,
)

REPO = Path(__file__).resolve().parents[1]
QWEN3_VL_VOCAB = 151_936  # the model's embedding rows (config.json); the tokenizer has 151,669 entries


@pytest.fixture(scope="session")
def qwen3_vl_4b_dir(shared_data) -> Path:
    path = shared_data / "qwen3_vl_4b"
    if not (path / "tokenizer_config.json").is_file():
        pytest.skip(f"Qwen3-VL-4B processor files not found in {path} (see ../shared/data/qwen3_vl_4b/README.md)")
    return path


@pytest.fixture(scope="session")
def real_processor(qwen3_vl_4b_dir):
    from semanticface.modeling import load_processor

    return load_processor(qwen3_vl_4b_dir)


@pytest.fixture(scope="session")
def tiny_real_vocab_dir(qwen3_vl_4b_dir, tmp_path_factory) -> Path:
    """Tiny Qwen3-VL (hidden 64, 2 layers) with the real tokenizer, chat template and vocabulary (built once)."""
    from semanticface.testing.tiny_model import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_qwen3_vl_real_vocab")
    return build_tiny_model(out, "qwen3_vl", seed=0, processor_dir=qwen3_vl_4b_dir)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # step-by-step decoding on a shared 2-core machine: one thread is faster
    yield
    torch.set_num_threads(threads)


def test_real_processor_round_trips_a_full_prompt_and_target(real_processor):
    from transformers.utils import is_torchvision_available

    processor = real_processor
    tokenizer = processor.tokenizer
    assert type(processor).__name__ == "Qwen3VLProcessor" and len(tokenizer) == 151_669
    # Without torchvision the image-only subclass (stock name) is used; with it, the stock class itself.
    assert getattr(type(processor), "image_only", False) is (not is_torchvision_available())
    assert processor.image_processor.patch_size == 16 and processor.image_processor.merge_size == 2
    c = FaceCoefficients.neutral().replace(jawOpen=0.45, mouthSmileLeft=0.7, browInnerUp=0.08)
    for config in (TargetConfig(), TargetConfig(block_style="compact")):
        target = render_target(c, config)
        messages = build_prompt_messages(config) + completion_messages(target)
        text = processor.apply_chat_template(messages, tokenize=False)
        assert text.startswith("<|im_start|>system\n") and text.endswith(target + "<|im_end|>\n")
        image = Image.new("RGB", (448, 448), (120, 90, 60))
        encoded = processor(text=[text], images=[[image]], return_tensors="pt")
        grid = encoded["image_grid_thw"][0].tolist()
        assert grid == [1, 28, 28]  # 448 px / 16 px patches; 2x2 merged: 196 image tokens
        ids = encoded["input_ids"][0].tolist()
        assert ids.count(processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 196
        decoded = tokenizer.decode(ids, skip_special_tokens=False)
        assert decoded == text.replace("<|image_pad|>", "<|image_pad|>" * 196)
        target_ids = tokenizer.encode(target, add_special_tokens=False)
        assert tokenizer.decode(target_ids) == target
    # Qwen splits every digit: "0.45" is four tokens, and the space before a number is its own token.
    assert tokenizer.tokenize(" 0.45") == ["Ġ", "0", ".", "4", "5"]
    assert tokenizer.tokenize("[45,100]") == ["[", "4", "5", ",", "1", "0", "0", "]"]


def test_forced_decoder_tables_cover_the_real_vocabulary(real_processor):
    from semanticface.decoding import token_table
    from semanticface.decoding.numbers import spelling_tokens

    table = token_table(real_processor.tokenizer)
    assert table.size == 151_669
    digits = {text for text in table.number_tokens.values() if text.isdigit()}
    assert digits == set("0123456789")  # single-digit tokens only
    assert {",", "]"} <= set(spelling_tokens(table, ",]").values())
    assert table.special_ids >= {151_643, 151_645, 151_655}


def _recipe():
    spec = importlib.util.spec_from_file_location("distill_recipe_real", REPO / "recipes" / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    from semanticface.synth import SynthConfig, build_dataset

    out = tmp_path_factory.mktemp("faces_real_vocab")
    dataset = build_dataset(SynthConfig(n=12, size=56, seed=0, identities=3), cache_dir=str(out / "cache"))
    dataset.save_to_disk(str(out / "data"))
    return out / "data"


def test_tiny_real_vocab_model_trains_decodes_parses_and_evaluates(tiny_real_vocab_dir, faces_dir, tmp_path):
    from trl import ModelConfig, SFTConfig, TrlParser

    from semanticface.cli import main as cli_main
    from semanticface.inference import SemanticFacePredictor
    from semanticface.training.config import DistillScriptArguments
    from semanticface.training.vision_pretrain import VisionPretrainConfig

    config = json.loads((tiny_real_vocab_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen3VLForConditionalGeneration"]
    assert config["text_config"]["vocab_size"] == QWEN3_VL_VOCAB and config["tie_word_embeddings"] is True

    out = tmp_path / "run"
    argv = [
        "--config", str(REPO / "recipes" / "configs" / "quickstart.yaml"),
        "--model_name_or_path", str(tiny_real_vocab_dir),
        "--synthetic", "false", "--dataset_name", str(faces_dir), "--dataset_test_split", "validation",
        "--output_dir", str(out), "--block_style", "compact", "--target_format", "semantic",
        "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "all-linear", "--freeze_vision_tower", "true",
        "--max_steps", "2", "--per_device_train_batch_size", "1", "--learning_rate", "3e-3", "--warmup_steps", "0",
        "--logging_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", "--eval_generate_samples", "0",
    ]  # fmt: skip
    script_args, _, training_args, model_args = TrlParser(
        (DistillScriptArguments, VisionPretrainConfig, SFTConfig, ModelConfig)
    ).parse_args_and_config(args=argv)
    trainer = _recipe().main(script_args, training_args, model_args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(loss == loss for loss in losses)
    batch = next(iter(trainer.get_train_dataloader()))
    learned = batch["input_ids"][0][batch["labels"][0] != -100]
    learned_text = trainer.processing_class.tokenizer.decode(learned, skip_special_tokens=True)
    assert learned_text.startswith("Expression:") and re.search(r"Coefficients:\n\[\d+(,\d+){51}\]", learned_text)
    saved = json.loads((out / "semanticface_config.json").read_text())
    assert saved["target"]["block_style"] == "compact"

    import datasets

    images = [row["images"][0] for row in datasets.load_from_disk(str(faces_dir))["train"].select(range(2))]
    config = TargetConfig(block_style="compact")
    plain = SemanticFacePredictor.from_pretrained(out, decoding="generate")
    for prediction in plain.predict(images, max_new_tokens=12):
        assert 0 < prediction.num_tokens <= 12  # an untrained model rarely reaches the block: parsing may fail
    forced = SemanticFacePredictor.from_pretrained(out, decoding="forced")
    assert forced.target_config == config
    predictions = forced.predict(images, max_new_tokens=16)  # 16 description tokens in all; numbers always finish
    for prediction in predictions:
        assert prediction.coefficients is not None and prediction.issues == []
        assert parse_target(prediction.raw_text, config).coefficients == prediction.coefficients
        assert prediction.raw_text.startswith("Expression: ") and "\nCoefficients:\n[" in prediction.raw_text
    report = tmp_path / "report"
    argv = ["eval", "--model", str(out), "--dataset", str(faces_dir), "--split", "train", "--limit", "2",
            "--out", str(report), "--decoding", "forced", "--max-new-tokens", "16", "--renderer", "none",
            "--no-baselines"]  # fmt: skip
    assert cli_main(argv) == 0
    scored = json.loads((report / "metrics.json").read_text())["systems"]["model"]
    assert scored["num_parse_failures"] == 0 and scored["num_samples"] == 2
    assert 0 <= scored["overall"]["mae"] <= 1


def test_forced_decoding_heals_and_splits_digits_with_the_real_vocabulary(tiny_real_vocab_dir):
    from semanticface.decoding import forced_generate
    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_real_vocab_dir)
    model.eval()
    prompt = processor.apply_chat_template(build_prompt_messages(), add_generation_prompt=True, tokenize=False)
    processor.tokenizer.padding_side = "left"
    images = [[Image.new("RGB", (64 + 32 * i, 64), (30 * i, 100, 200))] for i in range(2)]
    inputs = processor(text=[prompt] * 2, images=images, padding=True, return_tensors="pt")
    for block_style in ("json", "compact"):
        config = TargetConfig(block_style=block_style)
        result = forced_generate(model, processor, inputs, target_skeleton(config), max_text_tokens=3)
        for text in result.texts:
            assert parse_target(text, config).issues == []
            assert text.startswith("Expression: ")
        # Digit-split vocabulary: a value costs at most one pass per digit (at most 3); separators cost none.
        assert result.forward_passes_coefficients <= 3 * 52
    # Token healing: "Expression: " ends in a lone-space token, held back so the first word brings its space.
    from semanticface.decoding.forced import heal_literal, literal_token_ids
    from semanticface.decoding.vocab import token_table

    skeleton = target_skeleton(TargetConfig())
    ids = literal_token_ids(processor.tokenizer, skeleton[0].text)
    kept, heal = heal_literal(ids, skeleton[0].text, token_table(processor.tokenizer), skeleton[1])
    assert heal == " " and kept == ids[:-1]


def test_cost_counter_matches_the_passes_forced_decoding_reports(tiny_real_vocab_dir):
    """forced_passes(text) is what forced_generate spent producing text (coefficient targets: no length bound)."""
    from semanticface.decoding import forced_generate
    from semanticface.decoding.cost import forced_passes, plain_passes
    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_real_vocab_dir)
    model.eval()
    prompt = processor.apply_chat_template(build_prompt_messages(), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=[[Image.new("RGB", (64, 64), (90, 20, 200))]], return_tensors="pt")
    for block_style in ("json", "compact"):
        config = TargetConfig(target_format="coefficients", block_style=block_style, include_pose=True)
        skeleton = target_skeleton(config)
        result = forced_generate(model, processor, inputs, skeleton)
        assert forced_passes(processor.tokenizer, result.texts[0], skeleton) == result.forward_passes
        assert plain_passes(processor.tokenizer, result.texts[0]) > result.forward_passes


def test_compact_semantic_target_costs_under_a_third_of_the_release(real_processor, shared_data):
    """Issue 18's target: the compact semantic target <= 323 Qwen3 tokens (a third of SemanticFace's median 971)
    on real Live Link Face frames; the JSON block costs ~735."""
    import numpy as np

    from semanticface.llf import read_llf

    paths = sorted((shared_data / "llf").glob("*.csv"))
    if not paths:
        pytest.skip(f"no Live Link Face CSVs in {shared_data / 'llf'}")
    values = np.concatenate([read_llf(path).values for path in paths])
    frames = [FaceCoefficients(values[i]) for i in np.linspace(0, len(values) - 1, 60).round().astype(int)]
    tokenizer = real_processor.tokenizer

    def median_tokens(config: TargetConfig) -> float:
        return float(np.median([len(tokenizer.encode(render_target(c, config))) for c in frames]))

    compact, json_block = median_tokens(TargetConfig(block_style="compact")), median_tokens(TargetConfig())
    assert compact <= 323 and json_block > 600, (compact, json_block)


def test_paper_config_refuses_a_truncating_max_length_before_loading_the_model(qwen3_vl_4b_dir, faces_dir, tmp_path):
    """The shared folder has Qwen3-VL-4B's processor but no weights: a truncating max_length is refused with the
    real tokenizer's lengths; with the config's own max_length the check passes and only loading the weights fails."""
    from trl import ModelConfig, SFTConfig, TrlParser

    from semanticface.errors import ConfigError
    from semanticface.training.config import DistillScriptArguments

    paper = REPO / "recipes" / "configs" / "qwen3vl_4b_lora.yaml"
    base = [
        "--config", str(paper), "--model_name_or_path", str(qwen3_vl_4b_dir), "--dataset_name", str(faces_dir),
        "--dataset_test_split", "validation", "--bf16", "false", "--output_dir", str(tmp_path / "run"),
        "--report_to", "none", "--dataloader_num_workers", "0",
    ]  # fmt: skip
    parser = TrlParser((DistillScriptArguments, SFTConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(args=base)
    assert (script_args.min_pixels, script_args.max_pixels, training_args.max_length) == (200704, 200704, 2048)
    recipe = _recipe()
    with pytest.raises(ConfigError, match=r"max_length=1000 would truncate .* longest needs 1[3-9]\d\d tokens"):
        recipe.main(*parser.parse_args_and_config(args=[*base, "--max_length", "1000"]))
    with pytest.raises(ConfigError, match="cannot load an image-text-to-text model"):
        recipe.main(script_args, training_args, model_args)
