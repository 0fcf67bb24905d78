"""`semanticface pseudolabel --model face_landmarker.task IMAGES... --out DIR`: MediaPipe blendshape pseudo-labels."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--model", required=True, help="MediaPipe face_landmarker.task model file")
    parser.add_argument("--out", required=True, help="output folder (datasets.save_to_disk layout)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-crop", action="store_true", help="store whole images, not the face crops `predict` would use"
    )
    parser.add_argument("--crop-margin", type=float, default=None, help="margin around the face, per side")


def run(args: argparse.Namespace) -> int:
    from semanticface.pseudolabel import pseudolabel  # imports mediapipe lazily, with a clear error if absent

    dataset, no_face = pseudolabel(
        args.images, args.model, progress=not args.quiet, crop=not args.no_crop, margin=args.crop_margin
    )
    out = Path(args.out)
    dataset.save_to_disk(str(out))
    (out / "no_face.txt").write_text("".join(f"{p}\n" for p in no_face))
    total = len(dataset) + len(no_face)
    print(f"labelled {len(dataset)} of {total} images; no face found in {len(no_face)}")
    for path in no_face[:20]:
        print(f"  no face: {path}")
    if len(no_face) > 20:
        print(f"  ... {len(no_face) - 20} more, all listed in {out / 'no_face.txt'}")
    print(f"wrote {out} (tongueOut and pose are missing: MediaPipe does not estimate them)")
    return 0
