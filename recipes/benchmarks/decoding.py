"""Plain ``generate`` vs template-forced decoding on the same model and images.

Reports, per mode: model forward passes (counted by a forward hook, per batch and per image), of which while
writing the coefficient block, seconds per image (both modes timed in this one run, with their ratio), tokens
generated, parse-failure rate, outputs with format issues, and MAE against the images' ground truth.

    # untrained tiny model (built locally), 1,000 forced predictions, plain generation on the first 64 images
    python recipes/benchmarks/decoding.py --model tiny --n 1000 --plain-n 64 --out outputs/bench_decoding_tiny
    # a trained checkpoint (e.g. the quickstart), both modes on the same 64 held-out images
    python recipes/benchmarks/decoding.py --model outputs/quickstart --n 64 --plain-n 64

Images come from ``--dataset`` (a ``save_to_disk`` folder in the semanticface row layout) or are rendered on the
fly with the built-in avatar (seeded, identities disjoint from nothing in particular: use a held-out split of the
training data for a fair MAE). Plain generation on an untrained model writes until ``--max-new-tokens`` every
time, so it runs on the first ``--plain-n`` images only; every plain/forced ratio is computed on those images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import new_report, write_report  # noqa: E402

from semanticface.checkpoint import read_target_config
from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, build_prompt_messages, parse_output, render_target, target_skeleton
from semanticface.decoding import forced_generate
from semanticface.errors import OutputParseError
from semanticface.evaluation.metrics import coefficient_metrics
from semanticface.modeling import load_model_and_processor
from semanticface.rows import dataset_coefficients
from semanticface.testing.tiny_model import build_tiny_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="checkpoint directory, or 'tiny' for an untrained one")
    parser.add_argument("--dataset", help="save_to_disk folder with images + channel columns (else rendered)")
    parser.add_argument("--split", default="test", help="dataset split to read")
    parser.add_argument("--target-format", choices=("semantic", "coefficients"), help="override the saved one")
    parser.add_argument("--n", type=int, default=1000, help="images decoded with forced decoding")
    parser.add_argument("--plain-n", type=int, default=64, help="of which also decoded with plain generate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=112, help="side of rendered images")
    parser.add_argument("--seed", type=int, default=1234, help="seed of rendered images")
    parser.add_argument("--max-new-tokens", type=int, default=0, help="plain generate bound (0: target length + 64)")
    parser.add_argument("--max-text-tokens", type=int, default=32, help="forced: bound per description field")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for tiny)")
    parser.add_argument("--out", help="also write report.json (benchmarks/common.py's header) into this folder")
    return parser.parse_args(argv)


def load_images(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """Images and their ground-truth coefficients."""
    if args.dataset:
        from datasets import load_from_disk

        data = load_from_disk(args.dataset)
        data = data[args.split] if hasattr(data, "keys") else data
    else:
        from semanticface.synth import SynthConfig, build_dataset

        config = SynthConfig(n=args.n, size=args.image_size, seed=args.seed, splits={"test": 1.0}, identities=10)
        data = build_dataset(config, num_proc=1)["test"]
    data = data.select(range(min(args.n, len(data))))
    images = [row["images"][0].convert("RGB") for row in data]
    return images, dataset_coefficients(data)


class ForwardCounter:
    """Counts top-level forward calls of a model (one per decoding step of a batch)."""

    def __init__(self, model: Any) -> None:
        self.calls = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls


def coefficient_block_tokens(tokenizer: Any, text: str) -> int | None:
    """Tokens plain generation spent on the block: from the 'Coefficients:' header to the closing brace."""
    start = text.find("Coefficients:")
    end = text.find("}", start)
    if start < 0 or end < 0:
        return None
    return len(tokenizer.encode(text[start : end + 1], add_special_tokens=False))


def read_predictions(texts: list[str]) -> list[Any]:
    """Parsed coefficients per text, None where the output has no readable block."""
    out = []
    for text in texts:
        try:
            out.append(parse_output(text).coefficients)
        except OutputParseError:
            out.append(None)
    return out


def mae_where_both_parsed(
    first: list[Any], second: list[Any], truths: list[Any]
) -> tuple[float | None, float | None, int]:
    """MAE of two prediction lists on the images where both have a readable block (a like-for-like comparison)."""
    both = [i for i, (a, b) in enumerate(zip(first, second)) if a is not None and b is not None]
    if not both:
        return None, None, 0
    pick = lambda items: [items[i] for i in both]  # noqa: E731
    maes = [coefficient_metrics(pick(p), pick(truths)).overall.mae for p in (first, second)]
    return maes[0], maes[1], len(both)


def summarize(name: str, texts: list[str], truths: list[Any], passes: list[int], sizes: list[int], seconds: float,
              tokens: list[int], block_passes: list[float]) -> dict[str, Any]:  # fmt: skip
    predictions, failures, with_issues = [], 0, 0
    for text in texts:
        try:
            parsed = parse_output(text)
        except OutputParseError:
            predictions.append(None)
            failures += 1
            continue
        with_issues += bool(parsed.issues)
        predictions.append(parsed.coefficients)
    metrics = coefficient_metrics(predictions, truths)
    n = len(texts)
    per_batch = float(np.mean(passes))
    return {
        "mode": name,
        "images": n,
        "forward_passes_per_batch": per_batch,
        "forward_passes_per_image": float(sum(passes) / n),
        "coefficient_block_forward_passes_per_batch": float(np.mean(block_passes)) if block_passes else None,
        "mean_batch_size": float(np.mean(sizes)),
        "seconds_per_image": seconds / n,
        "tokens_generated_per_image": float(np.mean(tokens)),
        "parse_failures": failures,
        "parse_failure_rate": failures / n,
        "outputs_with_format_issues": with_issues,
        "mae": None if math.isnan(metrics.overall.mae) else metrics.overall.mae,
    }


def run_plain(model, processor, batches, max_new_tokens, counter) -> tuple[list[str], list[int], list[int], float, list[float]]:  # fmt: skip
    tokenizer = processor.tokenizer
    stop = {tokenizer.eos_token_id, tokenizer.pad_token_id} | set(
        np.atleast_1d(model.generation_config.eos_token_id or [])
    )
    texts, tokens, passes, block = [], [], [], []
    start = time.perf_counter()
    for inputs in batches:
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        passes.append(counter.take())
        for row in out[:, inputs["input_ids"].shape[1] :].tolist():
            count = next((i + 1 for i, t in enumerate(row) if t in stop), len(row))
            tokens.append(count)
            texts.append(tokenizer.decode(row[:count], skip_special_tokens=True).strip())
            # Sequential passes plain generation spent on this row's block (one per token), when it wrote one.
            if (block_tokens := coefficient_block_tokens(tokenizer, texts[-1])) is not None:
                block.append(block_tokens)
    return texts, tokens, passes, time.perf_counter() - start, block


def run_forced(model, processor, batches, skeleton, max_text_tokens, counter):  # type: ignore[no-untyped-def]
    texts, tokens, passes, block = [], [], [], []
    start = time.perf_counter()
    for inputs in batches:
        result = forced_generate(model, processor, inputs, skeleton, max_text_tokens=max_text_tokens)
        calls = counter.take()
        assert calls == result.forward_passes, (calls, result.forward_passes)  # the decoder's own count is honest
        passes.append(calls)
        block.append(result.forward_passes_coefficients)
        texts.extend(result.texts)
        tokens.extend(result.num_tokens)
    return texts, tokens, passes, time.perf_counter() - start, block


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    header = new_report("decoding", vars(args))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    scratch = None
    if args.model == "tiny":
        scratch = tempfile.mkdtemp(prefix="semanticface-bench-")
        model_dir = build_tiny_model(Path(scratch) / "tiny")
    else:
        model_dir = Path(args.model)
    model, processor = load_model_and_processor(model_dir)
    model.eval()
    config: TargetConfig = read_target_config(str(model_dir))
    if args.target_format:
        config = replace(config, target_format=args.target_format)
    skeleton = target_skeleton(config)
    images, truths = load_images(args)
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    prompt = processor.apply_chat_template(build_prompt_messages(config), add_generation_prompt=True, tokenize=False)

    def batches(count: int) -> list[Any]:
        out = []
        for i in range(0, count, args.batch_size):
            chunk = images[i : min(i + args.batch_size, count)]
            out.append(
                processor(text=[prompt] * len(chunk), images=[[im] for im in chunk], padding=True, return_tensors="pt")
            )
        return out

    reference_block = [coefficient_block_tokens(tokenizer, render_target(t, config)) for t in truths]
    target_len = max(len(tokenizer.encode(render_target(t, config), add_special_tokens=False)) for t in truths)
    max_new_tokens = args.max_new_tokens or target_len + 64
    counter = ForwardCounter(model)
    plain_n = min(args.plain_n, len(images))
    forced_batches = batches(len(images))
    plain_batches = batches(plain_n)
    # Warm-up (first-call allocations and vocabulary tables are not what is being compared).
    run_forced(model, processor, plain_batches[:1], skeleton, args.max_text_tokens, counter)

    f_texts, f_tokens, f_passes, f_seconds, f_block = run_forced(
        model, processor, forced_batches, skeleton, args.max_text_tokens, counter
    )
    sizes = [b["input_ids"].shape[0] for b in forced_batches]
    forced_all = summarize("forced", f_texts, truths, f_passes, sizes, f_seconds, f_tokens, f_block)
    # The plain/forced comparison runs on the same first plain_n images, forced timed again on just those.
    p_texts, p_tokens, p_passes, p_seconds, p_block = run_plain(
        model, processor, plain_batches, max_new_tokens, counter
    )
    fs_texts, fs_tokens, fs_passes, fs_seconds, fs_block = run_forced(
        model, processor, plain_batches, skeleton, args.max_text_tokens, counter
    )
    sizes = [b["input_ids"].shape[0] for b in plain_batches]
    plain = summarize("plain", p_texts, truths[:plain_n], p_passes, sizes, p_seconds, p_tokens, [])
    forced = summarize("forced", fs_texts, truths[:plain_n], fs_passes, sizes, fs_seconds, fs_tokens, fs_block)
    plain_block = float(np.mean(p_block)) if p_block else None
    plain["coefficient_block_forward_passes_per_batch"] = plain_block
    reference = float(np.mean([r for r in reference_block[:plain_n] if r is not None]))
    plain_mae, forced_mae, both = mae_where_both_parsed(
        read_predictions(p_texts), read_predictions(fs_texts), truths[:plain_n]
    )
    block_forced = forced["coefficient_block_forward_passes_per_batch"]
    report = {
        "model": str(args.model),
        "target": {"format": config.target_format, "decimals": config.decimals, "include_pose": config.include_pose},
        "batch_size": args.batch_size,
        "threads": args.threads,
        "plain_max_new_tokens": max_new_tokens,
        "forced_max_text_tokens": args.max_text_tokens,
        "forced_all_images": forced_all,
        "comparison_images": plain_n,
        "plain": plain,
        "forced": forced,
        "reference_coefficient_block_tokens": reference,
        "mae_where_both_parsed": {"images": both, "plain": plain_mae, "forced": forced_mae},
        # For scale: predicting the neutral face for every image.
        "neutral_baseline_mae": coefficient_metrics(
            [FaceCoefficients.neutral()] * plain_n, truths[:plain_n]
        ).overall.mae,
        "ratios": {
            "forward_passes_plain_over_forced": plain["forward_passes_per_batch"] / forced["forward_passes_per_batch"],
            # Plain generation needs one pass per token of the block it writes; where it wrote none (untrained),
            # the tokens of the ground-truth block rendered by the contract are what a valid block costs it.
            "coefficient_block_passes_plain_over_forced": (plain_block or reference) / block_forced,
            "coefficient_block_plain_measured": plain_block is not None,
            "seconds_per_image_plain_over_forced": plain["seconds_per_image"] / forced["seconds_per_image"],
        },
    }
    report = {**header, **report}
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        print(f"saved {write_report(Path(args.out), report)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
