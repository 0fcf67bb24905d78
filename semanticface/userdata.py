"""Users' own data in the toolkit's dataset layout (the same columns as :mod:`semanticface.synth` produces).

* :func:`load_image_folder`: a folder of images plus a CSV or JSONL table of coefficients (channel names in any
  dialect: ARKit, Live Link Face, MediaPipe, ``_L``/``_R``).
* :func:`load_llf_video`: a Live Link Face CSV paired with the frames of its video by timecode. Frames come from
  a folder of images named by frame number (``ffmpeg -i take.mov frames/%06d.png``) or by timecode
  (``01_02_03_04.png``, Live Link Face's ``HH:MM:SS:FF`` with ``_`` or ``-`` separators), or straight from a
  video file (PyAV, the ``video`` extra). Optionally the capture is neutral-calibrated (``calibrate``) and each
  frame cut to the face crop ``semanticface predict`` makes (``face_model``), its box stored in ``crop_box``.

Bad input raises :class:`~semanticface.errors.DatasetError` naming the file, row and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from semanticface.coefficients import FaceCoefficients, split_channel_name
from semanticface.errors import DatasetError, SemanticFaceError
from semanticface.rows import coefficients_to_row
from semanticface.schema import is_known_name, is_mediapipe_neutral

FILE_COLUMNS = ("file", "file_name", "filename", "image", "path", "frame")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_TIMECODE_NAME = re.compile(r"(\d{1,2})[_:\-](\d{2})[_:\-](\d{2})[_:\-](\d{2})(?:[._](\d+))?$")


def _split_half(name: str) -> bool:
    # ICT-style halves of midline channels (browInnerUp_L) are accepted and averaged by FaceCoefficients.
    return split_channel_name(name) is not None


def _is_channel(name: str) -> bool:
    return is_known_name(name) or is_mediapipe_neutral(name) or _split_half(name)


def _parse_value(raw: Any, where: str, column: str) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if isinstance(raw, bool):
        raise DatasetError(f"{where}, column {column!r}: expected a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}, column {column!r}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise DatasetError(f"{where}, column {column!r}: value {raw!r} is not finite")
    return value


def _coefficients(values: Mapping[str, float | None], where: str, missing_ok: bool) -> FaceCoefficients:
    present = {k: v for k, v in values.items() if v is not None}
    try:
        coefficients = FaceCoefficients.from_dict(present, missing_ok=missing_ok)
    except SemanticFaceError as error:
        raise DatasetError(f"{where}: {error}") from error
    return coefficients


def _read_table(path: Path, ignore_unknown: bool) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Rows of a CSV or JSONL table as ``(where, file, channel values, metadata)``."""
    rows: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    if not path.is_file():
        raise DatasetError(f"{path}: coefficient table not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}, line {line_no}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(f"{where}: invalid JSON ({error.msg})") from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{where}: expected a JSON object")
                nested = record.pop("coefficients", None) or record.pop("blendshapes", None)
                if nested is not None and not isinstance(nested, dict):
                    raise DatasetError(f"{where}, column 'coefficients': expected an object of channel values")
                rows.append(_split_record(record, nested, where, ignore_unknown))
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            if not reader.fieldnames:
                raise DatasetError(f"{path}: empty CSV (no header)")
            for index, record in enumerate(reader, start=2):
                where = f"{path}, row {index}"
                if None in record:
                    raise DatasetError(f"{where}: more cells than header columns")
                rows.append(_split_record(dict(record), None, where, ignore_unknown))
    else:
        raise DatasetError(f"{path}: expected a .csv, .tsv or .jsonl coefficient table")
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def _split_record(record: dict[str, Any], nested: dict | None, where: str, ignore_unknown: bool):
    file_key = next((k for k in record if k.strip().lower() in FILE_COLUMNS), None)
    if file_key is None:
        raise DatasetError(f"{where}: no image file column (one of {', '.join(FILE_COLUMNS)})")
    file = str(record.pop(file_key) or "").strip()
    if not file:
        raise DatasetError(f"{where}, column {file_key!r}: empty image file name")
    channels: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in list(record.items()) + list((nested or {}).items()):
        if _is_channel(key):
            if not is_mediapipe_neutral(key):
                channels[key] = _parse_value(value, where, key)
        elif key.strip().lower() in ("identity", "subject", "style", "source"):
            metadata[key.strip().lower()] = value
        elif not ignore_unknown:
            raise DatasetError(
                f"{where}, column {key!r}: not a channel name in any dialect (pass ignore_unknown to skip it)"
            )
    return where, file, channels, metadata


def _inside(root: Path, name: str, where: str) -> Path:
    path = (root / name).resolve()
    if root.resolve() != path and root.resolve() not in path.parents:
        raise DatasetError(f"{where}: image path {name!r} escapes the image folder {root}")
    return path


def _identity(metadata: Mapping[str, Any], where: str) -> int:
    raw = metadata.get("identity", metadata.get("subject"))
    if raw is None or raw == "":
        return -1
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}, column 'identity': expected an integer id, got {raw!r}") from None


def load_image_folder(
    images_dir: str | Path,
    table: str | Path,
    *,
    missing_ok: bool = False,
    ignore_unknown: bool = False,
    face_model: str | Path | None = None,
    crop_margin: float | None = None,
):
    """A ``datasets.Dataset`` from a folder of images and a CSV/JSONL table naming each image and its coefficients.

    With ``face_model`` (MediaPipe's ``face_landmarker.task``) each image is stored as the face crop
    ``semanticface predict`` makes (largest face, upright) with its ``crop_box``; an image without a face is an error
    naming it.

    Columns: an image file column (``file``, ``file_name``, ``image``, ``path``...), channel columns in any
    dialect, optional ``identity``/``style``/``source``. Empty cells and absent channels are errors unless
    ``missing_ok`` (then they are stored as missing, None). Images missing from the folder are listed in the error.
    """
    from datasets import Dataset

    from semanticface.synth import features

    root, table = Path(images_dir), Path(table)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    rows = _read_table(table, ignore_unknown)
    prepared = []
    missing: list[str] = []
    for where, file, channels, metadata in rows:
        path = _inside(root, file, where)
        coefficients = _coefficients(channels, where, missing_ok)
        if not path.is_file():
            missing.append(f"{file} ({where})")
            continue
        stat = path.stat()
        prepared.append(
            {
                "path": str(path),
                # size and mtime make datasets' cache fingerprint change when an image file is replaced
                "stamp": [stat.st_size, stat.st_mtime_ns],
                "where": where,
                "values": coefficients.values.tolist(),
                "missing": sorted(coefficients.missing),
                "identity": _identity(metadata, where),
                "style": str(metadata.get("style") or "photo"),
                "source": str(metadata.get("source") or f"user:{table.name}"),
            }
        )
    if missing:
        shown = "; ".join(missing[:10]) + (f"; ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise DatasetError(f"{len(missing)} image(s) named in {table} are missing from {root}: {shown}")
    schema = features()
    if face_model is not None:
        from semanticface.facecrop import crop_features

        _find_faces(prepared, face_model, crop_margin)
        schema = crop_features()
    return _from_generator(Dataset, _image_rows, features=schema, gen_kwargs={"items": prepared})


def _find_faces(items: list[dict[str, Any]], face_model, margin) -> None:
    from semanticface.facecrop import DEFAULT_MARGIN, FaceCropper
    from semanticface.images import read_image

    faceless = []
    with FaceCropper(face_model, margin=DEFAULT_MARGIN if margin is None else margin) as cropper:
        for item in items:
            faces = cropper.faces(read_image(item["path"]))
            if faces:
                item["box"] = cropper.box(faces[0]).as_list()
                item["stamp"].append(item["box"])
            else:
                faceless.append(f"{Path(item['path']).name} ({item['where']})")
    if faceless:
        shown = "; ".join(faceless[:10]) + (f"; ... ({len(faceless)} in all)" if len(faceless) > 10 else "")
        raise DatasetError(f"no face found in {len(faceless)} image(s): {shown}")


def _from_generator(dataset_cls, generator, **kwargs):
    # datasets wraps errors raised inside the generator; surface ours (which name the file and row) unchanged.
    from datasets.exceptions import DatasetGenerationError

    try:
        return dataset_cls.from_generator(generator, **kwargs)
    except DatasetGenerationError as error:
        cause = error.__cause__ or error.__context__
        while cause is not None and not isinstance(cause, SemanticFaceError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


def _read_image_bytes(path: str, where: str) -> bytes:
    data = Path(path).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetError(f"{where}: {path} is not a readable image ({error})") from None
    return data


def _image_rows(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        coefficients = FaceCoefficients(np.asarray(item["values"]), frozenset(item["missing"]))
        if "box" in item:
            from semanticface.facecrop import CropBox, png_bytes
            from semanticface.images import read_image

            data = png_bytes(CropBox(*item["box"]).crop(read_image(item["path"])))
        else:
            data = _read_image_bytes(item["path"], item["where"])
        row: dict[str, Any] = {"images": [{"bytes": data, "path": None}]}
        row.update(coefficients_to_row(coefficients))
        row.update(identity=item["identity"], style=item["style"], source=item["source"], renderer=None)
        if "box" in item:
            row["crop_box"] = item["box"]
        yield row


# --- Live Link Face + video ---------------------------------------------------------------------------------


def frame_time(name: str, *, timecode_rate: int = 60) -> tuple[str, float] | None:
    """("timecode", seconds) or ("number", n) from a frame file's stem, or None if it is neither."""
    stem = Path(name).stem
    match = _TIMECODE_NAME.search(stem)
    if match:
        h, m, s, f = (int(match.group(i)) for i in range(1, 5))
        fraction = float("0." + match.group(5)) if match.group(5) else 0.0
        return "timecode", h * 3600 + m * 60 + s + (f + fraction) / timecode_rate
    digits = re.search(r"(\d+)$", stem)
    if digits:
        return "number", float(digits.group(1))
    return None


def load_llf_video(
    recording: str | Path,
    frames: str | Path,
    *,
    video_fps: float | None = None,
    timecode_rate: int = 60,
    tolerance: float | None = None,
    max_frames: int | None = None,
    face_model: str | Path | None = None,
    crop_margin: float | None = None,
    calibrate: str | int | None = None,
):
    """Pair a Live Link Face CSV with its video's frames by time; returns ``(dataset, unmatched)``.

    ``face_model`` (MediaPipe's ``face_landmarker.task``) crops every frame to the tracked face as
    ``semanticface predict`` does and adds the ``crop_box`` column; frames without a face go to ``unmatched``
    (labelled "no face"). ``calibrate`` removes the capture's rest offsets first
    (:mod:`semanticface.calibration`): ``"auto"`` (a low percentile per channel) or the index of a neutral frame.

    ``frames`` is a folder of images or a video file (needs PyAV). Frames named by number count from the
    first CSV timecode at ``video_fps`` (default: the recording's rate); frames named by timecode use it directly.
    Each frame takes the nearest capture row within ``tolerance`` seconds (default half the shorter frame period); frames
    with none (e.g. where tracking was lost) are returned in ``unmatched`` and left out.
    """
    from datasets import Dataset

    from semanticface.llf import read_llf
    from semanticface.synth import features

    try:
        take = read_llf(recording)
    except SemanticFaceError as error:
        raise DatasetError(str(error)) from error
    if len(take) == 0:
        raise DatasetError(f"{recording}: the recording has no tracked frames")
    values = _calibrated(take, calibrate)
    times = take.times
    fps = float(video_fps or take.fps)
    # half the finer of the two frame periods: a frame past the end of the capture finds no row
    tol = tolerance if tolerance is not None else 0.5 / max(fps, float(take.fps))
    frames = Path(frames)
    if frames.is_dir():
        items = _folder_frames(frames, times[0], fps, timecode_rate)
    elif frames.is_file():
        items = _video_frames(frames, times[0], video_fps)
    else:
        raise DatasetError(f"{frames}: no such frame folder or video file")
    if not items:
        raise DatasetError(f"{frames}: no frames found")
    order = np.argsort(times)
    sorted_times = times[order]
    matched, unmatched = [], []
    for label, t, loader in items:
        k = int(np.searchsorted(sorted_times, t))
        best = min((j for j in (k - 1, k) if 0 <= j < len(sorted_times)), key=lambda j: abs(sorted_times[j] - t))
        if abs(sorted_times[best] - t) <= tol + 1e-9:
            row = int(order[best])
            matched.append(
                {"label": label, "loader": loader, "row": row, "timecode": take.timecodes[row], "time": float(t)}
            )
        else:
            unmatched.append(label)
        if max_frames and len(matched) >= max_frames:
            break
    if not matched:
        raise DatasetError(f"no frame of {frames} falls within {tol:.3f} s of a tracked row of {recording}")
    schema = features()
    if face_model is not None:
        from semanticface.facecrop import crop_features

        matched, faceless = _track_faces(matched, face_model, crop_margin)
        unmatched += [f"{label} (no face)" for label in faceless]
        if not matched:
            raise DatasetError(f"no face found in any matched frame of {frames}")
        schema = crop_features()
    source = f"llf-video:{Path(recording).name}"
    dataset = _from_generator(
        Dataset,
        _video_rows,
        features=schema,
        gen_kwargs={"matched": matched, "values": values, "source": source},
        fingerprint=_fingerprint(recording, frames, matched, fps, tol) + f"-{calibrate}-{face_model is not None}",
    )
    return dataset, unmatched


def _calibrated(take, calibrate: str | int | None) -> np.ndarray:
    from semanticface.calibration import NeutralCalibration

    if calibrate is None or calibrate == "none":
        return take.values
    if calibrate == "auto":
        return NeutralCalibration.from_recording(take.values, source=take.path).apply_array(take.values)
    if isinstance(calibrate, int) and not isinstance(calibrate, bool):
        if not 0 <= calibrate < len(take):
            raise DatasetError(f"{take.path}: neutral frame {calibrate} is out of range ({len(take)} frames)")
        return NeutralCalibration.from_frame(take.frame(calibrate)).apply_array(take.values)
    raise DatasetError(f"calibrate must be None, 'auto' or a frame index, got {calibrate!r}")


def _track_faces(matched: list[dict[str, Any]], face_model, margin) -> tuple[list[dict[str, Any]], list[str]]:
    """Find the face in every matched frame, in time order (tracked, box smoothed as in predict)."""
    from semanticface.facecrop import DEFAULT_MARGIN, BoxTracker, FaceCropper

    kept, faceless = [], []
    reader, tracker = _FrameReader(), BoxTracker()
    is_video = any(item["loader"][0] == "video" for item in matched)
    try:
        with FaceCropper(face_model, video=is_video, margin=DEFAULT_MARGIN if margin is None else margin) as cropper:
            for item in matched:
                image = reader.image(item["loader"])
                faces = cropper.faces(image, item["time"])
                if not faces:
                    tracker.lost()
                    faceless.append(item["label"])
                    continue
                box = cropper.box(faces[0])
                if is_video:
                    box = tracker.update(box, item["time"])
                kept.append({**item, "box": box.as_list()})
    finally:
        reader.close()
    return kept, faceless


def _fingerprint(recording, frames, matched, fps, tol) -> str:
    # Content-derived, so datasets' cache is reused only when the inputs are unchanged.
    digest = hashlib.sha256()
    for path in (Path(recording), Path(frames)):
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    for item in matched:
        if item["loader"][0] == "file":
            stat = Path(item["loader"][1]).stat()
            digest.update(f"{item['loader'][1]}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        digest.update(f"{item['label']}>{item['row']}".encode())
    digest.update(f"{fps}|{tol}".encode())
    return "semanticface-llf-video-" + digest.hexdigest()[:24]


def _folder_frames(folder: Path, start: float, fps: float, timecode_rate: int):
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    parsed = []
    for path in files:
        frame = frame_time(path.name, timecode_rate=timecode_rate)
        if frame is None:
            raise DatasetError(f"{path}: frame name has no frame number or timecode")
        parsed.append((path, frame))
    kinds = {k for _, (k, _) in parsed}
    if len(kinds) > 1:
        raise DatasetError(f"{folder}: frames mix numbered and timecode names")
    if not parsed:
        return []
    first = min(v for _, (_, v) in parsed)
    items = []
    for path, (kind, value) in parsed:
        t = value if kind == "timecode" else start + (value - first) / fps  # numbering may start at 0 or 1
        items.append((path.name, t, ("file", str(path))))
    return items


def _video_frames(path: Path, start: float, video_fps: float | None):
    from semanticface.errors import ConfigError
    from semanticface.video import video_info

    try:
        info = video_info(path)
    except ConfigError as error:
        raise DatasetError(f"{path}: {error}; or extract frames first: ffmpeg -i take.mov frames/%06d.png") from None
    fps = float(video_fps or info.fps)
    if info.frame_count <= 0:
        raise DatasetError(f"{path}: cannot tell the video's length")
    return [(f"{path.name}#{k}", start + k / fps, ("video", str(path), k)) for k in range(info.frame_count)]


class _FrameReader:
    """Reads frames from image files, or forward through a video (matched frames come in ascending order)."""

    def __init__(self) -> None:
        self.frames: Iterator[Any] | None = None
        self.path: str | None = None
        self.position = 0

    def image(self, loader: tuple) -> Image.Image:
        """The frame as an upright RGB image."""
        if loader[0] == "file":
            from semanticface.images import read_image

            return read_image(loader[1])
        from semanticface.video import iter_frames

        path, index = loader[1], loader[2]
        if self.frames is None or self.path != path or index < self.position:
            self.close()
            self.frames, self.path, self.position = iter_frames(path, start=index), path, index
        for frame in self.frames:
            self.position = frame.index + 1
            if frame.index == index:
                return frame.image
        raise DatasetError(f"{path}: cannot decode frame {index}")

    def read(self, loader: tuple, box: list[float] | None = None) -> bytes:
        if loader[0] == "file" and box is None:
            return _read_image_bytes(loader[1], loader[1])
        from semanticface.facecrop import CropBox, png_bytes

        image = self.image(loader)
        return png_bytes(CropBox(*box).crop(image) if box is not None else image)

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()  # type: ignore[attr-defined]
            self.frames = None


def _video_rows(matched: list[dict[str, Any]], values: np.ndarray, source: str):
    reader = _FrameReader()
    try:
        for item in matched:
            coefficients = FaceCoefficients(values[item["row"]])
            image = reader.read(item["loader"], item.get("box"))
            row: dict[str, Any] = {"images": [{"bytes": image, "path": None}]}
            row.update(coefficients_to_row(coefficients))
            row.update(identity=-1, style="video", source=f"{source}@{item['timecode']}", renderer=None)
            if "box" in item:
                row["crop_box"] = item["box"]
            yield row
    finally:
        reader.close()


__all__ = ["FILE_COLUMNS", "frame_time", "load_image_folder", "load_llf_video"]
