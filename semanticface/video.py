"""Decode video frames with PyAV (FFmpeg's libraries; ``pip install 'semanticface[video]'``).

Each frame comes with its index and its time in seconds from the stream's own timestamps (``pts × time_base``,
relative to the first frame), so a 23.976 fps phone clip (24000/1001) gets 0.0417 s steps, not 1/30 or 1/24.
Frames without a timestamp fall back to ``index / frame rate``. The rotation a phone stores in the stream's
display matrix is applied, so portrait videos come out upright.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

from PIL import Image

from semanticface.errors import ConfigError, DatasetError
from semanticface.extras import require

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says: frame rate (exact, e.g. 24000/1001), frame count (0 if unknown), size."""

    path: str
    fps: Fraction
    frame_count: int
    width: int
    height: int


@dataclass(frozen=True)
class VideoFrame:
    index: int
    seconds: float
    image: Image.Image


def _import_av() -> ModuleType:
    return require("av", "reading videos (or extract the frames to a folder and pass the folder)")


def _open(path: Path) -> tuple[Any, Any]:
    av = _import_av()
    if not path.is_file():
        raise DatasetError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise DatasetError(f"{path}: cannot open the video ({error})") from None
    if not container.streams.video:
        container.close()
        raise DatasetError(f"{path}: the file has no video stream")
    return container, container.streams.video[0]


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size from the container (nothing is decoded)."""
    path = Path(path)
    container, stream = _open(path)
    try:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise DatasetError(f"{path}: the video does not state a frame rate")
        return VideoInfo(str(path), Fraction(rate), int(stream.frames or 0), stream.width, stream.height)
    finally:
        container.close()


def iter_frames(path: str | Path, *, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[VideoFrame]:
    """Frames ``start, start + step, ...`` before ``stop`` (frame indices), as upright RGB images."""
    if start < 0 or step < 1 or (stop is not None and stop < start):
        raise ConfigError(f"bad frame range: start {start}, stop {stop}, step {step}")
    path = Path(path)
    av = _import_av()
    info = video_info(path)
    container, stream = _open(path)
    stream.thread_type = "AUTO"
    origin: int | None = None
    try:
        for index, frame in enumerate(container.decode(stream)):
            if stop is not None and index >= stop:
                break
            if frame.pts is not None and origin is None:
                origin = frame.pts
            if index < start or (index - start) % step:
                continue
            if frame.pts is not None and frame.time_base is not None:
                seconds = float((frame.pts - (origin or 0)) * frame.time_base)
            else:
                seconds = float(index / info.fps)
            image = frame.to_image()
            rotation = getattr(frame, "rotation", 0) or 0
            if rotation % 360:
                image = image.rotate(rotation, expand=True)  # display matrix: counter-clockwise degrees
            yield VideoFrame(index, seconds, image)
    except av.FFmpegError as error:
        raise DatasetError(f"{path}: video decoding failed ({error})") from None
    finally:
        container.close()
