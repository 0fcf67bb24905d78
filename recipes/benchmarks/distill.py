"""Does distillation teach a tiny VLM to read faces? Held-out MAE against the constants and a linear probe, 3 seeds.

Per seed: faces are rendered from the real Live Link Face captures in ../shared/data/llf (avatar identities and
recorded expressions both held out: identity + recording/time-block splits, :mod:`semanticface.splits`); a tiny
model of the real Qwen3-VL class is built, its random vision tower pretrained on faces with *uniformly sampled*
expressions of the training identities only (real checkpoints ship a pretrained tower; this stands in for it);
then, for each target format, the distillation recipe's own code (``recipes/distill.py: main``, full fine-tuning,
fixed steps) trains it, and the test split is decoded two ways: greedy ``generate`` (mode numbers) and forced
decoding with median numbers (the MAE-optimal readout of the model's distribution). Systems on the same rows and
cells (unparsed cells scored as the training median):

- ``median_constant`` (the per-channel training median: the MAE-optimal constant), ``mean_constant``, ``neutral``;
- ``linear_probe``: the same pretrained vision tower, mean-pooled, with a linear head fitted (L1) on the
  distillation training set — what the language model adds or loses;
- ``<format>_<readout>`` for each format and readout.

Reported: MAE per system, mean ± standard error across seeds, ratio to the median constant, and paired bootstrap
CIs over test images (pooled over seeds) for each model against the median constant and the probe, semantic against
coefficients, and median against greedy numbers. Per-image errors are saved per seed (``seed<k>/errors.jsonl``).
Each (seed, stage) result is stored as it finishes, so an interrupted run resumes where it stopped.

    python recipes/benchmarks/distill.py --out outputs/benchmark_distill      # 3 seeds: ~1 h on an idle 2-core CPU
    python recipes/benchmarks/distill.py --quick --out /tmp/bench_quick        # CI smoke (~2 min)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    coefficient_values,
    coefficients_from_values,
    expression_source,
    new_report,
    peak_rss_mb,
    write_report,
)

from semanticface.coefficients import FaceCoefficients  # noqa: E402
from semanticface.evaluation.scoring import per_image_errors, reference_median, score_system  # noqa: E402
from semanticface.evaluation.stats import mean_se, paired_bootstrap_ci, save_per_image_errors  # noqa: E402
from semanticface.rows import dataset_coefficients  # noqa: E402
from semanticface.schema import NUM_BLENDSHAPES  # noqa: E402
from semanticface.testing.tiny_model import TINY_ARCHITECTURES  # noqa: E402

RECIPES = Path(__file__).resolve().parent.parent
SHARED_LLF = RECIPES.parent.parent / "shared" / "data" / "llf"
READOUTS = {"greedy": ("generate", "mode"), "median": ("forced", "median")}
CONSTANTS = ("median_constant", "mean_constant", "neutral")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/benchmark_distill")
    parser.add_argument("--seeds", type=int, default=3, help="independent runs (data, model, training seeds 0..k-1)")
    parser.add_argument("--quick", action="store_true", help="CI smoke mode: tiny data, a few steps, 2 seeds")
    parser.add_argument("--samples", type=int, default=6000, help="faces rendered over all splits")
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--expression-holdout", default="auto", choices=["auto", "recording", "block"])
    parser.add_argument("--vision-pretrain-steps", type=int, default=6000)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--architecture", default="qwen3_vl", choices=TINY_ARCHITECTURES)
    parser.add_argument("--max-steps", type=int, default=1500, help="distillation steps per format (equal for all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--test-limit", type=int, default=300, help="test faces decoded per seed")
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["coefficients", "semantic"],
        help="target formats, optionally with a block style: semantic, semantic:compact, coefficients:json, ...",
    )
    parser.add_argument(
        "--processor-dir",
        default=None,
        help="build the tiny model on a real processor (e.g. ../shared/data/qwen3_vl_4b: Qwen3-VL's tokenizer); use "
        "it to compare block styles (the local tokenizer has whole-number tokens for 0.37 but splits 37)",
    )
    parser.add_argument("--n-boot", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.identities, args.vision_pretrain_steps = 240, 12, 30
        args.max_steps, args.test_limit, args.seeds, args.n_boot = 6, 8, 2, 200
    return args


def stage(path: Path, compute: Any) -> Any:
    """Run ``compute()`` once: its JSON result is stored at ``path`` and read back on a resumed run."""
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(result, indent=1, default=float))
    scratch.replace(path)
    return result


def render(args: argparse.Namespace, seed: int, source: str, out: Path) -> Path:
    from semanticface.sampling import SamplingConfig
    from semanticface.synth import SynthConfig, synthesize

    if not (out / "dataset_dict.json").is_file():
        recordings = (str(SHARED_LLF / "*.csv"),) if source == "llf" else ()
        config = SynthConfig(
            n=args.samples,
            size=args.image_size,
            seed=seed,
            identities=args.identities,
            splits={"train": 0.85, "validation": 0.05, "test": 0.10},
            sampling=SamplingConfig(source=source, recordings=recordings),
            expression_holdout=args.expression_holdout,
        )
        synthesize(config, out)
    return out


def blendshape_features(checkpoint: Path, images: list[Any]) -> np.ndarray:
    """Mean-pooled image features of the checkpoint's vision tower (what the language model receives)."""
    import torch

    from semanticface.modeling import load_model_and_processor
    from semanticface.training.vision_pretrain import _pooled_image_features

    model, processor = load_model_and_processor(checkpoint, dtype="float32")
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), 32):
            inputs = processor.image_processor(images=images[start : start + 32], return_tensors="pt")
            out.append(_pooled_image_features(model, dict(inputs)).numpy())
    return np.concatenate(out)


def linear_probe(checkpoint: Path, train: Any, test_images: list[Any], seed: int) -> list[list[float]]:
    """A linear head on the pretrained tower's pooled features, fitted by L1 (the MAE loss) on the training set."""
    import torch

    x_train = torch.from_numpy(blendshape_features(checkpoint, [r[0] for r in train["images"]]))
    x_test = torch.from_numpy(blendshape_features(checkpoint, test_images))
    y = torch.from_numpy(np.stack([c.values[:NUM_BLENDSHAPES] for c in dataset_coefficients(train)])).float()
    mu, sd = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    torch.manual_seed(seed)
    head = torch.nn.Linear(x_train.shape[1], NUM_BLENDSHAPES)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(y.median(0).values)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(2000):  # full batch: features are small
        loss = (head((x_train - mu) / sd) - y).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return head((x_test - mu) / sd).clamp(0, 1).tolist()


def split_format(spec: str) -> tuple[str, str]:
    """``semantic`` or ``semantic:compact`` -> (target_format, block_style)."""
    target_format, _, block_style = spec.partition(":")
    return target_format, block_style or "json"


def distil(
    args: argparse.Namespace,
    seed: int,
    spec: str,
    data: Path,
    base: Path,
    out: Path,
    extra_argv: list[str] | None = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """The recipe's own code path; returns the trainer (its model is the distilled one). ``extra_argv`` adds or
    overrides recipe flags (e.g. ``--number_token_weight``), ``callbacks`` go to the trainer (other benchmarks)."""
    module_spec = importlib.util.spec_from_file_location("distill_recipe", RECIPES / "distill.py")
    recipe = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(recipe)  # type: ignore[union-attr]
    from trl import ModelConfig, SFTConfig, TrlParser

    from semanticface.training.config import DistillScriptArguments
    from semanticface.training.vision_pretrain import VisionPretrainConfig

    argv = [
        "--config", str(RECIPES / "configs" / "quickstart.yaml"),
        "--model_name_or_path", str(base), "--synthetic", "false", "--dataset_name", str(data),
        "--dataset_test_split", "validation", "--target_format", split_format(spec)[0],
        "--block_style", split_format(spec)[1],
        "--output_dir", str(out), "--max_steps", str(args.max_steps), "--vision_pretrain_steps", "0",
        "--per_device_train_batch_size", str(args.batch_size), "--learning_rate", str(args.learning_rate),
        "--warmup_steps", str(min(20, args.max_steps // 10)), "--eval_strategy", "no", "--eval_generate_samples", "0",
        "--save_strategy", "no", "--logging_steps", "50", "--seed", str(seed), *(extra_argv or []),
    ]  # fmt: skip
    parser = TrlParser((DistillScriptArguments, VisionPretrainConfig, SFTConfig, ModelConfig))
    script_args, vision_args, training_args, model_args = parser.parse_args_and_config(args=argv)
    return recipe.main(script_args, training_args, model_args, callbacks=callbacks, vision_args=vision_args)


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    """Every system's per-image predictions for one seed (stored per stage, so a rerun resumes)."""
    import datasets

    from semanticface.inference import SemanticFacePredictor
    from semanticface.testing.tiny_model import build_tiny_model
    from semanticface.training.vision_pretrain import VisionPretrainConfig, pretrain_vision_tower

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    source = expression_source(SHARED_LLF)
    data = render(args, seed, source, out / "data")
    splits = datasets.load_from_disk(str(data))
    test = splits["test"].select(range(min(args.test_limit, len(splits["test"]))))
    test_images = [row["images"][0] for row in test]
    timings["render_s"] = time.perf_counter() - start

    base = out / "base"

    def pretrain() -> dict[str, Any]:
        build_tiny_model(base, architecture=args.architecture, seed=seed, processor_dir=args.processor_dir)
        # Same seed, identity count and split fractions: the same identities per split as the benchmark's data.
        vision = datasets.load_from_disk(str(render(args, seed, "uniform", out / "vision_data")))["train"]
        if not set(vision["identity"]) <= set(splits["train"]["identity"]):
            raise RuntimeError("vision pretraining faces must come from the training identities only")
        config = VisionPretrainConfig(vision_pretrain_steps=args.vision_pretrain_steps, vision_pretrain_seed=seed)
        return pretrain_vision_tower(base, vision, config)

    record = stage(out / "vision_pretraining.json", pretrain)
    probe = stage(out / "linear_probe.json", lambda: linear_probe(base, splits["train"], test_images, seed))
    predictions: dict[str, list[list[float]] | list[None]] = {"linear_probe": probe}
    formats: dict[str, Any] = {}
    for spec in args.formats:
        name = spec.replace(":", "_")

        def train_and_decode(spec: str = spec, name: str = name) -> dict[str, Any]:
            begin = time.perf_counter()
            trainer = distil(args, seed, spec, data, base, out / name)
            train_s = time.perf_counter() - begin
            model = trainer.accelerator.unwrap_model(trainer.model).eval()
            result: dict[str, Any] = {"train_s": round(train_s, 1), "steps": trainer.state.global_step}
            for readout, (decoding, numbers) in READOUTS.items():
                predictor = SemanticFacePredictor(
                    model, trainer.processing_class, target_config=trainer_target(spec), decoding=decoding
                )
                begin = time.perf_counter()
                outputs = predictor.predict(test_images, batch_size=16, max_new_tokens=1024, number_estimate=numbers)
                result[readout] = {
                    "values": [
                        None if o.coefficients is None else coefficient_values(o.coefficients) for o in outputs
                    ],
                    "decode_s": round(time.perf_counter() - begin, 1),
                    "example": outputs[0].raw_text[-300:],
                }
            result["peak_rss_mb"] = round(peak_rss_mb(), 1)
            return result

        formats[name] = stage(out / f"{name}.json", train_and_decode)
        for readout in READOUTS:
            predictions[f"{name}_{readout}"] = formats[name][readout]["values"]
    return {
        "split": json.loads((data / "split_provenance.json").read_text()),
        "vision_pretraining": record,
        "train": dataset_coefficients(splits["train"]),
        "test": dataset_coefficients(test),
        "row_ids": [f"seed{seed}/{i}" for i in range(len(test))],
        "predictions": predictions,
        "formats": {k: {kk: vv for kk, vv in v.items() if kk not in READOUTS} for k, v in formats.items()},
        "timings": timings,
    }


def trainer_target(spec: str) -> Any:
    from semanticface.contract import TargetConfig

    target_format, block_style = split_format(spec)
    return TargetConfig(target_format=target_format, block_style=block_style)


def score_seed(seed_result: dict[str, Any], out: Path) -> dict[str, Any]:
    """Every system scored on the same rows and cells; per-image errors saved to ``out/errors.jsonl``."""
    from semanticface.evaluation.baselines import ConstantMeanBaseline

    truths, train = seed_result["test"], seed_result["train"]
    median = reference_median(train, truths)
    mean = ConstantMeanBaseline.fit(train).mean
    systems = {
        "median_constant": [median.median] * len(truths),
        "mean_constant": [mean] * len(truths),
        "neutral": [FaceCoefficients.neutral()] * len(truths),
    }
    systems.update(
        {name: [coefficients_from_values(v) for v in values] for name, values in seed_result["predictions"].items()}
    )
    scored, errors = {}, {}
    path = out / "errors.jsonl"
    path.unlink(missing_ok=True)
    for name, predictions in systems.items():
        result = score_system(name, predictions, truths, fill=median.median, constant=name in CONSTANTS)
        keep = np.ones(len(truths), dtype=bool)
        per_image = per_image_errors(result, seed_result["row_ids"], keep)
        errors[name] = per_image.errors
        save_per_image_errors(path, per_image.row_ids, per_image.channel_errors, system=name, append=path.exists())
        m = result.metrics
        scored[name] = {
            "mae": float(m.overall.mae),
            "parse_failure_rate": float(m.parse_failure_rate),
            "spread_ratio": float(m.spread_ratio),
            "mean_pearson": float(m.mean_pearson),
            "warnings": result.warnings,
        }
    return {"systems": scored, "errors": errors}


def compare(pooled: dict[str, np.ndarray], a: str, b: str, n_boot: int) -> dict[str, Any]:
    ci = paired_bootstrap_ci(pooled[a], pooled[b], n_boot=n_boot, seed=0)
    return {"a": a, "b": b, **{k: v for k, v in ci.items() if k not in ("n_boot", "confidence", "seed")}}


def summarise(per_seed: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    names = list(per_seed[0]["systems"])
    systems = {}
    for name in names:
        maes = [s["systems"][name]["mae"] for s in per_seed]
        ratios = [s["systems"][name]["mae"] / s["systems"]["median_constant"]["mae"] for s in per_seed]
        mae, se = mean_se(maes)
        ratio, ratio_se = mean_se(ratios)
        systems[name] = {
            "mae": mae,
            "mae_se": se,
            "per_seed": maes,
            "ratio_to_median_constant": ratio,
            "ratio_se": ratio_se,
            "parse_failure_rate": float(np.mean([s["systems"][name]["parse_failure_rate"] for s in per_seed])),
            "spread_ratio": float(np.mean([s["systems"][name]["spread_ratio"] for s in per_seed])),
            "warnings": sorted({w for s in per_seed for w in s["systems"][name]["warnings"]}),
        }
    pooled = {name: np.concatenate([s["errors"][name] for s in per_seed]) for name in names}
    models = [n for n in names if n not in CONSTANTS]
    pairs = [(m, "median_constant") for m in models] + [(m, "linear_probe") for m in models if m != "linear_probe"]
    arms = [spec.replace(":", "_") for spec in args.formats]
    for readout in READOUTS:  # every later format against the first, on the same readout
        pairs += [(f"{arm}_{readout}", f"{arms[0]}_{readout}") for arm in arms[1:]]
    pairs += [(f"{arm}_median", f"{arm}_greedy") for arm in arms]
    comparisons = {f"{a} vs {b}": compare(pooled, a, b, args.n_boot) for a, b in pairs}
    return {"systems": systems, "comparisons": comparisons}


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| system | MAE (mean ± s.e.) | ratio to median constant | per seed | parse failures |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary["systems"].items():
        seeds = ", ".join(f"{v:.4f}" for v in s["per_seed"])
        lines.append(
            f"| {name} | {s['mae']:.4f} ± {s['mae_se']:.4f} | {s['ratio_to_median_constant']:.3f} ± "
            f"{s['ratio_se']:.3f} | {seeds} | {s['parse_failure_rate']:.1%} |"
        )
    lines += ["", "| comparison (a − b) | mean diff | 95% CI | ratio a/b [CI] | excludes 0 |", "|---|---|---|---|---|"]
    for name, c in summary["comparisons"].items():
        lines.append(
            f"| {name} | {c['mean_diff']:+.4f} | [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['ratio']:.3f} "
            f"[{c['ratio_ci_low']:.3f}, {c['ratio_ci_high']:.3f}] | {'yes' if c['excludes_zero'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out)
    report = new_report("distill", vars(args))
    start = time.perf_counter()
    per_seed, seeds = [], {}
    for seed in range(args.seeds):
        begin = time.perf_counter()
        result = run_seed(args, seed, out / f"seed{seed}")
        scored = score_seed(result, out / f"seed{seed}")
        per_seed.append(scored)
        seeds[f"seed{seed}"] = {
            "systems": scored["systems"],
            "split": result["split"],
            "vision_pretraining": result["vision_pretraining"],
            "formats": result["formats"],
            "wall_s": round(time.perf_counter() - begin, 1),
        }
        print(f"seed {seed}: " + ", ".join(f"{k} {v['mae']:.4f}" for k, v in scored["systems"].items()), flush=True)
    report.update(summarise(per_seed, args), readout="MAE over the 52 blendshapes; median = forced decoding with "
                  "median numbers, greedy = plain generate", seeds=seeds)  # fmt: skip
    report["total_wall_s"] = round(time.perf_counter() - start, 1)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_report(out, report)
    print(table(report))
    print(f"report: {out / 'report.json'}  (total {report['total_wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
