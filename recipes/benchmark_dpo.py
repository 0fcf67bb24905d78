"""Benchmark of the preference stage (SuperFace's claim at tiny scale): does DPO against people's judgement fix
what a model learnt from biased capture-software labels?

1. Render faces of the ICT-FaceKit mesh with known (true) coefficients drawn from real Live Link Face captures.
2. Label them with MediaPipe (the biased "capture software" labels) and distil a tiny Qwen2.5-VL on those labels.
3. Run DPO rounds: sample candidates from the previous round's model, rank them with the simulated annotator
   against the TRUE coefficients (standing in for people looking at renders), export pairs, train.
4. Report held-out MAE against the truth (overall, per region, per face half) of the MediaPipe labels themselves,
   the distilled model and every round's model, with pair counts.

    OMP_NUM_THREADS=1 python recipes/benchmark_dpo.py --out outputs/benchmark_dpo      # ~5 min on 2 CPU cores
    OMP_NUM_THREADS=1 python recipes/benchmark_dpo.py --out /tmp/bench --quick         # smoke run, ~2 min
    ... --run-name dpo_t03_06 --temperatures 0.3 0.6     # another DPO setting on the same data and SFT model

Stages already done under --out (renders, labels, SFT model, finished rounds) are reused.

Needs ../shared/data (mesh, Live Link Face captures, MediaPipe model) or $SEMANTICFACE_SHARED_DATA.
Writes ``report.json`` (and every stage's artefacts) under ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("semanticface.benchmark_dpo")


def shared_data() -> Path:
    path = Path(os.environ.get("SEMANTICFACE_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (path / "meshes" / "ict_facekit").is_dir():
        raise SystemExit(f"shared data not found at {path} (set SEMANTICFACE_SHARED_DATA)")
    return path


def render_faces(out: Path, data: Path, n: int, size: int, seed: int):
    """Mesh renders with true coefficients from real captures; splits: train (DPO + SFT images) and test."""
    from datasets import load_from_disk

    from semanticface.sampling import SamplingConfig
    from semanticface.synth import SynthConfig, synthesize

    if (out / "dataset_dict.json").is_file():
        return load_from_disk(str(out))
    config = SynthConfig(
        renderer="mesh",
        n=n,
        size=size,
        seed=seed,
        identities=8,
        splits={"train": 0.75, "test": 0.25},
        mesh_dir=str(data / "meshes" / "ict_facekit"),
        sampling=SamplingConfig(source="llf", recordings=(str(data / "llf" / "*.csv"),), head_pose=0.0),
    )
    return synthesize(config, out)


def pseudo_label(rows, out: Path, model_path: Path):
    """The same rows with MediaPipe's scores as coefficients (faces it misses are dropped)."""
    from datasets import Dataset, load_from_disk

    from semanticface.pseudolabel import MediaPipeLabeler
    from semanticface.rows import coefficients_to_row

    if (out / "dataset_info.json").is_file():
        return load_from_disk(str(out))
    labelled = []
    with MediaPipeLabeler(model_path) as labeler:
        for i, row in enumerate(rows):
            label = labeler.label(row["images"][0])
            if label is not None:
                labelled.append({**coefficients_to_row(label), "images": row["images"], "truth_row": i})
    dataset = Dataset.from_list(labelled)
    dataset.save_to_disk(str(out))
    return dataset


def distill(pseudo_dir: Path, out: Path, steps: int, seed: int) -> Path:
    from trl import ModelConfig, SFTConfig

    from semanticface.training.config import DistillScriptArguments

    if (out / "semanticface_config.json").is_file():
        return out
    spec = importlib.util.spec_from_file_location("distill_recipe", REPO / "recipes" / "distill.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    script_args = DistillScriptArguments(
        dataset_name=str(pseudo_dir),
        eval_fraction=0.0,
        target_format="coefficients",
        freeze_vision_tower=False,
        eval_generate_samples=0,
    )
    training_args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=2e-3,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        max_length=None,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        logging_steps=20,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
    )
    model_args = ModelConfig(model_name_or_path="tiny:qwen2_5_vl", dtype="float32", use_peft=False)
    recipe.main(script_args, training_args, model_args)
    return out


def label_mae(truth_rows, pseudo_rows) -> dict:
    """MAE of the MediaPipe labels themselves against the truth (what the distilled model imitates)."""
    from semanticface.evaluation.metrics import coefficient_metrics
    from semanticface.rows import row_to_coefficients

    truths = [row_to_coefficients(truth_rows[int(r["truth_row"])]) for r in pseudo_rows]
    labels = [row_to_coefficients(r) for r in pseudo_rows]
    metrics = coefficient_metrics(labels, truths)
    return {
        "num_samples": metrics.num_samples,
        "mae": metrics.overall.mae,
        "mae_regions": {k: v.mae for k, v in metrics.regions.items()},
        "mae_halves": {k: v.mae for k, v in metrics.halves.items()},
    }


def candidate_spread(dpo_dir: Path, truth_dir: Path) -> list[dict]:
    """Per round: MAE against the truth of the best, average and worst candidate of each item (the headroom the
    annotator's choice offers over plain sampling)."""
    import numpy as np
    from datasets import load_from_disk

    from semanticface.preferences.manifest import CandidateSet
    from semanticface.rows import row_to_coefficients

    rows = load_from_disk(str(truth_dir))
    out = []
    for round_dir in sorted(dpo_dir.glob("round_*")):
        if not (round_dir / "candidates" / "manifest.jsonl").is_file():
            continue
        per_item = []
        for item in CandidateSet.load(round_dir / "candidates"):
            truth = row_to_coefficients(rows[int(item.metadata["row"])])
            per_item.append(
                [float(np.mean(np.abs(c.coefficients.blendshapes - truth.blendshapes))) for c in item.candidates]
            )
        out.append({
            "round": int(round_dir.name.split("_")[1]),
            "candidates_per_item": float(np.mean([len(m) for m in per_item])),
            "best_mae": float(np.mean([min(m) for m in per_item])),
            "mean_mae": float(np.mean([np.mean(m) for m in per_item])),
            "worst_mae": float(np.mean([max(m) for m in per_item])),
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/benchmark_dpo")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--images", type=int, default=240, help="rendered faces (75%% train, 25%% test)")
    parser.add_argument("--sft-steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images-per-round", type=int, default=48)
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--dpo-steps", type=int, default=60)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--eval-samples", type=int, default=60)
    parser.add_argument("--decoding", choices=("generate", "forced"), default="forced")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 1.0], help="sampling temperatures")
    parser.add_argument("--run-name", default="dpo", help="subfolder of --out for the DPO rounds (compare settings)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.images, args.sft_steps, args.images_per_round, args.dpo_steps, args.eval_samples = 40, 30, 6, 4, 6
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from trl import DPOConfig, ModelConfig

    from semanticface.preferences.rounds import DPOScriptArguments, run_rounds

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = shared_data()
    # Stage timings persist beside the artefacts, so a resumed run reports how long each stage really took.
    timings_path = out / "timings.json"
    timings: dict[str, float] = json.loads(timings_path.read_text()) if timings_path.is_file() else {}

    def timed(name: str, done: bool, fn):
        start = time.perf_counter()
        result = fn()
        if not done or name not in timings:
            timings[name] = time.perf_counter() - start
            timings_path.write_text(json.dumps(timings, indent=2))
        return result

    faces = timed(
        "render_s",
        (out / "faces" / "dataset_dict.json").is_file(),
        lambda: render_faces(out / "faces", data, args.images, 112, args.seed),
    )
    task = data / "mediapipe" / "face_landmarker.task"
    pseudo = timed(
        "pseudolabel_train_s",
        (out / "pseudo_train" / "dataset_info.json").is_file(),
        lambda: pseudo_label(faces["train"], out / "pseudo_train", task),
    )
    pseudo_test = timed(
        "pseudolabel_test_s",
        (out / "pseudo_test" / "dataset_info.json").is_file(),
        lambda: pseudo_label(faces["test"], out / "pseudo_test", task),
    )
    sft_dir = timed(
        "distill_s",
        (out / "sft" / "semanticface_config.json").is_file(),
        lambda: distill(out / "pseudo_train", out / "sft", args.sft_steps, args.seed),
    )

    # DPO images: the training faces with their TRUE coefficients (what the simulated annotator compares to).
    truth_train = out / "truth_train"
    if not (truth_train / "dataset_info.json").is_file():
        faces["train"].save_to_disk(str(truth_train))
    truth_test = out / "truth_test"
    if not (truth_test / "dataset_info.json").is_file():
        faces["test"].save_to_disk(str(truth_test))

    script_args = DPOScriptArguments(
        dataset_name=str(truth_train),
        eval_dataset_name=str(truth_test),
        eval_samples=args.eval_samples,
        num_rounds=args.rounds,
        images_per_round=args.images_per_round,
        annotator="simulated",
        num_samples=args.num_samples,
        temperatures=list(args.temperatures),
        sample_max_new_tokens=400,
        decoding=args.decoding,
        region_mode="full",
        renderer="mesh",
        mesh_dir=str(data / "meshes" / "ict_facekit"),
        render_size=112,
        pairs="all",
        sampling_seed=args.seed,
    )
    training_args = DPOConfig(
        output_dir=str(out / args.run_name),
        max_steps=args.dpo_steps,
        per_device_train_batch_size=4,
        learning_rate=args.learning_rate,
        beta=args.beta,
        max_length=None,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
    )
    # The distilled tiny model is a full checkpoint; LoRA on a random-init tiny model barely learns, so the
    # benchmark trains it fully (TRL then keeps a reference copy, cheap at this size).
    model_args = ModelConfig(model_name_or_path=str(sft_dir), dtype="float32", use_peft=False)
    rounds = timed(f"{args.run_name}_rounds_s", (out / args.run_name / f"round_{args.rounds}" / "metrics.json").is_file(),
                   lambda: run_rounds(script_args, training_args, model_args))  # fmt: skip

    report = {
        "setup": {k: v for k, v in vars(args).items()},
        "data": {"train_faces": len(faces["train"]), "test_faces": len(faces["test"]),
                 "mediapipe_labelled_train": len(pseudo), "mediapipe_labelled_test": len(pseudo_test)},
        "mediapipe_labels_vs_truth_test": label_mae(faces["test"], pseudo_test) if len(pseudo_test) else None,
        "sft_model_vs_truth_test": rounds.get("start", {}).get("eval"),
        "rounds": [
            {"round": r["round"], "items": r.get("items"), "rankings": r.get("rankings"), "pairs": r["pairs"],
             "train": r["train"], "eval_vs_truth_test": r.get("eval")}
            for r in rounds["rounds"]
        ],
        "timings_s": timings,
    }  # fmt: skip
    start_mae = (report["sft_model_vs_truth_test"] or {}).get("mae")
    if report["rounds"] and start_mae is not None:
        first = report["rounds"][0]["eval_vs_truth_test"]["mae"]
        report["claim_round1_lowers_mae"] = {"sft_mae": start_mae, "round1_mae": first, "holds": first < start_mae}
    report["candidates_vs_truth"] = candidate_spread(out / args.run_name, truth_train)
    (out / f"report_{args.run_name}.json" if args.run_name != "dpo" else out / "report.json").write_text(
        json.dumps(report, indent=2, default=str)
    )
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
