"""`semanticface eval`: score a model (or imported predictions) against a dataset and baselines, with plots."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from semanticface.cli.options import add_decoding_arguments
from semanticface.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Hub repo id or local directory (LoRA adapter or full model)")
    source.add_argument("--predictions", help="JSONL of predictions made elsewhere (see --format)")
    parser.add_argument(
        "--format",
        default="semanticface",
        choices=("semanticface", "semanticface-toolkit"),
        help="--predictions format: the released SemanticFace output (markdown + 61 PascalCase keys) or this "
        "toolkit's contract (what `semanticface predict --out x.jsonl` writes)",
    )
    parser.add_argument("--dataset", required=True, help="dataset directory (save_to_disk) or Hub dataset id")
    parser.add_argument("--out", required=True, help="report folder (metrics.json, summary.md, PNG plots)")
    parser.add_argument("--split", default="test", help="split to evaluate (a dataset with no splits is used whole)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N rows only")
    parser.add_argument("--mediapipe-model", default=None, help="face_landmarker.task: adds the MediaPipe baseline")
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the per-channel median, constant-mean and neutral baselines (missing cells are still scored as "
        "the train split's per-channel median)",
    )
    parser.add_argument(
        "--bootstrap-samples",
        type=int,
        default=10_000,
        help="resamples of the paired bootstrap intervals of the model against each baseline (0: none)",
    )
    parser.add_argument(
        "--renderer", default="avatar", help="renderer for avatar renders and render distance, or 'none'"
    )
    parser.add_argument("--render-size", type=int, default=192, help="side in pixels of avatar renders")
    parser.add_argument("--render-samples", type=int, default=16, help="samples used for the render distance")
    parser.add_argument("--name", default=None, help="name of the evaluated system in the report")
    add_decoding_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or auto (default: cuda when available)")
    parser.add_argument("--trust-remote-code", action="store_true")


def make_renderer(name: str, size: int) -> Any:
    """``coefficients -> PIL image`` from the renderer registry, or None for ``"none"``."""
    if name == "none":
        return None
    from semanticface.render import get_renderer

    renderer = get_renderer(name)
    return lambda coefficients: renderer.render(coefficients, identity=0, size=size)


def run(args: argparse.Namespace) -> int:
    from semanticface.evaluation.evaluate import EvalOptions, dataset_images, evaluate, load_split

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    eval_split, train_split = load_split(args.dataset, args.split)
    if args.limit is not None:
        eval_split = eval_split.select(range(min(args.limit, len(eval_split))))
    meta: dict[str, Any] = {"dataset": args.dataset, "split": args.split, "rows": len(eval_split)}
    if args.model:
        from semanticface.inference import GenerationOptions, SemanticFacePredictor

        predictor = SemanticFacePredictor.from_pretrained(
            args.model,
            dtype=args.dtype,
            device=args.device,
            decoding=args.decoding,
            trust_remote_code=args.trust_remote_code,
        )
        predictions = predictor.predict(
            dataset_images(eval_split),
            batch_size=args.batch_size,
            options=GenerationOptions(max_new_tokens=args.max_new_tokens, number_estimate=args.numbers),
            progress=True,
        )
        decimals = predictor.target_config.decimals
        meta |= {"model": args.model, "decoding": args.decoding, "numbers": args.numbers}
    else:
        from semanticface.evaluation.imported import load_predictions

        predictions = load_predictions(args.predictions, eval_split, fmt=args.format)
        decimals = 1 if args.format == "semanticface" else 2
        meta |= {"predictions": args.predictions, "format": args.format}
    options = EvalOptions(
        mediapipe_model=args.mediapipe_model,
        baselines=not args.no_baselines,
        render_samples=args.render_samples,
        decimals=decimals,
        # The release's markdown analysis has its own wording: comparing it with describe() would measure style.
        consistency=not (args.predictions and args.format == "semanticface"),
        bootstrap_samples=args.bootstrap_samples,
    )
    name = args.name or ("model" if args.model else args.format)
    results, paths = evaluate(
        args.out,
        eval_split,
        predictions,
        train_dataset=train_split,
        name=name,
        render=make_renderer(args.renderer, args.render_size),
        options=options,
        meta=meta,
    )
    print_summary(results, paths)
    return 0


def print_summary(results: Any, paths: dict[str, Any]) -> None:
    """The headline figures, the model against each baseline, and every warning, on stderr."""
    for result in results:
        m = result.metrics
        own = m.own_mask.mae if m.own_mask is not None else m.overall.mae
        print(
            f"{result.name:>28}: MAE {m.overall.mae:.4f}  RMSE {m.overall.rmse:.4f}  "
            f"(own cells {own:.4f}, coverage {m.coverage:.0%})  "
            f"parse failures {m.num_parse_failures}/{m.num_samples}",
            file=sys.stderr,
        )
    metrics = json.loads(paths["metrics"].read_text())
    for label, c in metrics.get("comparisons", {}).items():
        ratio = "–" if c["ratio"] is None else f"{c['ratio']:.3f}"
        low = "–" if c["ratio_ci_low"] is None else f"{c['ratio_ci_low']:.3f}"
        high = "–" if c["ratio_ci_high"] is None else f"{c['ratio_ci_high']:.3f}"
        print(
            f"{label}: MAE ratio {ratio} [{low}, {high}], difference {c['mean_diff']:+.4f} "
            f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] ({c['confidence']:.0%} paired bootstrap over {c['n']} images)",
            file=sys.stderr,
        )
    for warning in metrics.get("warnings", []):
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"report: {paths['summary']}", file=sys.stderr)
