"""`semanticface predict`: coefficients for images, image folders or a video, as a Live Link Face CSV or JSONL.

The pipeline per frame: read the image (upright, 8-bit RGB, pixel-capped: :mod:`semanticface.images`) or decode
the video frame (:mod:`semanticface.video`) → find the face and crop it (:mod:`semanticface.facecrop`; tracked and
smoothed in video) → predict → smooth over time (One-Euro, video only by default: :mod:`semanticface.smoothing`)
→ neutral calibration if asked (:mod:`semanticface.calibration`) → written at once (:mod:`semanticface.streaming`,
flushed per batch). Nothing is lost on the way: a frame without a face or whose output does not parse is written
as tracking-lost, an unreadable file is reported by name (stderr and ``<out>.skipped.tsv``) and the rest go on.
Exit status: 0 when at least one frame was predicted, 1 when none was, or with ``--strict`` when anything was
skipped, lost or unparsed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.calibration import DEFAULT_PERCENTILE, NEUTRAL_MODES, NeutralCalibration
from semanticface.cli.options import add_decoding_arguments
from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError, ImageReadError
from semanticface.facecrop import DEFAULT_MARGIN, BoxTracker, CropBox
from semanticface.smoothing import (
    DEFAULT_BETA,
    DEFAULT_D_CUTOFF,
    DEFAULT_MIN_CUTOFF,
    SMOOTHING_METHODS,
    OneEuroFilter,
)
from semanticface.streaming import ResultWriter
from semanticface.video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


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
    parser.add_argument("--every", type=int, default=1, help="use every N-th frame (video or image sequence)")
    parser.add_argument("--start-frame", type=int, default=0, help="first frame to read (0-based)")
    parser.add_argument("--end-frame", type=int, default=None, help="stop before this frame (default: the end)")
    parser.add_argument("--trust-remote-code", action="store_true", help="run code shipped with a Hub model")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any input was skipped, lost or unparsed")
    crop = parser.add_argument_group("face crop (MediaPipe Face Landmarker)")
    crop.add_argument("--face-model", default=None, help="face_landmarker.task (or $SEMANTICFACE_FACE_MODEL)")
    crop.add_argument("--no-crop", action="store_true", help="inputs are already face crops (rendered datasets)")
    crop.add_argument("--face-index", type=int, default=0, help="which face when several: 0 = largest, 1 = next")
    crop.add_argument("--crop-margin", type=float, default=DEFAULT_MARGIN, help="margin around the face, per side")
    crop.add_argument("--crops-dir", default=None, help="also save every crop here (PNG, named by frame)")
    smooth = parser.add_argument_group("temporal smoothing (One-Euro filter)")
    smooth.add_argument(
        "--smooth", choices=("auto", *SMOOTHING_METHODS), default="auto", help="auto: one-euro for video, else none"
    )
    smooth.add_argument("--smooth-min-cutoff", type=float, default=DEFAULT_MIN_CUTOFF, help="Hz at rest")
    smooth.add_argument("--smooth-beta", type=float, default=DEFAULT_BETA, help="cutoff increase per unit/s of speed")
    smooth.add_argument("--smooth-d-cutoff", type=float, default=DEFAULT_D_CUTOFF, help="Hz for the speed estimate")
    neutral = parser.add_argument_group("neutral calibration")
    neutral.add_argument("--neutral", choices=NEUTRAL_MODES, default="none", help="auto: low percentile per channel")
    neutral.add_argument("--neutral-percentile", type=float, default=DEFAULT_PERCENTILE)
    neutral.add_argument("--neutral-frame", type=int, default=None, help="frame index of a neutral face")
    neutral.add_argument("--neutral-image", default=None, help="an image of the same person at rest")


@dataclass
class Item:
    """One input frame: where it came from, its time, and how to get its image (may raise ImageReadError)."""

    source: str
    seconds: float
    index: int
    image: Any = None  # a PIL image (video) or a path (read lazily)


@dataclass
class Source:
    items: Iterator[Item]
    total: int
    is_video: bool
    fps: float


@dataclass
class Report:
    """What happened to the inputs, for the summary, the sidecar and the exit status."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    several_faces: list[tuple[str, int]] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    predicted: int = 0
    outputs: int = 0


def _image_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise DatasetError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        else:
            files.append(path)  # a missing or unreadable file is reported and skipped, not fatal
    return files


def collect_inputs(inputs: list[str], *, fps: float, every: int, start: int = 0, end: int | None = None) -> Source:
    """One video, or any mix of image files and folders, with the frame range and stride applied."""
    if every < 1:
        raise ConfigError(f"--every must be >= 1, got {every}")
    if start < 0 or (end is not None and end <= start):
        raise ConfigError(f"bad frame range: --start-frame {start}, --end-frame {end}")
    videos = [Path(p) for p in inputs if Path(p).suffix.lower() in VIDEO_SUFFIXES]
    if videos:
        from semanticface.video import iter_frames, video_info

        if len(inputs) != 1:
            raise ConfigError("give one video, or images and folders (not a video mixed with other inputs)")
        info = video_info(videos[0])
        stop = end if end is not None else (info.frame_count or None)
        total = len(range(start, stop, every)) if stop else 0
        frames = iter_frames(videos[0], start=start, stop=end, step=every)
        items = (Item(f"{videos[0]}#{f.index}", f.seconds, f.index, f.image) for f in frames)
        return Source(items, total, True, float(info.fps))
    if fps <= 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    files = _image_files(inputs)
    chosen = list(enumerate(files))[start:end:every]
    return Source((Item(str(f), i / fps, i, f) for i, f in chosen), len(chosen), False, fps)


def _batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


class FramePreparer:
    """Reads an item's image and crops its face (tracked in video); records skips and faceless frames."""

    def __init__(self, args: argparse.Namespace, is_video: bool, report: Report) -> None:
        self.report = report
        self.face_index = args.face_index
        if self.face_index < 0:
            raise ConfigError(f"--face-index must be >= 0, got {self.face_index}")
        self.cropper = None
        self.tracker = BoxTracker() if is_video else None
        self.crops_dir = Path(args.crops_dir) if args.crops_dir else None
        if not args.no_crop:
            from semanticface.facecrop import FaceCropper

            self.cropper = FaceCropper(
                args.face_model, max_faces=max(4, self.face_index + 1), video=is_video, margin=args.crop_margin
            )
        if self.crops_dir:
            self.crops_dir.mkdir(parents=True, exist_ok=True)
        self._last: CropBox | None = None

    def image(self, item: Item) -> Any:
        """The item's RGB image, or None when it cannot be read (reported)."""
        from semanticface.inference import load_image

        try:
            return load_image(item.image)
        except ImageReadError as error:
            self.report.skipped.append((item.source, str(error)))
            print(f"skipped: {error}", file=sys.stderr)
            return None

    def crop(self, item: Item, image: Any) -> tuple[Any, CropBox | None, int]:
        """``(crop or None when no face, box, number of faces)``; without a cropper the image as it is."""
        if self.cropper is None:
            return image, None, 1
        from semanticface.facecrop import pick_face

        faces = self.cropper.faces(image, item.seconds)
        if len(faces) > 1:
            self.report.several_faces.append((item.source, len(faces)))
        face = pick_face(faces, self.face_index)
        if face is None:
            self.report.no_face.append(item.source)
            if self.tracker is not None:
                self.tracker.lost()
            self._last = None
            return None, None, len(faces)
        box = self.cropper.box(face)
        if self.tracker is not None:
            if self._last is not None and _jumped(self._last, box):
                self.tracker.lost()  # another face or a cut: do not glide the crop across the frame
            box = self.tracker.update(box, item.seconds)
            self._last = box
        crop = box.crop(image)
        if self.crops_dir is not None:
            crop.save(self.crops_dir / f"{item.index:06d}.png")
        return crop, box, len(faces)

    def close(self) -> None:
        if self.cropper is not None:
            self.cropper.close()


def _jumped(previous: CropBox, box: CropBox) -> bool:
    (px, py), (cx, cy) = previous.centre, box.centre
    return bool(np.hypot(cx - px, cy - py) > 0.5 * previous.size or not 0.5 < box.size / previous.size < 2)


def _calibration_from_image(args, predictor, options, preparer: FramePreparer, source: Source) -> Any:
    """The calibration from --neutral-frame or --neutral-image (predicted once, before the run)."""
    if args.neutral_image is None and args.neutral_frame is None:
        return None
    if args.neutral_image is not None and args.neutral_frame is not None:
        raise ConfigError("give --neutral-frame or --neutral-image, not both")
    if args.neutral_image is not None:
        item = Item(str(args.neutral_image), 0.0, -1, args.neutral_image)
    elif source.is_video:
        from semanticface.video import iter_frames

        found = list(iter_frames(args.inputs[0], start=args.neutral_frame, stop=args.neutral_frame + 1))
        if not found:
            raise ConfigError(f"--neutral-frame {args.neutral_frame} is past the end of the video")
        item = Item(f"{args.inputs[0]}#{found[0].index}", found[0].seconds, found[0].index, found[0].image)
    else:
        files = _image_files(args.inputs)
        if not 0 <= args.neutral_frame < len(files):
            raise ConfigError(f"--neutral-frame {args.neutral_frame} is out of range ({len(files)} images)")
        item = Item(str(files[args.neutral_frame]), 0.0, args.neutral_frame, files[args.neutral_frame])
    from semanticface.facecrop import FaceCropper

    image = preparer.image(item)
    if image is None:
        raise ConfigError(f"the neutral image {item.source} cannot be read")
    crop = image
    if preparer.cropper is not None:  # a separate still-image detector: the video one must see frames in order
        with FaceCropper(preparer.cropper.model_path, margin=preparer.cropper.margin) as still:
            faces = still.faces(image)
            if not faces:
                raise ConfigError(f"no face in the neutral image {item.source}")
            crop = still.box(faces[min(args.face_index, len(faces) - 1)]).crop(image)
    (prediction,) = predictor.predict([crop], batch_size=1, options=options)
    if not prediction.parse_ok:
        raise ConfigError(f"the model's output for the neutral image {item.source} does not parse")
    calibration = NeutralCalibration.from_frame(prediction.coefficients, source=f"neutral image {item.source}")
    return calibration


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from semanticface.inference import GenerationOptions, SemanticFacePredictor

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".jsonl"):
        raise ConfigError(f"--out must end in .csv (Live Link Face) or .jsonl, got {out.name!r}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    source = collect_inputs(args.inputs, fps=args.fps, every=args.every, start=args.start_frame, end=args.end_frame)
    method = args.smooth if args.smooth != "auto" else ("one-euro" if source.is_video else "none")
    smoother = None
    if method == "one-euro":
        smoother = OneEuroFilter(args.smooth_min_cutoff, args.smooth_beta, args.smooth_d_cutoff)
    if args.neutral == "auto" and (args.neutral_frame is not None or args.neutral_image is not None):
        raise ConfigError("--neutral auto computes its own rest values: drop --neutral-frame/--neutral-image")
    report = Report()
    preparer = FramePreparer(args, source.is_video, report)
    calibration = None
    kept: list[tuple[float, FaceCoefficients | None, dict[str, Any]]] = []  # for --neutral auto's rewrite
    try:
        predictor = SemanticFacePredictor.from_pretrained(
            args.model,
            dtype=args.dtype,
            device=args.device,
            decoding=args.decoding,
            trust_remote_code=args.trust_remote_code,
        )
        options = GenerationOptions(max_new_tokens=args.max_new_tokens, number_estimate=args.numbers)
        calibration = _calibration_from_image(args, predictor, options, preparer, source)
        with (
            ResultWriter(out) as writer,
            tqdm(total=source.total or None, unit="frame", desc="predict", file=sys.stderr) as bar,
        ):
            for batch in _batches(source.items, args.batch_size):
                _predict_batch(batch, preparer, predictor, options, smoother, calibration, writer, report, kept, args)
                writer.flush()
                bar.update(len(batch))
        if args.neutral == "auto":
            calibration = _rewrite_calibrated(out, kept, args.neutral_percentile)
    finally:
        preparer.close()
    _summarise(out, report, calibration, method, source, args)
    if report.predicted == 0:
        return 1
    troubles = report.skipped or report.no_face or report.unparsed or report.incomplete
    return 1 if args.strict and troubles else 0


def _predict_batch(batch, preparer, predictor, options, smoother, calibration, writer, report, kept, args) -> None:
    prepared = []
    for item in batch:
        image = preparer.image(item)
        if image is None:
            continue  # skipped files get no row: they are not frames of the take
        crop, box, faces = preparer.crop(item, image)
        prepared.append((item, crop, box, faces))
    to_predict = [crop for _, crop, _, _ in prepared if crop is not None]
    predictions = iter(
        predictor.predict(to_predict, batch_size=args.batch_size, options=options) if to_predict else []
    )
    for item, crop, box, faces in prepared:
        prediction = next(predictions) if crop is not None else None
        raw = prediction.coefficients if prediction is not None else None
        if prediction is not None:
            report.outputs += 1
            if not prediction.parse_ok:
                report.unparsed.append(item.source)
            elif raw is not None and np.isnan(raw.blendshapes).any():
                report.incomplete.append(item.source)
                raw = None
        final = raw
        if smoother is not None:
            if raw is None:
                smoother.reset()
            else:
                smoothed = smoother(raw.values, item.seconds)
                final = FaceCoefficients(np.nan_to_num(np.clip(smoothed, *_ranges())), raw.missing)
        if final is not None and calibration is not None:
            final = calibration.apply(final)
        report.predicted += int(final is not None)
        record: dict[str, Any] = {
            "index": item.index,
            "source": item.source,
            "seconds_in": item.seconds,
            "faces": faces,
            "crop_box": box.as_list() if box is not None else None,
            "tracking_lost": final is None,
        }
        if prediction is not None:
            record.update(prediction.to_dict())
            if final is not raw and raw is not None:
                record["raw_coefficients"] = raw.to_dict()
        else:
            record.update(
                {
                    "coefficients": None,
                    "description": "",
                    "raw_text": "",
                    "parse_ok": False,
                    "issues": ["no face found"],
                }
            )
        record["coefficients"] = final.to_dict() if final is not None else None
        writer.write(item.seconds, final, record)
        if args.neutral == "auto":
            kept.append((item.seconds, final, record))


def _ranges() -> tuple[np.ndarray, np.ndarray]:
    from semanticface.coefficients import channel_range
    from semanticface.schema import CHANNELS

    return np.array([channel_range(n)[0] for n in CHANNELS]), np.array([channel_range(n)[1] for n in CHANNELS])


def _rewrite_calibrated(out: Path, kept: list, percentile: float) -> NeutralCalibration | None:
    """``--neutral auto``: the rest values are known only at the end; rewrite the output calibrated."""
    observed = [c.values for _, c, _ in kept if c is not None]
    if not observed:
        return None
    calibration = NeutralCalibration.from_recording(np.stack(observed), percentile=percentile)
    partial = out.with_name(f"{out.stem}.partial{out.suffix}")
    with ResultWriter(partial) as writer:
        for seconds, coefficients, record in kept:
            calibrated = calibration.apply(coefficients) if coefficients is not None else None
            if calibrated is not None:
                record = {**record, "coefficients": calibrated.to_dict()}
                record.setdefault("raw_coefficients", coefficients.to_dict())
            writer.write(seconds, calibrated, record)
    partial.replace(out)
    return calibration


def _summarise(out: Path, report: Report, calibration, method: str, source: Source, args) -> None:
    lost = len(report.no_face) + len(report.unparsed) + len(report.incomplete)
    print(f"wrote {report.predicted + lost} frame(s) to {out} ({lost} tracking-lost)", file=sys.stderr)
    if report.no_face:
        print(f"no face found in {len(report.no_face)} frame(s): {_few(report.no_face)}", file=sys.stderr)
    if report.several_faces:
        counts = sorted({n for _, n in report.several_faces})
        print(
            f"{len(report.several_faces)} frame(s) had several faces ({', '.join(map(str, counts))}); used face "
            f"index {args.face_index} by size (0 = largest; --face-index picks another): "
            f"{_few([s for s, _ in report.several_faces])}",
            file=sys.stderr,
        )
    if report.incomplete:
        print(f"{len(report.incomplete)} output(s) lack blendshape values: {_few(report.incomplete)}", file=sys.stderr)
    if report.unparsed:
        print(f"{len(report.unparsed)} output(s) could not be parsed: {_few(report.unparsed)}", file=sys.stderr)
        if report.outputs and len(report.unparsed) == report.outputs and args.decoding == "generate":
            print(
                f"none of the {report.outputs} output(s) parsed with plain decoding: try --decoding forced "
                "(the fixed parts of the answer are then written for the model, so every output parses)",
                file=sys.stderr,
            )
    sidecar = out.with_name(out.name + ".skipped.tsv")
    if report.skipped:
        sidecar.write_text(
            "".join(f"{path}\t{reason.replace(chr(9), ' ')}\n" for path, reason in report.skipped), encoding="utf-8"
        )
        print(f"skipped {len(report.skipped)} unreadable file(s), listed in {sidecar}", file=sys.stderr)
    elif sidecar.is_file():
        sidecar.unlink()  # a previous run's list would describe files this run read
    if method != "none":
        print(
            f"smoothing: {method} (min_cutoff {args.smooth_min_cutoff} Hz, beta {args.smooth_beta})", file=sys.stderr
        )
    if calibration is not None:
        offsets = sorted(calibration.offsets().items(), key=lambda kv: -kv[1])[:5]
        shown = ", ".join(f"{k} {v:.2f}" for k, v in offsets) or "none"
        print(f"neutral calibration from {calibration.source}; largest rest offsets: {shown}", file=sys.stderr)
