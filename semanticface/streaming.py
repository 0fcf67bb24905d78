"""Write per-frame results as they arrive (Live Link Face CSV or JSONL), flushed after every batch.

A long prediction run that is interrupted keeps every frame written so far. CSV rows use Live Link Face's layout
(:mod:`semanticface.llf`); a frame without a reading (no face, an output that did not parse) is a tracking-lost
row ``<timecode>,0``, which Live Link Face itself writes and Unreal skips: never a row of zeros.

Timecodes are exact: ``HH:MM:SS:FF.mmm`` with ``FF`` the 60 fps frame and ``.mmm`` the fraction of it, so frame
``i`` of a 23.976 fps video is written at ``i × 1001/24000`` s (frame 1 → ``00:00:00:02.502``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import IO, Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.llf import TIMECODE_RATE, VALUE_DECIMALS
from semanticface.schema import CHANNEL_INDEX, LLF_COLUMN_ORDER, NUM_CHANNELS, canonical_name

OUTPUT_SUFFIXES = (".csv", ".jsonl")
_FILE_TO_CANONICAL = np.array([CHANNEL_INDEX[canonical_name(c)] for c in LLF_COLUMN_ORDER])


def timecode_at(seconds: float) -> str:
    """Live Link Face timecode of a time in seconds: the 60 fps frame plus its fraction to the millisecond."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"a timecode needs a finite time >= 0, got {seconds}")
    ticks = round(seconds * TIMECODE_RATE * 1000)  # thousandths of a 60 fps frame
    frames, fraction = divmod(ticks, 1000)
    whole, frame = divmod(frames, TIMECODE_RATE)
    minutes, second = divmod(whole, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour % 24:02d}:{minute:02d}:{second:02d}:{frame:02d}.{fraction:03d}"


def llf_row(timecode: str, coefficients: FaceCoefficients | None) -> str:
    """One CSV line (no newline); ``None`` or a frame with missing blendshapes is a tracking-lost row."""
    if coefficients is None:
        return f"{timecode},0"
    values = coefficients.values[_FILE_TO_CANONICAL]
    if np.isnan(values).any():
        return f"{timecode},0"
    cells = [f"{v:.{VALUE_DECIMALS}f}" for v in values]
    cells = [c[1:] if c.startswith("-") and float(c) == 0 else c for c in cells]
    return ",".join((timecode, str(NUM_CHANNELS), *cells))


class ResultWriter:
    """Streams frames to ``path`` (.csv = Live Link Face, .jsonl = one JSON object per frame)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in OUTPUT_SUFFIXES:
            raise ConfigError(f"--out must end in .csv (Live Link Face) or .jsonl, got {self.path.name!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] | None = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.rows = 0
        self.lost = 0
        if self.kind == ".csv":
            self._handle.write(",".join(("Timecode", "BlendShapeCount", *LLF_COLUMN_ORDER)) + "\n")

    def write(self, seconds: float, coefficients: FaceCoefficients | None, record: dict[str, Any]) -> None:
        """One frame: CSV gets the coefficients (lost row when None), JSONL gets ``record``."""
        if self._handle is None:
            raise ConfigError(f"{self.path}: writer is closed")
        lost = coefficients is None or bool(np.isnan(coefficients.blendshapes).any())
        if self.kind == ".csv":
            # Live Link Face needs every column; pose a model does not predict is written as 0 ("not tracked").
            filled = None if lost else _pose_filled(coefficients)  # type: ignore[arg-type]
            self._handle.write(llf_row(timecode_at(seconds), filled) + "\n")
        else:
            self._handle.write(json.dumps(record) + "\n")
        self.rows += 1
        self.lost += int(lost)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pose_filled(coefficients: FaceCoefficients) -> FaceCoefficients:
    pose_missing = {n for n in coefficients.missing if CHANNEL_INDEX[n] >= 52}
    return coefficients.replace(**{n: 0.0 for n in pose_missing}) if pose_missing else coefficients
