"""Predictions made elsewhere, read from JSONL so that ``semanticface eval`` scores them like the model's own.

Each line is one JSON object with the row it answers (``index``: the dataset row number, or ``id``: matched
against the dataset's ``id`` column) and the raw model text (``text``, ``output``, ``raw_text`` or ``response``).
Formats: ``semanticface`` — the released SemanticFace model's output (markdown analysis, then one JSON object of
the 61 Live Link Face PascalCase keys at 1 decimal); ``semanticface-toolkit`` — this toolkit's contract (what
``semanticface predict --out x.jsonl`` writes).
"""

from __future__ import annotations

import json
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
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DatasetError(f"{file}: cannot read predictions ({error})") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{file}, line {number}: not JSON ({error.msg})") from error
        if not isinstance(record, dict):
            raise DatasetError(f"{file}, line {number}: expected a JSON object")
        row = _row(record, ids, len(dataset), f"{file}, line {number}")
        text = next((record[k] for k in TEXT_KEYS if isinstance(record.get(k), str)), None)
        if text is None:
            raise DatasetError(f"{file}, line {number}: no text field (one of {', '.join(TEXT_KEYS)})")
        if row in by_row:
            raise DatasetError(f"{file}, line {number}: a second prediction for row {row}")
        coefficients, description, issues = _parse(text, fmt)
        by_row[row] = Prediction(
            coefficients,
            description,
            text,
            issues,
            num_tokens=int(record.get("num_tokens") or 0),
            seconds=float(record.get("seconds") or 0.0),
        )
    return [by_row.get(i) or Prediction(None, "", "", ["no prediction for this row"]) for i in range(len(dataset))]


def _row(record: dict[str, Any], ids: dict[str, int] | None, size: int, where: str) -> int:
    if "id" in record and ids is not None:
        if str(record["id"]) not in ids:
            raise DatasetError(f"{where}: id {record['id']!r} is not in the dataset's 'id' column")
        return ids[str(record["id"])]
    index = record.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        raise DatasetError(f"{where}: needs an integer 'index' (or an 'id' matching the dataset's 'id' column)")
    if not 0 <= index < size:
        raise DatasetError(f"{where}: index {index} is outside the dataset (0..{size - 1})")
    return index
