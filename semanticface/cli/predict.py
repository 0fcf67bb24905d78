"""`semanticface predict`: coefficients for images, image folders or a video, as a Live Link Face CSV or JSONL."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semanticface.cli.options import add_decoding_arguments
from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.schema import POSE_CHANNELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders of images (sorted by name), or one video")
    parser.add_argument("--model", required=True, help="Hub repo id or local directory (LoRA adapter or full model)")
    parser.add_argument("--out", required=True, help="output file: .csv (Live Link Face) or .jsonl")
    parser.add_argument("--batch-size", type=int, default=8)
    add_decoding_arguments(parser)
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 or auto (default: cuda when available, else cpu)"
    )
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of an image sequence (CSV timecodes)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th video frame")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a Hub model")


@dataclass
class Frame:
    """One input to predict: where it came from and its time in seconds (for CSV timecodes)."""

    source: str
    seconds: float
    image: Any  # PIL image or path


def _image_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DatasetError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{path}: no such file or folder")
    return files


def _video_frames(path: Path, every: int) -> tuple[Iterator[Frame], int, float]:
    """Frames of a video via OpenCV (installed with the ``mediapipe`` extra, or ``pip install opencv-python``)."""
    try:
        import cv2
    except ImportError:
        raise ConfigError(
            "reading videos needs OpenCV: pip install 'semanticface[mediapipe]' (or opencv-python), "
            "or extract the frames to a folder and pass the folder"
        ) from None
    from PIL import Image

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: cannot open the video")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames() -> Iterator[Frame]:
        index = 0
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                if index % every == 0:
                    image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    yield Frame(f"{path}#{index}", index / fps, image)
                index += 1
        finally:
            capture.release()

    return frames(), (total + every - 1) // every if total > 0 else 0, fps / every


def collect_frames(inputs: list[str], *, fps: float, every: int) -> tuple[Iterator[Frame], int, float]:
    """``(frames, count, frame rate)`` for a single video or any mix of image files and folders."""
    if every < 1:
        raise ConfigError(f"--every must be >= 1, got {every}")
    videos = [Path(p) for p in inputs if Path(p).suffix.lower() in VIDEO_SUFFIXES]
    if videos:
        if len(inputs) != 1:
            raise ConfigError("give one video, or images and folders (not a video mixed with other inputs)")
        if not videos[0].is_file():
            raise DatasetError(f"{videos[0]}: no such file")
        return _video_frames(videos[0], every)
    if fps <= 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    files = _image_files(inputs)
    return (Frame(str(f), i / fps, f) for i, f in enumerate(files)), len(files), fps


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def csv_frame(coefficients: FaceCoefficients) -> FaceCoefficients | None:
    """The frame as a Live Link Face row, or None when blendshapes are missing (a partly parsed output).

    A model trained without the pose channels does not predict them; Live Link Face needs a value in every
    column, and 0 is its own "not tracked" value (its head rotation columns are 0 when rotation is not recorded).
    """
    missing = coefficients.missing
    if not missing:
        return coefficients
    if missing <= set(POSE_CHANNELS):
        return coefficients.replace(**{name: 0.0 for name in missing})
    return None


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from semanticface.inference import GenerationOptions, SemanticFacePredictor
    from semanticface.llf import format_timecode, write_llf

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".jsonl"):
        raise ConfigError(f"--out must end in .csv (Live Link Face) or .jsonl, got {out.name!r}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    frames, total, _ = collect_frames(args.inputs, fps=args.fps, every=args.every)
    predictor = SemanticFacePredictor.from_pretrained(
        args.model,
        dtype=args.dtype,
        device=args.device,
        decoding=args.decoding,
        trust_remote_code=args.trust_remote_code,
    )
    options = GenerationOptions(max_new_tokens=args.max_new_tokens, number_estimate=args.numbers)
    out.parent.mkdir(parents=True, exist_ok=True)
    records: list[tuple[Frame, Any]] = []
    with tqdm(total=total or None, unit="img", desc="predict", file=sys.stderr) as bar:
        for batch in _batches(frames, args.batch_size):
            predictions = predictor.predict([f.image for f in batch], batch_size=args.batch_size, options=options)
            records += [(frame, prediction) for frame, prediction in zip(batch, predictions)]
            bar.update(len(batch))
    failed = [frame.source for frame, prediction in records if not prediction.parse_ok]
    if out.suffix.lower() == ".jsonl":
        with open(out, "w", encoding="utf-8") as handle:
            for index, (frame, prediction) in enumerate(records):
                line = {"index": index, "source": frame.source, "seconds_in": frame.seconds, **prediction.to_dict()}
                handle.write(json.dumps(line) + "\n")
        written = len(records)
    else:
        kept = [(frame, csv_frame(p.coefficients)) for frame, p in records if p.parse_ok]
        incomplete = [frame.source for frame, coefficients in kept if coefficients is None]
        kept = [(frame, coefficients) for frame, coefficients in kept if coefficients is not None]
        if incomplete:
            print(
                f"warning: {len(incomplete)} frame(s) lack blendshape values, left out: {_few(incomplete)}",
                file=sys.stderr,
            )
        # Live Link Face has no "unreadable frame": failed frames are left out; timecodes keep the gap visible.
        write_llf(
            out,
            [coefficients for _, coefficients in kept],
            timecodes=[format_timecode(0, start_seconds=frame.seconds) for frame, _ in kept],
        )
        written = len(kept)
    print(f"wrote {written} frame(s) to {out}", file=sys.stderr)
    if failed:
        print(f"warning: {len(failed)} output(s) could not be parsed: {_few(failed)}", file=sys.stderr)
    return 0
