"""Live Link Face (Epic Games, iPhone ARKit) CSV recordings: read and write.

Format: a header ``Timecode,BlendShapeCount,<52 blendshapes>,<9 pose channels>`` (PascalCase, Live Link Face's
own column order; some exports spell ``BlendshapeCount``), then one row per frame: an SMPTE-style timecode
``HH:MM:SS:FF.mmm`` (FF counts frames at 60 fps, ``.mmm`` is the sub-frame fraction), the blendshape count (61)
and 61 values with 10 decimals. Rows where tracking was lost are just ``<timecode>,0``: they are reported in
``Recording.lost_rows`` and skipped (or kept as all-missing frames with ``lost="flag"``), never turned into zeros.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semanticface.coefficients import FaceCoefficients, channel_range
from semanticface.errors import CoefficientError, RecordingError
from semanticface.schema import CHANNEL_INDEX, CHANNELS, LLF_COLUMN_ORDER, NUM_CHANNELS, canonical_name

TIMECODE_RATE = 60  # the frame field of Live Link Face timecodes counts 60 fps frames
VALUE_DECIMALS = 10
_TIMECODE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})[:;](\d{2})(?:\.(\d+))?$")
_COUNT_HEADERS = ("blendshapecount",)
# Canonical channel of each Live Link Face column, in file order.
_LLF_CANONICAL: tuple[str, ...] = tuple(canonical_name(c) for c in LLF_COLUMN_ORDER)
_FILE_TO_CANONICAL = np.array([CHANNEL_INDEX[n] for n in _LLF_CANONICAL])
_LOW = np.array([channel_range(n)[0] for n in CHANNELS])
_HIGH = np.array([channel_range(n)[1] for n in CHANNELS])
_MID, _HALF = (_LOW + _HIGH) / 2, (_HIGH - _LOW) / 2


@dataclass
class Recording:
    """Frames of one capture. ``values`` is (N, 61) in canonical channel order (NaN rows for flagged frames)."""

    path: str
    values: np.ndarray
    timecodes: list[str]
    fps: float
    lost_rows: list[int] = field(default_factory=list)  # 1-based line numbers (the header is line 1)
    lost_frames: list[int] = field(default_factory=list)  # indices into ``values`` of flagged lost frames
    # (line, channel, value as read) of values slightly outside their range that were clamped into it
    clamped: list[tuple[int, str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def frame(self, index: int) -> FaceCoefficients:
        """Frame ``index`` (negative counts from the end); a flagged lost frame has every channel missing."""
        if not -len(self) <= index < len(self):
            raise RecordingError(f"frame {index} is out of range (the recording has {len(self)} frames)", self.path)
        if index % len(self) in self.lost_frames:
            return FaceCoefficients(np.zeros(NUM_CHANNELS), frozenset(CHANNELS))
        return FaceCoefficients(self.values[index])

    @property
    def frames(self) -> list[FaceCoefficients]:
        return [self.frame(i) for i in range(len(self))]

    @property
    def times(self) -> np.ndarray:
        """Seconds since midnight of each frame's timecode."""
        return np.array([timecode_seconds(t) for t in self.timecodes])


def timecode_seconds(timecode: str, rate: int = TIMECODE_RATE) -> float:
    """Seconds of an ``HH:MM:SS:FF.mmm`` timecode; raises ValueError when malformed."""
    match = _TIMECODE.match(timecode.strip())
    if not match:
        raise ValueError(f"bad timecode {timecode!r} (expected HH:MM:SS:FF.mmm)")
    hours, minutes, seconds, frames = (int(match.group(i)) for i in range(1, 5))
    fraction = float("0." + match.group(5)) if match.group(5) else 0.0
    if minutes > 59 or seconds > 59 or frames >= rate:
        raise ValueError(f"bad timecode {timecode!r} (field out of range at {rate} fps)")
    return hours * 3600 + minutes * 60 + seconds + (frames + fraction) / rate


def _frame_field(timecode: str) -> int:
    return int(timecode.strip().split(":")[3][:2])


def detect_fps(timecodes: Sequence[str]) -> float:
    """Capture rate: 60 / the median step of the frame field (alexdjulin's files keep every 2nd frame: 30)."""
    if len(timecodes) < 2:
        return float(TIMECODE_RATE)
    frames = np.array([_frame_field(t) for t in timecodes])
    steps = np.diff(frames) % TIMECODE_RATE
    steps = steps[steps > 0]
    if len(steps) == 0:
        return float(TIMECODE_RATE)
    return TIMECODE_RATE / float(np.median(steps))


def read_llf(path: str | Path, *, lost: str = "skip", clamp_tolerance: float = 0.1) -> Recording:
    """Read a Live Link Face CSV.

    ``lost``: "skip" (default) drops tracking-lost rows, "flag" keeps them as frames with every channel missing
    (listed in ``Recording.lost_frames``); either way their line numbers are in ``Recording.lost_rows``.
    ARKit overshoots its range a little at extremes (eyeLookIn reaches 1.076 in real captures): values at most
    ``clamp_tolerance`` outside their range are clamped and listed in ``Recording.clamped``; values further out
    (and NaN/inf) are errors. Raises :class:`RecordingError` naming the file and line for anything malformed.
    """
    if lost not in ("skip", "flag"):
        raise RecordingError(f"lost must be 'skip' or 'flag', got {lost!r}", str(path))
    where = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        raise RecordingError(f"cannot open: {error.strerror or error}", where) from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise RecordingError(f"not a readable CSV file ({error})", where) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise RecordingError("empty file (no header)", where, 1)
    _check_header(rows[0], where)
    values: list[np.ndarray] = []
    timecodes: list[str] = []
    lost_rows: list[int] = []
    lost_frames: list[int] = []
    clamped: list[tuple[int, str, float]] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank line (e.g. at the end of the file)
        timecode = row[0].strip()
        try:
            timecode_seconds(timecode)
        except ValueError as error:
            raise RecordingError(str(error), where, line) from None
        if len(row) == 2 and _is_zero(row[1]):
            lost_rows.append(line)
            if lost == "flag":
                lost_frames.append(len(values))
                values.append(np.full(NUM_CHANNELS, np.nan))
                timecodes.append(timecode)
            continue
        if len(row) != 2 + NUM_CHANNELS:
            raise RecordingError(f"expected {2 + NUM_CHANNELS} columns, found {len(row)}", where, line)
        if row[1].strip() != str(NUM_CHANNELS):
            raise RecordingError(f"BlendShapeCount is {row[1]!r}, expected {NUM_CHANNELS}", where, line)
        file_values = np.empty(NUM_CHANNELS)
        for i, cell in enumerate(row[2:]):
            try:
                file_values[i] = float(cell)
            except ValueError:
                raise RecordingError(f"{LLF_COLUMN_ORDER[i]} is not a number: {cell!r}", where, line) from None
            if not math.isfinite(file_values[i]):
                raise RecordingError(f"{LLF_COLUMN_ORDER[i]} is not a finite number: {cell!r}", where, line)
        canonical = np.empty(NUM_CHANNELS)
        canonical[_FILE_TO_CANONICAL] = file_values
        outside = np.flatnonzero(
            (np.abs(canonical - _MID) > _HALF) & (np.abs(canonical - _MID) <= _HALF + clamp_tolerance)
        )
        for i in outside:
            clamped.append((line, CHANNELS[i], float(canonical[i])))
        canonical[outside] = np.clip(canonical[outside], _LOW[outside], _HIGH[outside])
        try:
            FaceCoefficients(canonical)  # validates: finite, in range; names the channel
        except CoefficientError as error:
            raise RecordingError(str(error), where, line) from None
        values.append(canonical)
        timecodes.append(timecode)
    array = np.array(values) if values else np.zeros((0, NUM_CHANNELS))
    flagged = set(lost_frames)
    tracked = [t for i, t in enumerate(timecodes) if i not in flagged]
    return Recording(where, array, timecodes, detect_fps(tracked), lost_rows, lost_frames, clamped)


def _is_zero(cell: str) -> bool:
    try:
        return float(cell) == 0
    except ValueError:
        return False


def _check_header(header: list[str], where: str) -> None:
    cells = [c.strip() for c in header]
    if len(cells) != 2 + NUM_CHANNELS:
        raise RecordingError(f"header has {len(cells)} columns, expected {2 + NUM_CHANNELS}", where, 1)
    if cells[0].lower() != "timecode" or cells[1].lower() not in _COUNT_HEADERS:
        raise RecordingError(f"header must start with Timecode,BlendShapeCount; found {cells[0]},{cells[1]}", where, 1)
    for i, (found, wanted) in enumerate(zip(cells[2:], LLF_COLUMN_ORDER)):
        if found.lower() != wanted.lower():
            raise RecordingError(f"header column {i + 3} is {found!r}, expected {wanted!r}", where, 1)


def format_timecode(index: int, fps: float = TIMECODE_RATE, start_seconds: float = 0.0) -> str:
    """Timecode of frame ``index`` at ``fps`` (a divisor of 60) from ``start_seconds``, in Live Link Face style."""
    step = TIMECODE_RATE / fps
    total_frames = round(start_seconds * TIMECODE_RATE) + round(index * step)
    seconds, frame = divmod(total_frames, TIMECODE_RATE)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour % 24:02d}:{minute:02d}:{second:02d}:{frame:02d}.000"


def write_llf(
    path: str | Path,
    frames: Sequence[FaceCoefficients] | np.ndarray,
    timecodes: Sequence[str] | None = None,
    fps: float = TIMECODE_RATE,
) -> Path:
    """Write frames (FaceCoefficients or an (N, 61) canonical-order array) as a Live Link Face CSV.

    Values are written with 10 decimals in Live Link Face's column order, as Unreal's importer expects;
    ``read_llf`` reads them back exactly to that precision. Frames with missing channels cannot be written
    (Live Link Face has no notion of a missing channel) and raise :class:`RecordingError`.
    """
    path = Path(path)
    if fps <= 0 or not math.isclose(TIMECODE_RATE / fps, round(TIMECODE_RATE / fps)):
        raise RecordingError(f"fps must divide {TIMECODE_RATE}, got {fps}", str(path))
    rows = []
    for i, frame in enumerate(frames):
        coefficients = frame if isinstance(frame, FaceCoefficients) else FaceCoefficients(np.asarray(frame))
        if coefficients.missing:
            raise RecordingError(f"frame {i} has missing channels: {sorted(coefficients.missing)}", str(path))
        rows.append(coefficients.values[_FILE_TO_CANONICAL])
    if timecodes is None:
        timecodes = [format_timecode(i, fps) for i in range(len(rows))]
    if len(timecodes) != len(rows):
        raise RecordingError(f"{len(timecodes)} timecodes for {len(rows)} frames", str(path))
    for line, timecode in enumerate(timecodes, start=2):
        try:
            timecode_seconds(timecode)
        except ValueError as error:
            raise RecordingError(str(error), str(path), line) from None
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write(",".join(("Timecode", "BlendShapeCount", *LLF_COLUMN_ORDER)) + "\n")
        for timecode, row in zip(timecodes, rows):
            cells = [f"{v:.{VALUE_DECIMALS}f}" for v in row]
            cells = [c[1:] if c.startswith("-") and float(c) == 0 else c for c in cells]
            handle.write(",".join((timecode, str(NUM_CHANNELS), *cells)) + "\n")
    return path
