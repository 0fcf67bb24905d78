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
_TIMECODE = re.compile(r"(\d{2}):(\d{2}):(\d{2})[:;](\d{2})(?:\.(\d{1,9}))?", re.ASCII)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,3})?", re.ASCII)
_PLAIN = r"\s*[-+]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})(?:[eE][-+]?\d{1,3})?\s*"
_ROW_VALUES = re.compile(_PLAIN + "(?:," + _PLAIN + f"){{{NUM_CHANNELS - 1}}}", re.ASCII)
_MAX_TIMECODE = 64  # characters of a timecode cell
_MAX_CELL = 64  # characters of a value cell (Live Link Face writes 12 or 13)
_MAX_LINE = 64 * 1024  # characters of a row (63 cells)
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
    # What was odd but readable, each naming its line: duplicate or decreasing timecodes, a cut-off last row.
    issues: list[str] = field(default_factory=list)

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


def _timecode_fields(timecode: str, rate: int = TIMECODE_RATE) -> tuple[int, int, int, int, float]:
    if not isinstance(timecode, str) or len(timecode) > _MAX_TIMECODE:
        raise ValueError(f"bad timecode {timecode!r:.40} (expected HH:MM:SS:FF.mmm)")
    match = _TIMECODE.fullmatch(timecode.strip())
    if not match:
        raise ValueError(f"bad timecode {timecode!r} (expected HH:MM:SS:FF.mmm)")
    hours, minutes, seconds, frames = (int(match.group(i)) for i in range(1, 5))
    fraction = float("0." + match.group(5)) if match.group(5) else 0.0
    if minutes > 59 or seconds > 59 or frames >= rate:
        raise ValueError(f"bad timecode {timecode!r} (field out of range at {rate} fps)")
    return hours, minutes, seconds, frames, fraction


def timecode_seconds(timecode: str, rate: int = TIMECODE_RATE) -> float:
    """Seconds of an ``HH:MM:SS:FF.mmm`` timecode (``;`` before the frame field, drop-frame notation, is read
    the same way); raises ValueError when malformed."""
    hours, minutes, seconds, frames, fraction = _timecode_fields(timecode, rate)
    return hours * 3600 + minutes * 60 + seconds + (frames + fraction) / rate


_DAY_SECONDS = 24 * 3600
# Rates a capture is named by; a measured rate within 1% of one is reported as it (NTSC 59.94/29.97/23.976 as
# 60/30/24, the way cameras and Live Link Face name them). Other rates are reported as measured.
_NOMINAL_RATES = (60.0, 50.0, 48.0, 30.0, 25.0, 24.0, 20.0, 15.0, 12.0, 10.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0)


def detect_fps(timecodes: Sequence[str]) -> float:
    """Capture rate from the steps between consecutive timecodes, sub-frame fraction included, as its nominal
    rate (alexdjulin's files keep every 2nd frame: 30; a 23.976 fps take, whose steps alternate 2 and 3 frames
    of 60: 24; a file stamped once a second: 1). Repeated or decreasing timecodes are ignored (a step back of
    more than half a day is the clock passing midnight), and so are gaps (dropped frames, pauses): steps over
    1.6x the median step (or one 60 fps frame over it, for timecodes without a fraction)."""
    if len(timecodes) < 2:
        return float(TIMECODE_RATE)
    steps = np.diff(np.array([timecode_seconds(t) for t in timecodes], dtype=np.float64))
    steps = np.where(steps < -_DAY_SECONDS / 2, steps + _DAY_SECONDS, steps)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return float(TIMECODE_RATE)
    typical = float(np.median(steps))
    # Whole-frame timecodes (no fraction) quantise each step to 1/60 s: a 50 fps take steps 1 or 2 frames.
    quantum = 0.0 if any("." in t for t in timecodes) else 1.0 / TIMECODE_RATE
    regular = steps[steps <= max(1.6 * typical, typical + quantum + 1e-9)]
    rate = 1.0 / float(regular.mean())
    nominal = min(_NOMINAL_RATES, key=lambda r: abs(rate / r - 1.0))
    return nominal if abs(rate / nominal - 1.0) <= 0.01 else round(rate, 3)


def _lines(path: str | Path, where: str) -> list[tuple[int, str, bool]]:
    """(line number, text, ended by a newline) of each line, decoded one by one so a bad byte names its line."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RecordingError(f"cannot open: {error.strerror or error}", where) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        body = raw.rstrip(b"\r\n")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = body[error.start : error.start + 1].hex()
            raise RecordingError(
                f"not UTF-8 text (byte 0x{byte} at column {error.start + 1})", where, number
            ) from None
        lines.append((number, text, len(body) < len(raw)))
    return lines


def _cells(text: str, where: str, line: int) -> list[str]:
    if len(text) > _MAX_LINE:
        raise RecordingError(f"line is {len(text)} characters long; a row is at most {_MAX_LINE}", where, line)
    try:
        return next(csv.reader([text]), [])
    except csv.Error as error:
        raise RecordingError(f"not a readable CSV row ({error})", where, line) from None


def _decimals(cell: str) -> int:
    text = cell.strip()
    return len(text) - text.index(".") - 1 if "." in text and "e" not in text.lower() else 0


def read_llf(path: str | Path, *, lost: str = "skip", clamp_tolerance: float = 0.1) -> Recording:
    """Read a Live Link Face CSV.

    ``lost``: "skip" (default) drops tracking-lost rows, "flag" keeps them as frames with every channel missing
    (listed in ``Recording.lost_frames``); either way their line numbers are in ``Recording.lost_rows``.
    ARKit overshoots its range a little at extremes (eyeLookIn reaches 1.076 in real captures): values at most
    ``clamp_tolerance`` outside their range (either end) are clamped and listed in ``Recording.clamped``; values
    further out (and NaN/inf) are errors. A last row cut off by the end of the file (no final newline, and fewer
    fields or fewer decimals than the rows before it) is dropped and reported in ``Recording.issues``, as are
    repeated or decreasing timecodes (kept, but left out of the fps estimate). Raises :class:`RecordingError`
    naming the file and line for anything malformed.
    """
    if lost not in ("skip", "flag"):
        raise RecordingError(f"lost must be 'skip' or 'flag', got {lost!r}", str(path))
    where = str(path)
    lines = _lines(path, where)
    if not lines or not lines[0][1].strip():
        raise RecordingError("empty file (no header)", where, 1)
    _check_header(_cells(lines[0][1], where, 1), where)
    values: list[np.ndarray] = []
    timecodes: list[str] = []
    lost_rows: list[int] = []
    lost_frames: list[int] = []
    clamped: list[tuple[int, str, float]] = []
    issues: list[str] = []
    frame_lines: list[int] = []  # the line of each frame
    precision: int | None = None  # fewest decimals of the last field in the rows read so far
    last = max((n for n, text, _ in lines if text.strip()), default=0)
    tolerance = clamp_tolerance + 1e-9  # symmetric: -0.1 and 1.1 are both 0.1 out, whatever the rounding
    for line, text, ended in lines[1:]:
        if not text.strip():
            continue  # blank line (e.g. at the end of the file)
        row = _cells(text, where, line)
        cut_short = line == last and not ended  # the file stops inside this row: it may be cut off
        try:
            parsed = _row(row, where, line)
        except RecordingError as error:
            if not cut_short:
                raise
            issues.append(f"line {line}: the last row is cut off by the end of the file ({error}); dropped")
            continue
        if parsed is None:  # tracking lost
            lost_rows.append(line)
            if lost == "flag":
                lost_frames.append(len(values))
                values.append(np.full(NUM_CHANNELS, np.nan))
                timecodes.append(row[0].strip())
                frame_lines.append(line)
            continue
        decimals = _decimals(row[-1])
        if cut_short and precision is not None and decimals < precision:
            issues.append(
                f"line {line}: the last row is cut off by the end of the file ({LLF_COLUMN_ORDER[-1]} is "
                f"{row[-1].strip()!r}, {decimals} decimals where the other rows have {precision}); dropped"
            )
            continue
        precision = decimals if precision is None else min(precision, decimals)
        canonical = np.empty(NUM_CHANNELS)
        canonical[_FILE_TO_CANONICAL] = parsed
        outside = np.flatnonzero(
            ((canonical < _LOW) & (canonical >= _LOW - tolerance))
            | ((canonical > _HIGH) & (canonical <= _HIGH + tolerance))
        )
        for i in outside:
            clamped.append((line, CHANNELS[i], float(canonical[i])))
        canonical[outside] = np.clip(canonical[outside], _LOW[outside], _HIGH[outside])
        try:
            FaceCoefficients(canonical)  # validates: finite, in range; names the channel
        except CoefficientError as error:
            raise RecordingError(str(error), where, line) from None
        values.append(canonical)
        timecodes.append(row[0].strip())
        frame_lines.append(line)
    array = np.array(values) if values else np.zeros((0, NUM_CHANNELS))
    flagged = set(lost_frames)
    tracked = [t for i, t in enumerate(timecodes) if i not in flagged]
    issues.extend(_timecode_issues(tracked, [n for i, n in enumerate(frame_lines) if i not in flagged]))
    return Recording(where, array, timecodes, detect_fps(tracked), lost_rows, lost_frames, clamped, issues)


def _row(row: list[str], where: str, line: int) -> np.ndarray | None:
    """The 61 values of a data row in file order, or None for a tracking-lost row (``<timecode>,0``)."""
    if not row:
        raise RecordingError("empty row", where, line)
    timecode = row[0].strip()
    try:
        timecode_seconds(timecode)
    except ValueError as error:
        raise RecordingError(str(error), where, line) from None
    if len(row) == 2 and _is_zero(row[1]):
        return None
    if len(row) != 2 + NUM_CHANNELS:
        raise RecordingError(f"expected {2 + NUM_CHANNELS} columns, found {len(row)}", where, line)
    if row[1].strip() != str(NUM_CHANNELS):
        raise RecordingError(f"BlendShapeCount is {row[1]!r:.40}, expected {NUM_CHANNELS}", where, line)
    cells = row[2:]
    if _ROW_VALUES.fullmatch(",".join(cells)):  # the usual case: 61 plain numbers, converted at C speed
        file_values = np.array(cells, dtype=np.float64)
        if np.isfinite(file_values).all():
            return file_values
    file_values = np.empty(NUM_CHANNELS)
    for i, cell in enumerate(cells):
        if cell.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise RecordingError(f"{LLF_COLUMN_ORDER[i]} is not a finite number: {cell!r:.40}", where, line)
        if len(cell) > _MAX_CELL or not _NUMBER.fullmatch(cell.strip()):
            raise RecordingError(f"{LLF_COLUMN_ORDER[i]} is not a number: {cell!r:.40}", where, line)
        file_values[i] = float(cell)
        if not math.isfinite(file_values[i]):
            raise RecordingError(f"{LLF_COLUMN_ORDER[i]} is not a finite number: {cell!r:.40}", where, line)
    return file_values


def _timecode_issues(timecodes: list[str], lines: list[int]) -> list[str]:
    """Repeated or decreasing timecodes (a step back of more than half a day is midnight passing), by line."""
    issues = []
    seconds = [timecode_seconds(t) for t in timecodes]
    for i in range(1, len(seconds)):
        step = seconds[i] - seconds[i - 1]
        if step < -43200:
            step += 86400
        if step == 0:
            issues.append(f"line {lines[i]}: timecode {timecodes[i]} repeats line {lines[i - 1]}'s")
        elif step < 0:
            issues.append(
                f"line {lines[i]}: timecode {timecodes[i]} is before line {lines[i - 1]}'s ({timecodes[i - 1]})"
            )
    return issues


def _is_zero(cell: str) -> bool:
    text = cell.strip()
    return len(text) <= _MAX_CELL and bool(_NUMBER.fullmatch(text)) and float(text) == 0


def _check_header(header: list[str], where: str) -> None:
    cells = [c.strip() for c in header]
    if len(cells) != 2 + NUM_CHANNELS:
        raise RecordingError(f"header has {len(cells)} columns, expected {2 + NUM_CHANNELS}", where, 1)
    if cells[0].lower() != "timecode" or cells[1].lower() not in _COUNT_HEADERS:
        raise RecordingError(
            f"header must start with Timecode,BlendShapeCount; found {cells[0]:.40},{cells[1]:.40}", where, 1
        )
    for i, (found, wanted) in enumerate(zip(cells[2:], LLF_COLUMN_ORDER)):
        if found.lower() != wanted.lower():
            raise RecordingError(f"header column {i + 3} is {found!r:.40}, expected {wanted!r}", where, 1)


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
