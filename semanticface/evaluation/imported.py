"""Predictions made elsewhere, read from JSONL so that ``semanticface eval`` scores them like the model's own.

Each line is one JSON object with the row it answers (``index``: the dataset row number, or ``id``: matched
against the dataset's ``id`` column) and the raw model text (``text``, ``output``, ``raw_text`` or ``response``).
Formats: ``semanticface`` — the released SemanticFace model's output (markdown analysis, then one JSON object of
the 61 Live Link Face PascalCase keys at 1 decimal); ``semanticface-toolkit`` — this toolkit's contract (what
``semanticface predict --out x.jsonl`` writes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from semanticface.errors import DatasetError, OutputParseError

IMPORT_FORMATS = ("semanticface", "semanticface-toolkit")
TEXT_KEYS = ("text", "output", "raw_text", "response")


def _parse(text: str, fmt: str) -> tuple[Any, str, list[str]]:
    from semanticface.contract import parse_output, parse_semanticface_release

    try:
        parsed = parse_semanticface_release(text) if fmt == "semanticface" else parse_output(text)
    except OutputParseError as error:
        return None, text.split("{")[0].strip(), [str(error), *error.issues]
    return parsed.coefficients, parsed.description, list(parsed.issues)


def load_predictions(path: str | Path, dataset: Any, *, fmt: str = "semanticface") -> list[Any]:
    """One :class:`~semanticface.inference.Prediction` per dataset row, in row order.

    Rows without a line are parse failures (``coefficients=None``, issue "no prediction for this row"), so a
    partial file is scored honestly rather than on the rows it chose to answer.
    """
    from semanticface.inference import Prediction

    if fmt not in IMPORT_FORMATS:
        raise DatasetError(f"unknown predictions format {fmt!r}; expected one of {', '.join(IMPORT_FORMATS)}")
    ids = {str(v): i for i, v in enumerate(dataset["id"])} if "id" in dataset.column_names else None
    by_row: dict[int, Any] = {}
    file = Path(path)
    try:
        lines = file.read_bytes().splitlines()
    except OSError as error:
        raise DatasetError(f"{file}: cannot read predictions ({error})") from error
    for number, raw in enumerate(lines, start=1):
        where = f"{file}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = raw[error.start : error.start + 1].hex()
            raise DatasetError(f"{where}: not UTF-8 text (byte 0x{byte} at column {error.start + 1})") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: not JSON ({error.msg})") from error
        except RecursionError:
            raise DatasetError(f"{where}: not JSON (nested too deeply)") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected a JSON object")
        row = _row(record, ids, len(dataset), where)
        present = [k for k in TEXT_KEYS if k in record]
        if not present:
            raise DatasetError(f"{where}: no text field (one of {', '.join(TEXT_KEYS)})")
        text = next((record[k] for k in present if isinstance(record[k], str)), None)
        if text is None:
            kind = type(record[present[0]]).__name__
            raise DatasetError(f"{where}: field {present[0]!r} must be a string, got {kind}")
        if row in by_row:
            raise DatasetError(f"{where}: a second prediction for row {row}")
        num_tokens = _count(record.get("num_tokens"), "num_tokens", where)
        seconds = _seconds(record.get("seconds"), where)
        coefficients, description, issues = _parse(text, fmt)
        by_row[row] = Prediction(coefficients, description, text, issues, num_tokens=num_tokens, seconds=seconds)
    return [by_row.get(i) or Prediction(None, "", "", ["no prediction for this row"]) for i in range(len(dataset))]


def _count(value: Any, name: str, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetError(f"{where}: {name!r} must be a non-negative integer, got {value!r:.40}")
    return value


def _seconds(value: Any, where: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{where}: 'seconds' must be a number, got {value!r:.40}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise DatasetError(f"{where}: 'seconds' must be a finite non-negative number, got {value!r:.40}")
    return seconds


def _row(record: dict[str, Any], ids: dict[str, int] | None, size: int, where: str) -> int:
    if "id" in record and ids is not None:
        if isinstance(record["id"], (dict, list)):
            raise DatasetError(f"{where}: 'id' must be a string or a number, got {type(record['id']).__name__}")
        if str(record["id"]) not in ids:
            raise DatasetError(f"{where}: id {record['id']!r} is not in the dataset's 'id' column")
        return ids[str(record["id"])]
    index = record.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise DatasetError(f"{where}: needs an integer 'index' (or an 'id' matching the dataset's 'id' column)")
    if not 0 <= index < size:
        raise DatasetError(f"{where}: index {index} is outside the dataset (0..{size - 1})")
    return index
