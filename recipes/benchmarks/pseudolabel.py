"""MediaPipe on ICT-FaceKit renders: face-detection rate at the default camera, and MAE against the true
coefficients per region (the pseudo-label baseline for the preference stage).

    python recipes/benchmarks/pseudolabel.py --n 240 --out outputs/benchmark_pseudolabel

Expressions are drawn from the real Live Link Face recordings (mixing and jitter as in ``semanticface synth``)
with a small random head pose; identities vary skin and eye colour. Needs ``pip install mediapipe`` and
``../shared/data`` (or --data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import new_report, write_report  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="shared data folder (llf/, meshes/, mediapipe/)")
    parser.add_argument("--n", type=int, default=240, help="renders (the acceptance check needs >= 200)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--source", choices=("llf", "sparse", "uniform"), default="llf")
    parser.add_argument("--head-pose", type=float, default=0.15, help="max |head yaw/pitch/roll| (normalised)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-images", help="also save the renders (and no-face list) to this folder")
    parser.add_argument("--out", help="also write report.json (benchmarks/common.py's header) into this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    header = new_report("pseudolabel", vars(args))
    from semanticface.coefficients import FaceCoefficients
    from semanticface.evaluation.metrics import coefficient_metrics
    from semanticface.pseudolabel import MediaPipeLabeler
    from semanticface.render.mesh import MeshRenderer, load_ict_rig
    from semanticface.sampling import SamplingConfig, sample_expressions

    data = Path(args.data)
    renderer = MeshRenderer(load_ict_rig(data / "meshes" / "ict_facekit"))
    sampling = SamplingConfig(
        source=args.source,
        recordings=(str(data / "llf" / "*.csv"),) if args.source == "llf" else (),
        head_pose=args.head_pose,
    )
    samples = sample_expressions(sampling, args.n, seed=args.seed)
    truths = [s.coefficients for s in samples]
    predictions: list[FaceCoefficients | None] = []
    no_face: list[int] = []
    save = Path(args.save_images) if args.save_images else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    render_s = label_s = 0.0
    with MediaPipeLabeler(data / "mediapipe" / "face_landmarker.task") as labeler:
        for k, truth in enumerate(truths):
            t0 = time.perf_counter()
            image = renderer.render(truth, identity=k, size=args.size)
            t1 = time.perf_counter()
            prediction = labeler.label(image)
            label_s += time.perf_counter() - t1
            render_s += t1 - t0
            predictions.append(prediction)
            if prediction is None:
                no_face.append(k)
            if save:
                image.save(save / f"{k:04d}.png")
    detected = len(truths) - len(no_face)
    metrics = coefficient_metrics(predictions, truths)
    neutral = coefficient_metrics([FaceCoefficients.neutral()] * len(truths), truths)
    report = {
        "renders": len(truths),
        "size": args.size,
        "source": args.source,
        "head_pose_max": args.head_pose,
        "camera": "MeshRenderer default (Camera(), Lighting())",
        "detected": detected,
        "detection_rate": round(detected / len(truths), 4),
        "no_face_indices": no_face,
        "mediapipe_mae": {
            "overall_blendshapes": round(metrics.overall.mae, 4),
            "regions": {r: round(s.mae, 4) for r, s in metrics.regions.items() if s.count},
            "halves": {h: round(s.mae, 4) for h, s in metrics.halves.items()},
            "mean_pearson": round(metrics.mean_pearson, 3),
        },
        "neutral_face_mae": {
            "overall_blendshapes": round(neutral.overall.mae, 4),
            "regions": {r: round(s.mae, 4) for r, s in neutral.regions.items() if s.count and r != "tongue"},
        },
        "excluded": "tongueOut and pose (MediaPipe gives none; ICT has no tongue shape); undetected images",
        "seconds": {"render": round(render_s, 1), "mediapipe": round(label_s, 1)},
        "per_channel_mae": {n: round(s.mae, 4) for n, s in metrics.channels.items() if s.count},
    }
    if save:
        (save / "no_face.txt").write_text("".join(f"{k:04d}.png\n" for k in no_face))
    report = {**header, **report}
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        print(f"saved {write_report(Path(args.out), report)}")
    return report


if __name__ == "__main__":
    main()
