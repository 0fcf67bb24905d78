"""Model and processor loading: tiny real-architecture checkpoints through from_pretrained, no torchvision."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semanticface.errors import ConfigError
from semanticface.modeling import (
    load_model_and_processor,
    load_processor,
    quantization_config,
    read_processor_class,
    vision_module_names,
)
from semanticface.testing.tiny_model import build_tiny_model


def _face_image(size: int = 160, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8"))


def _generate(model, processor, max_new_tokens: int = 6) -> tuple[dict, torch.Tensor]:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the face."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[_face_image()], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return inputs, out[:, inputs["input_ids"].shape[1] :]


@pytest.mark.parametrize(
    ("fixture", "model_class", "processor_class"),
    [
        ("tiny_model_dir", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
        ("tiny_qwen3_dir", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor"),
    ],
)
def test_tiny_model_loads_through_from_pretrained_and_generates(fixture, model_class, processor_class, request):
    path: Path = request.getfixturevalue(fixture)
    # An ordinary checkpoint directory: safetensors weights, tokenizer, processor config naming the STOCK class.
    assert (path / "model.safetensors").is_file()
    assert not list(path.glob("*.bin"))
    assert (path / "chat_template.jinja").read_text().count("<|im_start|>") >= 2
    assert read_processor_class(path) == processor_class
    model, processor = load_model_and_processor(path)
    assert type(model).__name__ == model_class
    assert type(processor).__name__ == processor_class
    assert model.config.text_config.hidden_size == 64
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    inputs, generated = _generate(model, processor)
    # The processor expanded the single image placeholder into one token per merged patch.
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert image_tokens == int(inputs["image_grid_thw"].prod()) // 4
    assert generated.shape == (1, 6)


def test_processor_loads_without_torchvision(tiny_model_dir):
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        pytest.skip("torchvision is installed: the stock processor path is the one in use")
    # The stock loader fails without torchvision (transformers #48558) ...
    with pytest.raises((ImportError, ValueError, OSError, AttributeError)):
        AutoProcessor.from_pretrained(tiny_model_dir)
    # ... ours falls back to the image-only variant, which still tokenizes, templates and processes images.
    processor = load_processor(tiny_model_dir)
    assert getattr(type(processor), "image_only", False)
    assert processor.get_attributes() == ["image_processor", "tokenizer"]


def test_tokenizer_is_small_and_knows_the_contract_vocabulary(tiny_model_dir):
    processor = load_processor(tiny_model_dir)
    tokenizer = processor.tokenizer
    assert 300 < len(tokenizer) <= 2048
    for token in (
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert tokenizer.tokenize(token) == [token]
    # Channel names are single tokens, so a coefficient block is short.
    assert len(tokenizer.tokenize('{"eyeBlinkLeft": 0.37, "jawOpen": 1.00}')) <= 16
    text = 'Expression: smile\n{"mouthSmileLeft": 0.80}'
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_build_is_deterministic_and_seeded(tmp_path):
    def digest(path: Path) -> str:
        return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()

    a = build_tiny_model(tmp_path / "a", seed=0)
    b = build_tiny_model(tmp_path / "b", seed=0)
    c = build_tiny_model(tmp_path / "c", seed=1)
    assert digest(a) == digest(b) != digest(c)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def test_qwen2_vl_tiny_model(tmp_path):
    path = build_tiny_model(tmp_path / "q2", architecture="qwen2_vl")
    model, processor = load_model_and_processor(path)
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    _, generated = _generate(model, processor, max_new_tokens=3)
    assert generated.shape == (1, 3)


def test_max_pixels_bounds_image_tokens(tiny_model_dir):
    _, full = load_model_and_processor(tiny_model_dir)
    _, small = load_model_and_processor(tiny_model_dir, min_pixels=28 * 28, max_pixels=28 * 28 * 4)
    image = _face_image(224)
    grid_full = full.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].prod()
    grid_small = small.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].prod()
    assert int(grid_small) // 4 == 4  # 56x56 pixels -> 2x2 merged tokens
    assert grid_full > grid_small


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantization": "3bit"}, "quantization"),
        ({"dtype": "float8"}, "dtype"),
        ({"max_pixels": 100, "min_pixels": 1000}, "exceeds"),
        ({"max_pixels": -5}, "max_pixels"),
    ],
)
def test_bad_values_raise_config_error(tiny_model_dir, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        load_model_and_processor(tiny_model_dir, **kwargs)


def test_missing_checkpoint_raises_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_model_and_processor(tmp_path / "nothing-here")


def test_processor_config_naming_subclass_is_refused_not_silently_tokenizer_only(tiny_model_dir, tmp_path):
    import shutil

    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    config_path = broken / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["processor_class"] = "Qwen2_5_VLProcessorImageOnly"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ConfigError):
        load_processor(broken)


def test_quantization_config_skips_vision_and_head():
    config = quantization_config("4bit")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert {"model.visual", "lm_head"} <= set(config.llm_int8_skip_modules)
    assert quantization_config("8bit").load_in_8bit
    assert quantization_config(None) is None


@pytest.mark.parametrize("mode", ["8bit", "4bit"])
def test_quantized_tiny_model_generates_and_trains_lora(tiny_model_dir, mode):
    import bitsandbytes as bnb
    from peft import LoraConfig, get_peft_model

    model, processor = load_model_and_processor(tiny_model_dir, quantization=mode)
    layer_class = bnb.nn.Linear8bitLt if mode == "8bit" else bnb.nn.Linear4bit
    assert isinstance(model.model.language_model.layers[0].self_attn.q_proj, layer_class)
    # The vision tower and head stay in full precision (4-bit kernels break in narrow layers on CPU).
    assert type(model.lm_head) is torch.nn.Linear
    assert type(model.model.visual.blocks[0].mlp.gate_proj) is torch.nn.Linear
    _, generated = _generate(model, processor, max_new_tokens=3)
    assert generated.shape == (1, 3)

    # QLoRA: a fresh quantized model (training after 4-bit inference is a known CPU bug) gets LoRA gradients.
    model, _ = load_model_and_processor(tiny_model_dir, quantization=mode)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.train()
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]},
        {"role": "assistant", "content": "Expression: smile"},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    batch = processor(text=[text], images=[_face_image()], return_tensors="pt")
    batch["labels"] = batch["input_ids"].clone()
    peft_model(**batch).loss.backward()
    lora_grads = [p.grad for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None and torch.isfinite(g).all() for g in lora_grads)


def test_vision_module_names(tiny_model_dir):
    model, _ = load_model_and_processor(tiny_model_dir)
    assert vision_module_names(model) == ["model.visual"]
