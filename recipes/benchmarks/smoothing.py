"""Jitter with and without One-Euro smoothing on a real video, the lag it adds, and a contact sheet of face crops.

    python recipes/benchmarks/smoothing.py --video ../shared/data/video/WolfgangLanger_Pexels.mp4 \
        --face-model ../shared/data/mediapipe/face_landmarker.task [--predictions take.jsonl] \
        --out outputs/bench_smoothing --sheet outputs/crops_sheet.png

Per frame the face is found and cropped as ``semanticface predict`` does (MediaPipe Face Landmarker in video mode,
box tracked by :class:`~semanticface.facecrop.BoxTracker`). Jitter is the mean absolute first difference over frames
and channels (:func:`~semanticface.smoothing.jitter`) of

* MediaPipe's own 52 blendshape scores for the face (a real reading of the face), raw and One-Euro smoothed with
  the predictor's defaults;
* with ``--predictions``, a ``semanticface predict`` JSONL of the same video: its ``raw_coefficients`` (model output)
  against its ``coefficients`` (smoothed);
* the crop box (centre and size, in pixels), raw against tracked.

The lag is the time a 0 → 1 step takes to reach 90% through the filter at the video's frame rate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import new_report, write_report  # noqa: E402

from semanticface.facecrop import BoxTracker, FaceCropper
from semanticface.schema import BLENDSHAPES
from semanticface.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF, jitter, smooth_series, step_lag
from semanticface.video import iter_frames, video_info


def _mediapipe_series(video: Path, face_model: Path, sheet: Path | None, sheet_every: int) -> dict:
    times, scores, raw_boxes, tracked_boxes, crops = [], [], [], [], []
    tracker = BoxTracker()
    with FaceCropper(face_model, video=True) as cropper:
        for frame in iter_frames(video):
            faces = cropper.faces(frame.image, frame.seconds)
            times.append(frame.seconds)
            if not faces:
                tracker.lost()
                scores.append([np.nan] * len(BLENDSHAPES))
                raw_boxes.append([np.nan] * 3)
                tracked_boxes.append([np.nan] * 3)
                continue
            face = faces[0]
            scores.append([face.scores.get(n, np.nan) for n in BLENDSHAPES])
            box = cropper.box(face)
            smooth = tracker.update(box, frame.seconds)
            raw_boxes.append([*box.centre, box.size])
            tracked_boxes.append([*smooth.centre, smooth.size])
            if sheet is not None and frame.index % sheet_every == 0:
                crops.append((frame.index, smooth.crop(frame.image, 128)))
    if sheet is not None and crops:
        columns = 8
        rows = (len(crops) + columns - 1) // columns
        canvas = Image.new("RGB", (128 * columns, 128 * rows), (40, 40, 40))
        for i, (_, crop) in enumerate(crops):
            canvas.paste(crop, (128 * (i % columns), 128 * (i // columns)))
        sheet.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(sheet)
    values = np.array(scores, dtype=np.float64)
    observed = ~np.isnan(values).all(axis=0)  # MediaPipe has no tongueOut
    seconds = np.array(times)
    smoothed = smooth_series(values[:, observed], seconds)
    return {
        "frames": len(times),
        "frames_without_face": int(np.isnan(values).all(axis=1).sum()),
        "mediapipe_jitter_raw": jitter(values[:, observed]),
        "mediapipe_jitter_smoothed": jitter(smoothed),
        "box_jitter_raw_px": jitter(np.array(raw_boxes)),
        "box_jitter_tracked_px": jitter(np.array(tracked_boxes)),
        "crops_in_sheet": len(crops),
    }


def _prediction_series(path: Path) -> dict:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def matrix(key: str) -> np.ndarray:
        rows = []
        for record in records:
            values = record.get(key) or record.get("coefficients") or {}
            rows.append([values.get(n, np.nan) for n in BLENDSHAPES])
        return np.array(rows, dtype=np.float64)

    raw, final = matrix("raw_coefficients"), matrix("coefficients")
    return {
        "prediction_frames": len(records),
        "prediction_jitter_raw": jitter(raw),
        "prediction_jitter_smoothed": jitter(final),
        "prediction_distinct_raw_frames": len({tuple(np.nan_to_num(r)) for r in raw}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--face-model", required=True)
    parser.add_argument("--predictions", default=None, help="a `semanticface predict` JSONL of the same video")
    parser.add_argument("--out", default="outputs/bench_smoothing", help="folder to write report.json into")
    parser.add_argument("--sheet", default=None, help="save a contact sheet of tracked face crops here")
    parser.add_argument("--sheet-every", type=int, default=15, help="one crop every N frames in the sheet")
    args = parser.parse_args()
    header = new_report("smoothing", vars(args))
    info = video_info(args.video)
    report = {
        "video": args.video,
        "fps": str(info.fps),
        "min_cutoff_hz": DEFAULT_MIN_CUTOFF,
        "beta": DEFAULT_BETA,
        "step_lag_90_s": step_lag(float(info.fps)),
        "step_lag_90_s_without_speed_adaptation": step_lag(float(info.fps), beta=0.0),
    }
    report |= _mediapipe_series(Path(args.video), Path(args.face_model), Path(args.sheet) if args.sheet else None,
                                args.sheet_every)  # fmt: skip
    if args.predictions:
        report |= _prediction_series(Path(args.predictions))
    report = {**header, **report}
    print(json.dumps(report, indent=2, default=str))
    print(f"saved {write_report(Path(args.out), report)}")


if __name__ == "__main__":
    main()
