"""Real-size figures: Qwen3-VL-4B's architecture (from the shared ``config.json``) with random weights.

Measures, at 448x448 faces (196 image tokens; ``max_pixels`` 200,704 as in ``recipes/configs/qwen3vl_4b_lora.yaml``):

- training, for LoRA (paper setting: the language model's linear layers, vision tower frozen, gradient
  checkpointing, bf16) and 4-bit QLoRA (nf4; vision tower and lm_head unquantised), at batch sizes 1/4/16 with the
  semantic target (JSON block, 2 decimals): seconds per optimizer step, samples/s, peak GPU memory;
- decoding of the semantic target in both block styles at batch sizes 1/16/64: faces/s with plain ``generate``
  (forced to the median target length, as random weights never stop on their own) and with forced decoding
  (description fields bounded to the median reference field length), forward passes per batch.

Random weights give real step times, memory and decode costs (they do not depend on the values), not accuracy.

    python recipes/benchmarks/real_size.py --out outputs/real_size        # GPU (bf16), ~10 min on one H100/H200
    python recipes/benchmarks/real_size.py --tiny --out outputs/real_size_tiny   # CPU smoke (CI): tiny model with
                                        # the real vocabulary, LoRA and QLoRA (bitsandbytes' CPU backend), batch 1/2
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO.parent / "shared" / "data" / "qwen3_vl_4b"

from semanticface.coefficients import FaceCoefficients  # noqa: E402
from semanticface.contract import (  # noqa: E402
    TargetConfig,
    build_prompt_messages,
    completion_messages,
    render_target,
    target_skeleton,
)
from semanticface.errors import ConfigError  # noqa: E402
from semanticface.semantics import describe  # noqa: E402

FACE_PIXELS = 448 * 448


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="folder with config.json + processor files")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke: tiny model with the real vocabulary")
    parser.add_argument("--train-batch-sizes", default=None, help="comma list (default 1,4,16; tiny: 1,2)")
    parser.add_argument("--decode-batch-sizes", default=None, help="comma list (default 1,16,64; tiny: 1,2)")
    parser.add_argument("--modes", default=None, help="comma list of lora,qlora (default both)")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per setting (default 3)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--out", default="outputs/real_size", help="folder of report.json")
    return parser.parse_args(argv)


def _ints(text: str | None, default: tuple[int, ...]) -> list[int]:
    return [int(x) for x in text.split(",")] if text else list(default)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (KiB on Linux)


def sample_faces(n: int, seed: int = 0) -> list[FaceCoefficients]:
    """Sparse random faces (30% of blendshapes active): realistic target lengths without data files."""
    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(n):
        values = np.zeros(61)
        active = rng.random(52) < 0.3
        values[:52] = np.where(active, rng.random(52), 0.0)
        faces.append(FaceCoefficients(values))
    return faces


def face_images(n: int, side: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(n)]


# --- models ----------------------------------------------------------------------------------------------------


def build_checkpoint(config_dir: Path, work: Path, *, tiny: bool) -> Path:
    """A checkpoint folder of random weights: the real architecture in bf16 (GPU), or the tiny real-vocab model."""
    from semanticface.modeling import load_processor
    from semanticface.testing.tiny_model import build_tiny_model

    out = work / ("tiny" if tiny else "qwen3_vl_4b_random")
    if tiny:
        return build_tiny_model(out, "qwen3_vl", seed=0, processor_dir=config_dir)
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)  # QLoRA loads it back quantised through from_pretrained
    del model
    load_processor(config_dir).save_pretrained(out)
    _reset_peak()
    return out


def load(checkpoint: Path, *, quantization: str | None, tiny: bool) -> tuple[Any, Any]:
    from semanticface.modeling import load_model_and_processor

    pixels = None if tiny else FACE_PIXELS  # tiny: the small bounds saved with it
    model, processor = load_model_and_processor(
        checkpoint,
        dtype="float32" if tiny else "bfloat16",
        device_map=None if tiny else {"": 0},
        quantization=quantization,
        min_pixels=pixels,
        max_pixels=pixels,
        attn_implementation=None if tiny else "sdpa",
    )
    return model, processor


# --- training --------------------------------------------------------------------------------------------------


def training_batch(processor: Any, faces: list[FaceCoefficients], images: list[Image.Image], config: TargetConfig):
    """Prompt + completion rows with completion-only labels, as TRL builds them."""
    tokenizer = processor.tokenizer
    prompt = processor.apply_chat_template(build_prompt_messages(config), add_generation_prompt=True, tokenize=False)
    texts = [
        processor.apply_chat_template(
            build_prompt_messages(config) + completion_messages(render_target(c, config)), tokenize=False
        )
        for c in faces
    ]
    tokenizer.padding_side = "right"
    batch = processor(text=texts, images=[[im] for im in images], padding=True, return_tensors="pt")
    prompt_len = len(processor(text=[prompt], images=[[images[0]]], return_tensors="pt")["input_ids"][0])
    labels = batch["input_ids"].clone()
    labels[:, :prompt_len] = -100
    labels[batch["attention_mask"] == 0] = -100
    batch["labels"] = labels
    return batch


def train_setting(checkpoint: Path, mode: str, batch_sizes: list[int], steps: int, *, tiny: bool) -> list[dict]:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from semanticface.modeling import vision_exclude_pattern, vision_module_names

    model, processor = load(checkpoint, quantization="4bit" if mode == "qlora" else None, tiny=tiny)
    for name in vision_module_names(model):
        model.get_submodule(name).requires_grad_(False)
    # Gradient checkpointing as in the paper config (also in --tiny, so the smoke run takes the same path).
    if mode == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        target_modules="all-linear",
        exclude_modules=vision_exclude_pattern(model),
    )
    model = get_peft_model(model, lora)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    config = TargetConfig()
    side = 64 if tiny else 448
    device = next(model.parameters()).device
    rows = []
    for batch_size in batch_sizes:
        faces = sample_faces(batch_size, seed=batch_size)
        batch = training_batch(processor, faces, face_images(batch_size, side), config).to(device)
        _reset_peak()
        times = []
        try:
            for step in range(steps + 1):  # the first step warms up (allocator, kernels) and is not timed
                _sync()
                start = time.perf_counter()
                loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                _sync()
                if step:
                    times.append(time.perf_counter() - start)
        except torch.cuda.OutOfMemoryError:
            rows.append({"mode": mode, "batch_size": batch_size, "error": "out of GPU memory"})
            optimizer.zero_grad(set_to_none=True)
            _reset_peak()
            continue
        step_s = float(np.median(times))
        rows.append(
            {
                "mode": mode,
                "batch_size": batch_size,
                "sequence_tokens": int(batch["input_ids"].shape[1]),
                "step_seconds": round(step_s, 4),
                "samples_per_second": round(batch_size / step_s, 3),
                "peak_memory_gib": round(_peak_gib(), 3),
                "trainable_parameters": trainable,
                "loss": round(float(loss), 4),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    del model, optimizer
    _reset_peak()
    return rows


# --- decoding --------------------------------------------------------------------------------------------------


def decode_settings(checkpoint: Path, batch_sizes: list[int], *, tiny: bool) -> list[dict]:
    from semanticface.decoding import forced_generate

    model, processor = load(checkpoint, quantization=None, tiny=tiny)
    model.eval()
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    side = 64 if tiny else 448
    reference = sample_faces(64, seed=123)
    rows = []
    for block_style in ("json", "compact"):
        config = TargetConfig(block_style=block_style)
        prompt = processor.apply_chat_template(
            build_prompt_messages(config), add_generation_prompt=True, tokenize=False
        )
        targets = [render_target(c, config) for c in reference]
        target_tokens = int(np.median([len(tokenizer.encode(t)) for t in targets]))
        sections = [describe(c.quantized(2)).sections() for c in reference]
        field_tokens = int(np.median([len(tokenizer.encode(" " + v)) for s in sections for v in s.values()]))
        text_tokens = int(np.median([sum(len(tokenizer.encode(" " + v)) for v in s.values()) for s in sections]))
        if tiny:
            target_tokens, field_tokens, text_tokens = (
                min(target_tokens, 24),
                min(field_tokens, 2),
                min(text_tokens, 12),
            )
        skeleton = target_skeleton(config)
        for batch_size in batch_sizes:
            inputs = processor(
                text=[prompt] * batch_size,
                images=[[im] for im in face_images(batch_size, side)],
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            row: dict[str, Any] = {
                "block_style": block_style,
                "batch_size": batch_size,
                "plain_new_tokens": target_tokens,
            }
            try:
                with torch.inference_mode():
                    _sync()
                    start = time.perf_counter()
                    model.generate(
                        **inputs, max_new_tokens=target_tokens, min_new_tokens=target_tokens, do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                    )  # fmt: skip
                    _sync()
                plain_s = time.perf_counter() - start
                _sync()
                result = forced_generate(
                    model, processor, inputs, skeleton, max_text_tokens=field_tokens, max_new_tokens=text_tokens
                )
                _sync()
            except torch.cuda.OutOfMemoryError:
                rows.append({**row, "error": "out of GPU memory"})
                _reset_peak()
                continue
            row |= {
                "plain_faces_per_second": round(batch_size / plain_s, 3),
                "plain_forward_passes": target_tokens,
                "forced_faces_per_second": round(batch_size / result.seconds, 3),
                "forced_forward_passes": result.forward_passes,
                "forced_text_tokens_bound": text_tokens,
                "forced_over_plain_speed": round(plain_s / result.seconds, 2),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    del model
    _reset_peak()
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config_dir = Path(args.config)
    if not (config_dir / "config.json").is_file():
        raise ConfigError(f"{config_dir}: no config.json (the Qwen3-VL-4B files of ../shared/data/qwen3_vl_4b)")
    if not args.tiny and not torch.cuda.is_available():
        raise ConfigError("the real-size benchmark needs a CUDA GPU; use --tiny for the CPU smoke run")
    if args.tiny:
        torch.set_num_threads(1)
    train_sizes = _ints(args.train_batch_sizes, (1, 2) if args.tiny else (1, 4, 16))
    decode_sizes = _ints(args.decode_batch_sizes, (1, 2) if args.tiny else (1, 16, 64))
    modes = args.modes.split(",") if args.modes else ["lora", "qlora"]
    steps = args.steps if args.steps is not None else (1 if args.tiny else 3)
    report: dict[str, Any] = {
        "config": str(config_dir),
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "image_pixels": None if args.tiny else FACE_PIXELS,
        "image_tokens": None if args.tiny else FACE_PIXELS // (32 * 32),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory(prefix="real_size_") as work:
        start = time.perf_counter()
        checkpoint = build_checkpoint(config_dir, Path(work), tiny=args.tiny)
        report["build_seconds"] = round(time.perf_counter() - start, 1)
        if not args.skip_train:
            report["training"] = [
                row for mode in modes for row in train_setting(checkpoint, mode, train_sizes, steps, tiny=args.tiny)
            ]
        if not args.skip_decode:
            report["decoding"] = decode_settings(checkpoint, decode_sizes, tiny=args.tiny)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
