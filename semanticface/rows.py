"""How coefficients are stored in dataset rows: one float column per canonical channel, None where missing.

One column per channel keeps datasets readable in the Hub's viewer and lets users select channels by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients, as_float
from semanticface.errors import CoefficientError, DatasetError
from semanticface.schema import CHANNELS

COEFFICIENT_COLUMNS: tuple[str, ...] = CHANNELS


def coefficients_to_row(coefficients: FaceCoefficients) -> dict[str, float | None]:
    """``{channel: value}`` for all 61 canonical channels, None for missing ones."""
    if not isinstance(coefficients, FaceCoefficients):
        raise CoefficientError(f"expected FaceCoefficients, got {type(coefficients).__name__}")
    return {
        name: (None if name in coefficients.missing else float(value))
        for name, value in zip(CHANNELS, coefficients.values)
    }


def row_to_coefficients(row: Mapping[str, Any], *, where: str = "row") -> FaceCoefficients:
    """Inverse of :func:`coefficients_to_row`; ``where`` names the row in error messages. Every bad value (a
    string, a bool, a list, a number too large for a float) raises :class:`DatasetError` naming row and channel."""
    if not isinstance(row, Mapping):
        raise DatasetError(f"{where}: coefficients must be an object of channel columns, got {type(row).__name__}")
    values = np.zeros(len(CHANNELS))
    missing: list[str] = []
    for i, name in enumerate(CHANNELS):
        if name not in row:
            raise DatasetError(f"{where}: coefficient column {name!r} is absent")
        value = row[name]
        if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
            missing.append(name)
            continue
        try:
            values[i] = as_float(value, name)
        except CoefficientError as error:
            raise DatasetError(f"{where}: {error}") from error
    try:
        return FaceCoefficients(values, frozenset(missing))
    except DatasetError:
        raise
    except Exception as error:  # CoefficientError: re-raise naming the row
        raise DatasetError(f"{where}: {error}") from error


def dataset_coefficients(dataset: Any) -> list[FaceCoefficients]:
    """All rows' coefficients of a ``datasets.Dataset`` (reads only the coefficient columns, not images)."""
    missing_columns = [c for c in COEFFICIENT_COLUMNS if c not in dataset.column_names]
    if missing_columns:
        raise DatasetError(f"dataset lacks coefficient column(s): {', '.join(missing_columns[:5])}")
    table = dataset.select_columns(list(COEFFICIENT_COLUMNS)).to_dict()
    return [
        row_to_coefficients({c: table[c][i] for c in COEFFICIENT_COLUMNS}, where=f"row {i}")
        for i in range(len(dataset))
    ]


def open_dataset(name: str | Path, *, config: str | None = None) -> Any:
    """A ``datasets.Dataset`` or ``DatasetDict`` in the row layout: a ``save_to_disk`` folder, a data folder or
    file ``datasets.load_dataset`` reads, or a Hub dataset id. Every failure is a :class:`DatasetError` naming it.
    The one dataset loader of training, evaluation and the preference rounds."""
    import datasets

    path = Path(name)
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()):
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset(str(name), config)
    except Exception as error:  # missing files, Hub/network and format errors all mean the same to the user
        raise DatasetError(f"cannot load dataset {str(name)!r}: {error}") from error


def dataset_split(loaded: Any, split: str, name: str | Path) -> Any:
    """Split ``split`` of what :func:`open_dataset` returned (a single ``Dataset`` is every split)."""
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded
    if split not in loaded:
        raise DatasetError(f"dataset {str(name)!r} has no split {split!r} (it has {', '.join(loaded)})")
    return loaded[split]
