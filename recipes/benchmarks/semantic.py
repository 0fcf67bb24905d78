"""Does semantic supervision help? Four target arms on equal steps, a learning curve, and a domain matrix.

Per seed (built on ``benchmarks/distill.py``: its data split, recipe path, scoring and statistics):

- Expressions (``--source``) are basic-emotion prototypes (the default: independent draws, held-out identities) or
  the real Live Link Face captures in ../shared/data/llf, split by identity and by recording/time block
  (:mod:`semanticface.splits`). One synthetic dataset of *shaded*
  avatar faces is rendered; the training domains re-render its rows: ``shaded+mesh`` (half the rows drawn by the
  ICT-FaceKit mesh when ../shared/data/meshes/ict_facekit exists, else shaded avatar only) and ``flat`` (the flat
  cartoon avatar). Every domain thus holds the same expressions and identities: only the look changes.
- A tiny model of the real Qwen3-VL class is built and its vision tower pretrained on faces of the training domain
  and training identities (``--vision-pretraining landmarks``, the default: the exact 2-D keypoints the renderer
  projects, no ARKit value seen; ``blendshapes``: the 52 coefficients, which hands the language model the answer).
- Arms, each trained by the distillation recipe's own code on equal steps: ``coefficients`` (block only),
  ``semantic`` (description then block), ``semantic_weighted`` (semantic with ``number_token_weight`` set so the
  number tokens get the share of the loss they have in the coefficients target), ``filler`` (the description
  replaced by one fixed text of the descriptions' mean token length: separates loss dilution from content).
- Learning curve: the held-out faces are decoded at 1/4, 1/2 and all of the step budget (one run, its schedule
  set for the full budget), with both readouts: ``median`` (forced decoding, median numbers) and ``greedy``.
- Domain matrix (``coefficients`` and ``semantic``; the first ``--domain-seeds`` seeds): trained on
  ``shaded+mesh`` and tested on ``flat``, trained on ``flat`` and tested on ``shaded`` and ``mesh``, each on
  unseen and on seen identities (the held-out expressions drawn with training identities), median readout; plus
  MediaPipe's face-detection rate and MAE per test set when ``mediapipe`` and its model file are available.

Reported in ``report.json``: ``arms`` (each ``mae``, ``mae_se``, ``per_seed`` for the median readout at the full
budget, ``readouts``, ``curve``, ``description``: category accuracy, action precision/recall, text-number
consistency), ``comparisons`` (paired bootstrap CIs over test images pooled over seeds: each arm against
``coefficients`` on each readout, ``semantic`` against ``filler``), ``domains`` (the matrix, with semantic against
coefficients in each cell) and ``mediapipe``. Per-image errors per seed in ``seed<k>/errors.jsonl``; every (seed,
stage) is stored as it finishes, so an interrupted run resumes.

    python recipes/benchmarks/semantic.py --out outputs/benchmark_semantic     # 3 seeds (domain matrix: 1)
    python recipes/benchmarks/semantic.py --jobs 2 --out outputs/benchmark_semantic  # seeds over 2 processes
    python recipes/benchmarks/semantic.py --quick --out /tmp/semantic_quick    # CI smoke (a few minutes)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    add_source_argument,
    balance_seeds,
    coefficient_values,
    coefficients_from_values,
    new_report,
    peak_rss_mb,
    run_seed_workers,
    write_report,
)
from distill import READOUTS, SHARED_LLF, compare, distil, stage  # noqa: E402

from semanticface.coefficients import FaceCoefficients  # noqa: E402
from semanticface.evaluation.consistency import consistency  # noqa: E402
from semanticface.evaluation.description_quality import description_quality  # noqa: E402
from semanticface.evaluation.scoring import per_image_errors, reference_median, score_system  # noqa: E402
from semanticface.evaluation.stats import mean_se, save_per_image_errors  # noqa: E402
from semanticface.rows import dataset_coefficients  # noqa: E402
from semanticface.testing.tiny_model import TINY_ARCHITECTURES  # noqa: E402

SHARED = SHARED_LLF.parent
ARMS = ("coefficients", "semantic", "semantic_weighted", "filler")
DOMAIN_ARMS = ("coefficients", "semantic")
CURVE = (0.25, 0.5, 1.0)
TRAIN_DOMAINS = ("shaded+mesh", "flat")
# What each training domain is tested on beyond itself (the cross-domain cells of the matrix).
CROSS = {"shaded+mesh": ("flat",), "flat": ("shaded", "mesh")}
FILLER_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/benchmark_semantic")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="independent runs (data, model, training seeds 0..k-1); default 3 (--quick: 2)",
    )
    parser.add_argument("--domain-seeds", type=int, default=1, help="seeds that also run the domain matrix")
    parser.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        default=None,
        help="run just these seeds' stages and write no report (spread seeds over processes; a later run with the "
        "same --out reuses them and reports)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes the seeds are spread over, one torch thread each (2 on a 2-core machine: about "
        "half the wall time); the report is written once all are done",
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke mode: tiny data, a few steps, 2 seeds")
    parser.add_argument("--vision-pretraining", default="landmarks", choices=["landmarks", "blendshapes"])
    parser.add_argument("--vision-pretrain-steps", type=int, default=4000)
    add_source_argument(parser)
    parser.add_argument("--samples", type=int, default=4000, help="faces rendered over all splits")
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--expression-holdout", default="auto", choices=["auto", "recording", "block"])
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--architecture", default="qwen3_vl", choices=TINY_ARCHITECTURES)
    parser.add_argument("--max-steps", type=int, default=1200, help="distillation steps per arm (equal for all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--test-limit", type=int, default=200, help="held-out expressions decoded per seed")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--mesh-dir", default=str(SHARED / "meshes" / "ict_facekit"))
    parser.add_argument("--mediapipe-model", default=str(SHARED / "mediapipe" / "face_landmarker.task"))
    parser.add_argument("--processor-dir", default=None, help="build the tiny model on a real processor")
    parser.add_argument("--n-boot", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.identities, args.vision_pretrain_steps = 160, 12, 20
        args.max_steps, args.test_limit, args.n_boot = 8, 6, 200
    if args.seeds is None:
        args.seeds = 2 if args.quick else 3
    if "coefficients" not in args.arms:
        raise SystemExit("--arms must include coefficients: every arm is compared with it")
    return args


# --- data -------------------------------------------------------------------------------------------------------


def mesh_available(args: argparse.Namespace) -> bool:
    return bool(args.mesh_dir) and Path(args.mesh_dir).is_dir()


def renderer_for(kind: str, args: argparse.Namespace) -> Any:
    from semanticface.render import get_renderer

    return get_renderer("mesh", mesh_dir=args.mesh_dir) if kind == "mesh" else get_renderer(f"avatar-{kind}")


def expressions(args: argparse.Namespace, seed: int, source: str, out: Path) -> Any:
    """The seed's shaded-avatar dataset (train/validation/test, identity + expression split)."""
    import datasets

    from semanticface.sampling import SamplingConfig
    from semanticface.synth import SynthConfig, synthesize

    if not (out / "dataset_dict.json").is_file():
        recordings = (str(SHARED_LLF / "*.csv"),) if source == "llf" else ()
        config = SynthConfig(
            n=args.samples, size=args.image_size, seed=seed, identities=args.identities, styles=("shaded",),
            splits={"train": 0.85, "validation": 0.05, "test": 0.10},
            sampling=SamplingConfig(source=source, recordings=recordings), expression_holdout=args.expression_holdout,
        )  # fmt: skip
        synthesize(config, out)
    return datasets.load_from_disk(str(out))


def restyle(rows: Any, domain: str, args: argparse.Namespace, seed: int) -> Any:
    """``rows`` re-rendered in a training domain: ``flat`` (every row) or ``shaded+mesh`` (a fixed half by mesh)."""
    if domain == "flat":
        kinds = ["flat"] * len(rows)
    else:
        pick = np.random.default_rng(seed).random(len(rows)) < 0.5
        kinds = ["mesh" if p and mesh_available(args) else "shaded" for p in pick]
    renderers = {kind: renderer_for(kind, args) for kind in set(kinds)}
    if set(kinds) == {"shaded"}:
        return rows  # already drawn so

    def draw(row: dict[str, Any], index: int) -> dict[str, Any]:
        kind = kinds[index]
        if kind == "shaded":
            return {}
        from semanticface.rows import row_to_coefficients

        renderer = renderers[kind]
        image = renderer.render(row_to_coefficients(row), identity=row["identity"], size=args.image_size)
        return {"images": [image], "renderer": renderer.name, "style": "shaded" if kind == "mesh" else kind}

    return rows.map(draw, with_indices=True, desc=f"drawing {domain}")


def domain_data(args: argparse.Namespace, seed: int, domain: str, base: Any, out: Path) -> Path:
    import datasets

    if not (out / "dataset_dict.json").is_file():
        splits = {name: restyle(base[name], domain, args, seed) for name in ("train", "validation")}
        datasets.DatasetDict(splits).save_to_disk(str(out))
    return out


def test_images(rows: Any, kind: str, identities: list[int], args: argparse.Namespace) -> list[Any]:
    """The held-out expressions drawn by ``kind`` (shaded, flat, mesh) with the given identity per row."""
    renderer = renderer_for(kind, args)
    faces = dataset_coefficients(rows)
    return [renderer.render(face, identity=int(i), size=args.image_size) for face, i in zip(faces, identities)]


def test_sets(args: argparse.Namespace, seed: int, base: Any, test: Any) -> dict[str, dict[str, list[int]]]:
    """Per identity set, the identity each test row is drawn with: unseen (the row's own, a held-out identity)
    or seen (a training identity: the expression is still held out)."""
    train_ids = sorted(set(base["train"]["identity"]))
    seen = np.random.default_rng(seed).choice(train_ids, size=len(test)).tolist()
    return {"unseen": list(test["identity"]), "seen": seen}


def test_kinds(args: argparse.Namespace) -> tuple[str, ...]:
    return ("shaded", "flat", "mesh") if mesh_available(args) else ("shaded", "flat")


def in_domain_kinds(domain: str, args: argparse.Namespace) -> tuple[str, ...]:
    if domain == "flat":
        return ("flat",)
    return ("shaded", "mesh") if mesh_available(args) else ("shaded",)


# --- targets ----------------------------------------------------------------------------------------------------


def token_shares(tokenizer: Any, faces: list[FaceCoefficients]) -> dict[str, float]:
    """Mean token counts of the semantic description, its digit (number) tokens, and the coefficients target's."""
    import re

    from semanticface.contract import TargetConfig, render_target

    digit = re.compile("[0-9]")

    def counts(text: str) -> tuple[int, int]:
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(tokens), sum(bool(digit.search(t)) for t in tokens)

    semantic = [render_target(f, TargetConfig(target_format="semantic")) for f in faces]
    plain = [render_target(f, TargetConfig(target_format="coefficients")) for f in faces]
    description = [counts(t[: t.index("Coefficients:")])[0] for t in semantic]
    sem, coef = np.array([counts(t) for t in semantic]), np.array([counts(t) for t in plain])
    return {
        "description_tokens": float(np.mean(description)),
        "semantic_tokens": float(sem[:, 0].mean()),
        "semantic_number_tokens": float(sem[:, 1].mean()),
        "coefficients_tokens": float(coef[:, 0].mean()),
        "coefficients_number_tokens": float(coef[:, 1].mean()),
        "longest_semantic_tokens": int(sem[:, 0].max()),
    }


def matched_weight(shares: dict[str, float]) -> float:
    """The number-token weight giving a semantic target's numbers the loss share they have in the coefficients
    target: w·n / (w·n + other) = share  =>  w = share·other / (n·(1 − share))."""
    share = shares["coefficients_number_tokens"] / shares["coefficients_tokens"]
    numbers = shares["semantic_number_tokens"]
    other = shares["semantic_tokens"] - numbers
    return float(share * other / (numbers * (1 - share)))


def filler_templates(tokenizer: Any, tokens: int, out: Path) -> Path:
    """A template folder whose description is one fixed text of ``tokens`` tokens (no digits, no braces)."""
    ids = tokenizer((FILLER_WORDS * (tokens // 8 + 2)).strip(), add_special_tokens=False)["input_ids"][:tokens]
    text = tokenizer.decode(ids).strip()
    out.mkdir(parents=True, exist_ok=True)
    (out / "description.j2").write_text(text + "\n")
    return out


# --- models -----------------------------------------------------------------------------------------------------


def pretrain(args: argparse.Namespace, seed: int, domain: str, base_rows: Any, out: Path) -> dict[str, Any]:
    """A tiny model whose vision tower learnt the training domain's faces (training identities only)."""
    from semanticface.testing.tiny_model import build_tiny_model
    from semanticface.training.vision_pretrain import VisionPretrainConfig, pretrain_vision_tower

    build_tiny_model(out, architecture=args.architecture, seed=seed, processor_dir=args.processor_dir)
    uniform = expressions(args, seed, "uniform", out.parent / "vision_data")["train"]
    if not set(uniform["identity"]) <= set(base_rows["identity"]):
        raise RuntimeError("vision pretraining faces must come from the training identities only")
    rows = restyle(uniform, domain, args, seed + 1)
    config = VisionPretrainConfig(
        vision_pretrain_steps=args.vision_pretrain_steps, vision_pretrain_seed=seed,
        vision_pretrain_target=args.vision_pretraining, vision_pretrain_mesh_dir=args.mesh_dir,
        # mse for both targets: with l1 the blendshapes tower settled at the median face (loss 0.2556 -> 0.2551 over
        # 4,000 steps in the 3-seed run; a constant scores 0.25), the failure VisionPretrainConfig's help names.
        vision_pretrain_loss="mse",
    )  # fmt: skip
    return pretrain_vision_tower(out, rows, config)


def decode(model: Any, processor: Any, target: Any, images: list[Any], max_new_tokens: int) -> dict[str, Any]:
    """Both readouts of ``images``: values (None = unparsed) and descriptions."""
    from semanticface.inference import SemanticFacePredictor

    was_training = model.training
    model.eval()
    result: dict[str, Any] = {}
    for readout, (decoding, numbers) in READOUTS.items():
        predictor = SemanticFacePredictor(model, processor, target_config=target, decoding=decoding)
        outputs = predictor.predict(images, batch_size=16, max_new_tokens=max_new_tokens, number_estimate=numbers)
        result[readout] = {
            "values": [None if o.coefficients is None else coefficient_values(o.coefficients) for o in outputs],
            "descriptions": [o.description for o in outputs],
        }
    model.train(was_training)
    return result


def curve_callback(steps: dict[int, float], decode_now: Any) -> Any:
    """A trainer callback decoding the in-domain test set when training reaches each of ``steps``."""
    from transformers import TrainerCallback

    class Curve(TrainerCallback):
        def __init__(self) -> None:
            self.points: dict[str, Any] = {}

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step in steps:
                self.points[str(steps[state.global_step])] = decode_now(kwargs["model"], kwargs["processing_class"])

    return Curve()


def train_arm(
    args: argparse.Namespace, seed: int, arm: str, domain: str, data: Path, base: Path, out: Path,
    targets: dict[str, Any], tests: dict[str, list[Any]], max_new_tokens: int,
) -> dict[str, Any]:  # fmt: skip
    """Train one arm and decode: the in-domain tests along the curve, every other test set at the end."""
    from semanticface.contract import TargetConfig

    target_format = "coefficients" if arm == "coefficients" else "semantic"
    extra = []
    template_dir = None
    if arm == "semantic_weighted":
        extra += ["--number_token_weight", f"{targets['number_token_weight']:.6f}"]
    if arm == "filler":
        template_dir = targets["filler_dir"]
        extra += ["--template_dir", template_dir]
    target = TargetConfig(target_format=target_format, template_dir=template_dir)
    in_domain = [name for name in tests if name.split("/")[0] in in_domain_kinds(domain, args)]
    curve_steps = {max(1, round(f * args.max_steps)): f for f in CURVE[:-1]}

    def decode_in_domain(model: Any, processor: Any, names: list[str] = in_domain) -> dict[str, Any]:
        return {name: decode(model, processor, target, tests[name], max_new_tokens) for name in names}

    unseen = [name for name in in_domain if name.endswith("/unseen")]  # the curve: unseen identities only
    callback = curve_callback(curve_steps, lambda model, processor: decode_in_domain(model, processor, unseen))
    begin = time.perf_counter()
    trainer = distil(args, seed, target_format, data, base, out, extra_argv=extra, callbacks=[callback])
    train_s = time.perf_counter() - begin
    model = trainer.accelerator.unwrap_model(trainer.model)
    final = decode_in_domain(model, trainer.processing_class)
    for name in tests:
        if name not in final:  # cross-domain cells: the median readout only
            outputs = decode(model, trainer.processing_class, target, tests[name], max_new_tokens)
            final[name] = {"median": outputs["median"]}
    curve = {**callback.points, "1.0": final}
    return {"train_s": round(train_s, 1), "steps": trainer.state.global_step, "curve": curve,
            "peak_rss_mb": round(peak_rss_mb(), 1)}  # fmt: skip


def mediapipe_available(args: argparse.Namespace) -> bool:
    import importlib.util

    return importlib.util.find_spec("mediapipe") is not None and Path(args.mediapipe_model).is_file()


def run_domain(
    args: argparse.Namespace, seed: int, domain: str, base: Any, tests: dict[str, list[Any]], out: Path,
    result: dict[str, Any],
) -> None:  # fmt: skip
    """Pretrain a tower on ``domain`` and train its arms (stored per stage); adds them to ``result``."""
    from semanticface.modeling import load_processor

    slug = domain.replace("+", "_")
    data = domain_data(args, seed, domain, base, out / f"data_{slug}")
    model = out / f"base_{slug}"
    result["vision_pretraining"][domain] = stage(
        out / f"vision_{slug}.json", functools.partial(pretrain, args, seed, domain, base["train"], model)
    )
    processor = load_processor(model)
    tokenizer = getattr(processor, "tokenizer", processor)
    shares = token_shares(tokenizer, dataset_coefficients(base["train"].select(range(min(200, len(base["train"]))))))
    targets = {
        **shares,
        "number_token_weight": matched_weight(shares),
        "filler_dir": str(filler_templates(tokenizer, round(shares["description_tokens"]), out / "filler")),
    }
    max_new_tokens = shares["longest_semantic_tokens"] + 64
    arms = args.arms if domain == TRAIN_DOMAINS[0] else [a for a in args.arms if a in DOMAIN_ARMS]
    own = {n: t for n, t in tests.items() if n.split("/")[0] in in_domain_kinds(domain, args)}
    for arm in arms:
        # Domain arms (and every arm trained on flat) are tested everywhere; the others in their own domain only.
        wanted = tests if arm in DOMAIN_ARMS or domain != TRAIN_DOMAINS[0] else own
        result["arms"][f"{domain}:{arm}"] = stage(
            out / f"{slug}_{arm}.json",
            functools.partial(
                train_arm, args, seed, arm, domain, data, model, out / f"{slug}_{arm}", targets, wanted, max_new_tokens
            ),
        )
    result["targets"][domain] = {k: v for k, v in targets.items() if k != "filler_dir"}


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> dict[str, Any]:
    """Every decode of one seed (stored per stage, so a rerun resumes)."""
    out.mkdir(parents=True, exist_ok=True)
    source = args.source
    if source == "llf" and not any(SHARED_LLF.glob("*.csv")):
        print(f"WARNING: no Live Link Face captures at {SHARED_LLF}: expressions are prototype draws", flush=True)
        source = "prototype"
    base = expressions(args, seed, source, out / "data")
    test = base["test"].select(range(min(args.test_limit, len(base["test"]))))
    identity_sets = test_sets(args, seed, base, test)
    with_domains = seed < args.domain_seeds
    kinds = test_kinds(args) if with_domains else in_domain_kinds(TRAIN_DOMAINS[0], args)
    tests = {
        f"{kind}/{ids}": test_images(test, kind, identity_sets[ids], args)
        for kind in kinds for ids in (("unseen", "seen") if with_domains else ("unseen",))
    }  # fmt: skip
    domains = TRAIN_DOMAINS if with_domains else TRAIN_DOMAINS[:1]
    result: dict[str, Any] = {"arms": {}, "vision_pretraining": {}, "targets": {}}
    for domain in domains:
        run_domain(args, seed, domain, base, tests, out, result)
    if with_domains and mediapipe_available(args):
        from semanticface.evaluation.baselines import MediaPipeBaseline

        def detect() -> dict[str, Any]:
            baseline = MediaPipeBaseline(args.mediapipe_model)
            return {name: [None if c is None else coefficient_values(c) for c in baseline.predict(images)]
                    for name, images in tests.items()}  # fmt: skip

        result["mediapipe"] = stage(out / "mediapipe.json", detect)
    result.update(
        split=json.loads((out / "data" / "split_provenance.json").read_text()),
        train=dataset_coefficients(base["train"]),
        test=dataset_coefficients(test),
        row_ids=[f"seed{seed}/{i}" for i in range(len(test))],
        source=source,
    )
    return result


# --- scoring ----------------------------------------------------------------------------------------------------


def score_seed(seed_result: dict[str, Any], out: Path) -> dict[str, Any]:
    """Per-image errors of every decode (same rows, same cells, missing cells as the train median), description
    quality of every semantic decode; errors saved to ``out/errors.jsonl``."""
    truths, train = seed_result["test"], seed_result["train"]
    median = reference_median(train, truths)
    keep = np.ones(len(truths), dtype=bool)
    path = out / "errors.jsonl"
    path.unlink(missing_ok=True)
    errors: dict[str, np.ndarray] = {}
    quality: dict[str, dict[str, float]] = {}
    warnings: dict[str, list[str]] = {}
    unparsed: dict[str, float] = {}

    def add(name: str, predictions: list[FaceCoefficients | None], constant: bool = False) -> None:
        result = score_system(name, predictions, truths, fill=median.median, constant=constant)
        per_image = per_image_errors(result, seed_result["row_ids"], keep)
        errors[name] = per_image.errors
        warnings[name] = result.warnings
        unparsed[name] = float(result.metrics.parse_failure_rate)
        save_per_image_errors(path, per_image.row_ids, per_image.channel_errors, system=name, append=path.exists())

    add("median_constant", [median.median] * len(truths), constant=True)
    for key, arm in seed_result["arms"].items():
        for fraction, tests in arm["curve"].items():
            for test_name, readouts in tests.items():
                for readout, decoded in readouts.items():
                    name = f"{key}@{fraction}|{test_name}|{readout}"
                    predictions = [coefficients_from_values(v) for v in decoded["values"]]
                    add(name, predictions)
                    q = description_quality(decoded["descriptions"], truths)
                    if q.compared:  # outputs with a description (not coefficients-only, not the filler)
                        c = consistency(decoded["descriptions"], predictions)
                        quality[name] = {**q.to_extra(), "compared": q.compared, "description_consistency": c.rate}
    for test_name, values in seed_result.get("mediapipe", {}).items():
        predictions = [coefficients_from_values(v) for v in values]
        add(f"mediapipe|{test_name}", predictions)
        detected = np.array([p is not None for p in predictions])
        errors[f"mediapipe_detected|{test_name}"] = errors[f"mediapipe|{test_name}"][detected]
    return {"errors": errors, "quality": quality, "warnings": warnings, "unparsed": unparsed}


def _stats(per_seed: list[float], scored: list[dict[str, Any]] | None = None, name: str = "") -> dict[str, Any]:
    """Mean ± s.e. across seeds (and, given the scored seeds, the mean parse-failure rate of ``name``)."""
    mae, se = mean_se(per_seed) if per_seed else (float("nan"), float("nan"))
    out: dict[str, Any] = {"mae": mae, "mae_se": se, "per_seed": per_seed}
    if scored is not None:
        rates = [s["unparsed"][name] for s in scored if name in s["unparsed"]]
        out["parse_failure_rate"] = float(np.mean(rates)) if rates else None
    return out


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _system(scored: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return _stats(_seed_maes(scored, name), scored, name)


def _seed_maes(scored: list[dict[str, Any]], name: str) -> list[float]:
    return [float(np.mean(s["errors"][name])) for s in scored if name in s["errors"] and len(s["errors"][name])]


def _pooled(scored: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.concatenate([s["errors"][name] for s in scored if name in s["errors"]])


def _both(scored: list[dict[str, Any]], a: str, b: str) -> list[dict[str, Any]]:
    """The seeds that have both systems (the domain matrix runs on fewer seeds)."""
    return [s for s in scored if a in s["errors"] and b in s["errors"]]


def summarise(scored: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    main_test = "shaded/unseen"
    train = TRAIN_DOMAINS[0]
    arms: dict[str, Any] = {}
    for arm in args.arms:
        readouts = {r: _system(scored, f"{train}:{arm}@1.0|{main_test}|{r}") for r in READOUTS}
        curve = {str(f): {r: _system(scored, f"{train}:{arm}@{f}|{main_test}|{r}") for r in READOUTS} for f in CURVE}
        quality = [s["quality"].get(f"{train}:{arm}@1.0|{main_test}|median") for s in scored]
        quality = [q for q in quality if q]
        description = (
            {k: _nanmean([q[k] for q in quality]) for k in
             ("category_accuracy", "action_precision", "action_recall", "description_consistency")}
            if quality else None
        )  # fmt: skip
        arms[arm] = {**readouts["median"], "readouts": readouts, "curve": curve, "description": description}
    comparisons = {}
    for readout in READOUTS:
        for arm in args.arms:
            if arm == "coefficients":
                continue
            a = f"{train}:{arm}@1.0|{main_test}|{readout}"
            b = f"{train}:coefficients@1.0|{main_test}|{readout}"
            comparisons[f"{arm} vs coefficients ({readout})"] = compare(
                {a: _pooled(scored, a), b: _pooled(scored, b)}, a, b, args.n_boot
            )
        if {"semantic", "filler"} <= set(args.arms):
            a, b = (f"{train}:{x}@1.0|{main_test}|{readout}" for x in ("semantic", "filler"))
            comparisons[f"semantic vs filler ({readout})"] = compare(
                {a: _pooled(scored, a), b: _pooled(scored, b)}, a, b, args.n_boot
            )
    for name in comparisons.values():
        name["a"], name["b"] = name["a"].split("|")[0], name["b"].split("|")[0]
    domains: dict[str, Any] = {}
    for domain in TRAIN_DOMAINS:
        for kind in ("shaded", "flat", "mesh"):
            for ids in ("unseen", "seen"):
                cell = {}
                for arm in DOMAIN_ARMS:
                    name = f"{domain}:{arm}@1.0|{kind}/{ids}|median"
                    if _seed_maes(scored, name):
                        cell[arm] = _system(scored, name)
                if not cell:
                    continue
                entry: dict[str, Any] = {"train": domain, "test": kind, "identities": ids, "arms": cell,
                                         "median_constant": _stats(_seed_maes(scored, "median_constant"))}  # fmt: skip
                a, b = (f"{domain}:{arm}@1.0|{kind}/{ids}|median" for arm in ("semantic", "coefficients"))
                both = _both(scored, a, b)
                if both:
                    entry["semantic_vs_coefficients"] = compare(
                        {a: _pooled(both, a), b: _pooled(both, b)}, a, b, args.n_boot
                    )
                    entry["seeds"] = len(both)
                domains[f"{domain} -> {kind} ({ids})"] = entry
    mediapipe = {}
    for name in {k.split("|")[1] for s in scored for k in s["errors"] if k.startswith("mediapipe|")}:
        detected = [len(s["errors"][f"mediapipe_detected|{name}"]) / len(s["errors"][f"mediapipe|{name}"])
                    for s in scored if f"mediapipe|{name}" in s["errors"]]  # fmt: skip
        mediapipe[name] = {
            "detection_rate": float(np.mean(detected)),
            "mae": _stats(_seed_maes(scored, f"mediapipe|{name}")),
            "mae_detected": _stats(_seed_maes(scored, f"mediapipe_detected|{name}")),
        }
    return {
        "arms": arms,
        "comparisons": comparisons,
        "domains": domains,
        "mediapipe": mediapipe or None,
        "median_constant": _stats(_seed_maes(scored, "median_constant")),
    }


def table(report: dict[str, Any]) -> str:
    lines = ["| arm | MAE median (± s.e.) | MAE greedy (unparsed) | curve ¼ / ½ / 1 (median) | category acc. | "
             "action P / R |", "|---|---|---|---|---|---|"]  # fmt: skip
    for arm, s in report["arms"].items():
        curve = " / ".join(f"{s['curve'][str(f)]['median']['mae']:.4f}" for f in CURVE)
        d = s["description"]
        desc = (
            (f"{d['category_accuracy']:.2f}", f"{d['action_precision']:.2f} / {d['action_recall']:.2f}")
            if d
            else ("–", "–")
        )
        g = s["readouts"]["greedy"]
        lines.append(f"| {arm} | {s['mae']:.4f} ± {s['mae_se']:.4f} | {g['mae']:.4f} ± {g['mae_se']:.4f} "
                     f"({g['parse_failure_rate']:.0%}) | {curve} | "
                     f"{desc[0]} | {desc[1]} |")  # fmt: skip
    lines.append(f"| median constant | {report['median_constant']['mae']:.4f} | | | | |")
    lines += ["", "| comparison (a − b) | mean diff | 95% CI | excludes 0 |", "|---|---|---|---|"]
    for name, c in report["comparisons"].items():
        lines.append(f"| {name} | {c['mean_diff']:+.4f} | [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | "
                     f"{'yes' if c['excludes_zero'] else 'no'} |")  # fmt: skip
    lines += ["", "| train -> test (identities) | coefficients | semantic | semantic − coefficients [CI] | seeds |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, cell in report["domains"].items():
        arms = [f"{cell['arms'][a]['mae']:.4f}" if a in cell["arms"] else "–" for a in DOMAIN_ARMS]
        c = cell.get("semantic_vs_coefficients")
        ci = f"{c['mean_diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]" if c else "–"
        lines.append(f"| {name} | {arms[0]} | {arms[1]} | {ci} | {cell.get('seeds', '–')} |")
    if report["mediapipe"]:
        lines += [
            "",
            "| MediaPipe on | detection rate | MAE (misses as median) | MAE on detected |",
            "|---|---|---|---|",
        ]
        for name, m in sorted(report["mediapipe"].items()):
            lines.append(
                f"| {name} | {m['detection_rate']:.0%} | {m['mae']['mae']:.4f} | {m['mae_detected']['mae']:.4f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out)
    report = new_report("semantic", vars(args))
    report["domain_note"] = (
        f"domain matrix on the first {min(args.domain_seeds, args.seeds)} of {args.seeds} seeds; cross-domain cells "
        "use the median readout; "
        + (
            "shaded+mesh = half shaded avatar, half ICT mesh"
            if mesh_available(args)
            else "no ICT mesh found: shaded+mesh is shaded avatar only"
        )  # fmt: skip
    )
    start = time.perf_counter()
    if args.only_seeds is not None:
        for seed in args.only_seeds:
            run_seed(args, seed, out / f"seed{seed}")
        print(f"seeds {args.only_seeds} stored under {out}; run without --only-seeds to report")
        return report
    if args.jobs > 1:  # stages stored by the workers are reused by the loop below
        # A seed with the domain matrix trains 6 arms and 2 towers, one without 4 and 1: about 1.5x the time.
        costs = {seed: 1.5 if seed < args.domain_seeds else 1.0 for seed in range(args.seeds)}
        worker_argv = sys.argv[1:] if argv is None else list(argv)
        run_seed_workers(Path(__file__).resolve(), worker_argv, balance_seeds(costs, args.jobs), out)
    scored, seeds = [], {}
    for seed in range(args.seeds):
        begin = time.perf_counter()
        result = run_seed(args, seed, out / f"seed{seed}")
        scored.append(score_seed(result, out / f"seed{seed}"))
        seeds[f"seed{seed}"] = {
            "split": result["split"],
            "source": result["source"],
            "vision_pretraining": result["vision_pretraining"],
            "targets": result["targets"],
            "arms": {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in result["arms"].items()},
            "warnings": {k: v for k, v in scored[-1]["warnings"].items() if v},
            "wall_s": round(time.perf_counter() - begin, 1),
        }
        print(f"seed {seed}: " + ", ".join(
            f"{arm} {np.mean(scored[-1]['errors'][f'{TRAIN_DOMAINS[0]}:{arm}@1.0|shaded/unseen|median']):.4f}"
            for arm in args.arms), flush=True)  # fmt: skip
    report.update(summarise(scored, args), seeds=seeds)
    report["readout"] = "MAE over the 52 blendshapes of held-out identities and expressions (shaded avatar unless "
    report["readout"] += "stated); median = forced decoding with median numbers, greedy = plain generate"
    report["total_wall_s"] = round(time.perf_counter() - start, 1)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_report(out, report)
    print(table(report))
    print(f"report: {out / 'report.json'}  (total {report['total_wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
