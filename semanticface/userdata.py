"""Users' own data in the toolkit's dataset layout (the same columns as :mod:`semanticface.synth` produces).

* :func:`load_image_folder`: a folder of images plus a CSV or JSONL table of coefficients (channel names in any
  dialect: ARKit, Live Link Face, MediaPipe, ``_L``/``_R``).
* :func:`load_llf_video`: a Live Link Face CSV paired with the frames of its video by timecode. Frames come from
  a folder of images named by frame number (``ffmpeg -i take.mov frames/%06d.png``) or by timecode
  (``01_02_03_04.png``, Live Link Face's ``HH:MM:SS:FF`` with ``_`` or ``-`` separators), or straight from a
  video file when OpenCV (``cv2``, installed with the ``mediapipe`` extra) is available.

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

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError, SemanticFaceError
from semanticface.rows import coefficients_to_row
from semanticface.schema import is_known_name, is_mediapipe_neutral

FILE_COLUMNS = ("file", "file_name", "filename", "image", "path", "frame")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_TIMECODE_NAME = re.compile(r"(\d{1,2})[_:\-](\d{2})[_:\-](\d{2})[_:\-](\d{2})(?:[._](\d+))?$")


def _split_half(name: str) -> bool:
    # ICT-style halves of midline channels (browInnerUp_L) are accepted and averaged by FaceCoefficients.
    return any(name.endswith(suffix) and is_known_name(name[: -len(suffix)]) for suffix in ("_L", "_R"))


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
):
    """A ``datasets.Dataset`` from a folder of images and a CSV/JSONL table naming each image and its coefficients.

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
    return _from_generator(Dataset, _image_rows, features=features(), gen_kwargs={"items": prepared})


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
        row: dict[str, Any] = {"images": [{"bytes": _read_image_bytes(item["path"], item["where"]), "path": None}]}
        row.update(coefficients_to_row(coefficients))
        row.update(identity=item["identity"], style=item["style"], source=item["source"], renderer=None)
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
):
    """Pair a Live Link Face CSV with its video's frames by time; returns ``(dataset, unmatched)``.

    ``frames`` is a folder of images or a video file (needs OpenCV). Frames named by number count from the
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
            matched.append({"label": label, "loader": loader, "row": row, "timecode": take.timecodes[row]})
        else:
            unmatched.append(label)
        if max_frames and len(matched) >= max_frames:
            break
    if not matched:
        raise DatasetError(f"no frame of {frames} falls within {tol:.3f} s of a tracked row of {recording}")
    source = f"llf-video:{Path(recording).name}"
    dataset = _from_generator(
        Dataset,
        _video_rows,
        features=features(),
        gen_kwargs={"matched": matched, "values": take.values, "source": source},
        fingerprint=_fingerprint(recording, frames, matched, fps, tol),
    )
    return dataset, unmatched


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
        kind = frame_time(path.name, timecode_rate=timecode_rate)
        if kind is None:
            raise DatasetError(f"{path}: frame name has no frame number or timecode")
        parsed.append((path, kind))
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
    try:
        import cv2
    except ImportError:
        raise DatasetError(
            f"{path}: reading video files needs OpenCV (pip install 'semanticface[mediapipe]' or opencv-python); "
            "or extract frames first: ffmpeg -i take.mov frames/%06d.png"
        ) from None
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DatasetError(f"{path}: OpenCV cannot open this video")
    fps = float(video_fps or capture.get(cv2.CAP_PROP_FPS) or 0)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    capture.release()
    if fps <= 0 or count <= 0:
        raise DatasetError(f"{path}: cannot tell the video's frame rate or length (pass video_fps)")
    return [(f"{path.name}#{k}", start + k / fps, ("video", str(path), k)) for k in range(count)]


class _FrameReader:
    """Reads frames from image files, or forward through a video (matched frames come in ascending order)."""

    def __init__(self) -> None:
        self.capture = None
        self.path: str | None = None
        self.position = 0

    def read(self, loader: tuple) -> bytes:
        if loader[0] == "file":
            return _read_image_bytes(loader[1], loader[1])
        import cv2

        path, index = loader[1], loader[2]
        if self.capture is None or self.path != path or index < self.position:
            self.close()
            self.capture, self.path, self.position = cv2.VideoCapture(path), path, 0
        frame = None
        while self.position <= index:
            ok, frame = self.capture.read()
            self.position += 1
            if not ok:
                raise DatasetError(f"{path}: cannot decode frame {self.position - 1}")
        buffer = io.BytesIO()
        Image.fromarray(frame[:, :, ::-1]).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def _video_rows(matched: list[dict[str, Any]], values: np.ndarray, source: str):
    reader = _FrameReader()
    try:
        for item in matched:
            coefficients = FaceCoefficients(values[item["row"]])
            row: dict[str, Any] = {"images": [{"bytes": reader.read(item["loader"]), "path": None}]}
            row.update(coefficients_to_row(coefficients))
            row.update(identity=-1, style="video", source=f"{source}@{item['timecode']}", renderer=None)
            yield row
    finally:
        reader.close()


__all__ = ["FILE_COLUMNS", "frame_time", "load_image_folder", "load_llf_video"]
