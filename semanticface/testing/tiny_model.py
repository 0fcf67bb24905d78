"""A tiny randomly initialised Qwen-VL checkpoint for tests, quickstart and benchmarks.

It is the *real* architecture class (hidden size 64, 2 layers, a 2-block vision tower) with a byte-level BPE
tokenizer trained locally on the stage-1 vocabulary, the real Qwen chat template, and an ordinary checkpoint
layout (safetensors, tokenizer, processor config, chat template), so it loads through the same
``from_pretrained`` path as a Hub id. Nothing is downloaded.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

from semanticface.errors import ConfigError
from semanticface.schema import BLENDSHAPES, CHANNELS, LLF_COLUMN_ORDER, REGIONS

TINY_ARCHITECTURES = ("qwen2_5_vl", "qwen3_vl", "qwen2_vl")

# The special tokens the Qwen chat template and processors use (ids follow this order, from 0).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
VOCAB_SIZE = 1536

# Words of stage-1 descriptions and prompts, so that the tokenizer has merges for them even before the
# description module exists (its rendered targets are added to the corpus when importable).
_WORDS = (
    "Expression Muscle movements Brows Eyes Cheeks Nose Jaw Mouth Tongue Emotion cue Symmetry Coefficients "
    "neutral relaxed slight slightly subtle mild moderate moderately strong strongly very extreme fully raised "
    "lowered inner outer brow brows eye eyes lid lids wide open opened closed blink squint squinted look looking "
    "up down left right in out cheek cheeks puffed puff raised nose sneer wrinkled jaw dropped forward shifted "
    "mouth lips lip corners pulled pressed funneled puckered stretched rolled shrugged upper lower smile smiling "
    "frown frowning dimple tongue out sticking no movement rest symmetric asymmetric mostly stronger on the side "
    "happiness happy joy sadness sad surprise surprised fear fearful anger angry disgust disgusted contempt "
    "pain concentration speech talking yawn wink kiss pout grimace and with of a an is face head gaze yaw pitch "
    "roll expression category region intensity description image photo person Describe this describe the facial "
    "expression in the image then give ARKit blendshape coefficients as JSON You are an expert FACS coder "
    "who reads faces as Apple ARKit blendshapes"
)
_CHAT_TEMPLATES = {"qwen2_5_vl": "qwen2_5_vl.jinja", "qwen2_vl": "qwen2_5_vl.jinja", "qwen3_vl": "qwen3_vl.jinja"}


def _corpus(seed: int) -> list[str]:
    """Training text for the tokenizer: stage-1 words, channel names in all dialects, every 2-decimal number."""
    rng = random.Random(seed)
    numbers = [f"{v / 100:.2f}" for v in range(0, 101)] + [f"-{v / 100:.2f}" for v in range(1, 101)]
    lines = [_WORDS] * 20
    lines += [" ".join(REGIONS)] * 5
    for names in (CHANNELS, LLF_COLUMN_ORDER):
        lines += [", ".join(f'"{name}": {rng.choice(numbers)}' for name in names) for _ in range(20)]
    lines += [" ".join(numbers)] * 20
    lines += _rendered_targets(seed)
    return lines


def _rendered_targets(seed: int) -> list[str]:
    """Targets and prompts rendered by the contract module, when it is importable (both formats)."""
    try:
        from semanticface.coefficients import FaceCoefficients
        from semanticface.contract import TargetConfig, render_target, system_prompt, user_prompt
    except ImportError:
        return []
    import numpy as np

    rng = np.random.default_rng(seed)
    texts = []
    for target_format in ("semantic", "coefficients"):
        config = TargetConfig(target_format=target_format)
        texts += [system_prompt(config), user_prompt(config)] * 10
    for i in range(40):
        values = np.zeros(len(CHANNELS))
        active = rng.random(len(BLENDSHAPES)) < 0.3
        values[: len(BLENDSHAPES)] = np.where(active, rng.random(len(BLENDSHAPES)), 0.0)
        config = TargetConfig(target_format="semantic" if i % 2 == 0 else "coefficients")
        try:
            texts.append(render_target(FaceCoefficients(values), config))
        except Exception:  # a contract in flux must not break model building; its words are in _WORDS anyway
            return texts
    return texts


def _train_tokenizer(seed: int) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # Pre-split into numbers, space-led words (punctuation included) and whitespace, then byte-level: a channel key
    # such as ` "jawOpen":` and a value such as `0.37` can each become one token. Targets get ~3x shorter than with
    # GPT-2 style splitting, which is what makes CPU training of the tiny model fast; numbers stay pure-digit
    # tokens, as constrained decoding wants.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"-?\d+(?:\.\d+)?| ?[^\s\d]+|\s+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(seed), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )


def _chat_template(architecture: str) -> str:
    # TRL ships the Qwen templates verbatim (it compares them against Hub checkpoints); reuse them.
    return (resources.files("trl") / "chat_templates" / _CHAT_TEMPLATES[architecture]).read_text()


def _model_config(
    architecture: str,
    vocab: dict[str, int],
    vocab_size: int,
    hidden_size: int = 64,
    num_layers: int = 2,
    tie_word_embeddings: bool = False,
) -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    ids: dict[str, Any] = {
        "image_token_id": vocab["<|image_pad|>"],
        "video_token_id": vocab["<|video_pad|>"],
        "vision_start_token_id": vocab["<|vision_start|>"],
        "vision_end_token_id": vocab["<|vision_end|>"],
    }
    text: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": hidden_size // 16,  # head_dim 16 whatever the width (the mrope sections assume it)
        "num_key_value_heads": max(1, hidden_size // 32),
        "max_position_embeddings": 4096,
        "bos_token_id": None,
        "eos_token_id": vocab["<|im_end|>"],
        "pad_token_id": vocab["<|endoftext|>"],
        "tie_word_embeddings": tie_word_embeddings,
    }
    if architecture == "qwen3_vl":
        text |= {
            "head_dim": 16,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5e6,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        }
        vision: dict[str, Any] = {
            "depth": 2,
            "hidden_size": hidden_size // 2,
            "intermediate_size": hidden_size,
            "num_heads": 2,
            "out_hidden_size": hidden_size,
            "num_position_embeddings": 144,
            "deepstack_visual_indexes": [1],
        }
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie_word_embeddings, **ids)
    text |= {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}}
    if architecture == "qwen2_5_vl":
        vision = {
            "depth": 2,
            "hidden_size": hidden_size // 2,
            "intermediate_size": hidden_size,
            "num_heads": 2,
            "out_hidden_size": hidden_size,
            "fullatt_block_indexes": [1],
            "window_size": 56,
        }
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    vision = {"depth": 2, "embed_dim": hidden_size // 2, "mlp_ratio": 2, "num_heads": 2, "hidden_size": hidden_size}
    return Qwen2VLConfig(text_config=text, vision_config=vision, **ids)


def _image_processor(architecture: str) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if architecture == "qwen3_vl":
        # Qwen3-VL: 16 px patches, 2x2 merge -> 32 px per image token; up to 4x4 tokens (128 px square).
        return Qwen2VLImageProcessorPil(
            patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3, min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16
        )
    # Qwen2(.5)-VL: 14 px patches -> 28 px per image token; up to 4x4 tokens (112 px square).
    return Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)


def _video_processor_config(architecture: str, image_processor: Any) -> dict[str, Any]:
    """What a stock (torchvision) load needs to find beside the checkpoint; unused by the image-only path."""
    return {
        "video_processor_type": "Qwen3VLVideoProcessor" if architecture == "qwen3_vl" else "Qwen2VLVideoProcessor",
        "patch_size": image_processor.patch_size,
        "temporal_patch_size": image_processor.temporal_patch_size,
        "merge_size": image_processor.merge_size,
        "image_mean": list(image_processor.image_mean),
        "image_std": list(image_processor.image_std),
        "size": {
            "shortest_edge": image_processor.size.shortest_edge,
            "longest_edge": image_processor.size.longest_edge,
        },
    }


# Pixel bounds of a tiny model built on a real processor: the real Qwen3-VL one resizes a face to >= 256x256 px
# (64 image tokens), too many for CPU tests; these give 4 to 16 tokens, like the locally built tiny models.
TINY_PIXELS = {"qwen3_vl": (32 * 32 * 4, 32 * 32 * 16), "qwen2_5_vl": (28 * 28 * 4, 28 * 28 * 16)}


def _real_processor(processor_dir: str | Path, architecture: str) -> tuple[Any, int, dict[str, Any] | None]:
    """A real checkpoint's processor loaded through ``from_pretrained`` (the same path as a Hub id), the model
    vocabulary size its ``config.json`` gives (else the tokenizer's length), and its video processor config."""
    from semanticface.modeling import load_processor

    folder = Path(processor_dir)
    config_path = folder / "config.json"
    vocab_size = None
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        if config.get("model_type") != architecture:
            raise ConfigError(f"{config_path}: model_type {config.get('model_type')!r} is not {architecture!r}")
        vocab_size = config.get("text_config", config).get("vocab_size")
    low, high = TINY_PIXELS.get(architecture, (None, None))
    processor = load_processor(folder, min_pixels=low, max_pixels=high)
    vocab_size = int(vocab_size or len(processor.tokenizer))
    if vocab_size < len(processor.tokenizer):
        raise ConfigError(
            f"{config_path}: vocab_size {vocab_size} is smaller than the tokenizer ({len(processor.tokenizer)})"
        )
    video_path = folder / "video_preprocessor_config.json"
    video = json.loads(video_path.read_text()) if video_path.is_file() else None
    return processor, vocab_size, video


def build_tiny_model(
    out_dir: str | Path,
    architecture: str = "qwen2_5_vl",
    seed: int = 0,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    processor_dir: str | Path | None = None,
) -> Path:
    """Build and save a tiny random ``architecture`` VLM (plus tokenizer and processor) into ``out_dir``.

    ``hidden_size`` (a multiple of 32) and ``num_layers`` size the language model; the vision tower is half as wide.

    ``processor_dir``: a real checkpoint's processor files (tokenizer, image processor, chat template, optionally
    its ``config.json``), e.g. ``../shared/data/qwen3_vl_4b``. The tiny model then has the real vocabulary (its
    embedding is ``vocab_size`` x ``hidden_size``, tied to the output layer as in Qwen3-VL-4B), the real
    tokenizer and chat template, and the real image processor with small pixel bounds (:data:`TINY_PIXELS`).

    Deterministic for a given ``seed`` and code state. Returns ``out_dir``; load it with
    :func:`semanticface.modeling.load_model_and_processor`.
    """
    if architecture not in TINY_ARCHITECTURES:
        raise ConfigError(f"architecture must be one of {', '.join(TINY_ARCHITECTURES)}; got {architecture!r}")
    if hidden_size < 32 or hidden_size % 32 or num_layers < 1:
        raise ConfigError(f"hidden_size must be a multiple of 32 and num_layers >= 1; got {hidden_size}, {num_layers}")
    import torch
    from transformers import AutoModelForImageTextToText

    from semanticface.modeling import image_only_processor_class

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if processor_dir is not None:
        processor, vocab_size, video_config = _real_processor(processor_dir, architecture)
        tokenizer, image_processor = processor.tokenizer, processor.image_processor
    else:
        tokenizer = _train_tokenizer(seed)
        image_processor = _image_processor(architecture)
        # The image-only class carries the stock name, so the checkpoint names the stock processor class.
        processor = image_only_processor_class(architecture)(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=_chat_template(architecture)
        )
        vocab_size, video_config = len(tokenizer), None
    tied = processor_dir is not None
    config = _model_config(architecture, tokenizer.get_vocab(), vocab_size, hidden_size, num_layers, tied)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    if video_config is None:
        video_config = _video_processor_config(architecture, image_processor)
    (out / "video_preprocessor_config.json").write_text(json.dumps(video_config, indent=2) + "\n")
    return out
