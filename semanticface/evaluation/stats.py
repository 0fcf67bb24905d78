"""Statistics for comparing systems honestly: mean ± standard error across seeds, paired bootstrap confidence
intervals over test images, and per-image error files that let any two runs be compared later.

Pure numpy. A paired bootstrap resamples test images (the same resampled images for both systems), so the
interval reflects how much the comparison depends on which faces happened to be in the test set; the seed-to-seed
spread of training is a separate figure (:func:`mean_se`).

Per-image error files (``.jsonl`` or ``.csv``) hold one line per (system, row): the row id, the system's name, the
image's mean absolute error and, when given, the per-channel absolute errors (empty/null where not scored). One file
may hold several systems; readers pick one by name.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.errors import ConfigError, DatasetError
from semanticface.evaluation.metrics import per_image_mae
from semanticface.schema import BLENDSHAPES, CHANNELS

PER_IMAGE_FORMATS = (".jsonl", ".csv")
_BOOT_CHUNK = 1_000_000  # resampled indices generated per chunk (bounds memory for large test sets)


def _finite_vector(values: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{what}: not numbers ({error})") from error
    if array.ndim != 1:
        raise DatasetError(f"{what}: expected a 1-D sequence, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise DatasetError(f"{what}: value at index {int(bad[0])} is {array[bad[0]]} (NaN/inf are not errors)")
    return array


def mean_se(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(mean, standard error of the mean)`` of per-seed figures; the standard error is NaN for one value.

    Standard error = sample standard deviation (ddof=1) / sqrt(n).
    """
    array = _finite_vector(values, "mean_se")
    if array.size == 0:
        raise DatasetError("mean_se: no values")
    if array.size == 1:
        return float(array[0]), math.nan
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def paired_bootstrap_ci(
    errors_a: Sequence[float] | np.ndarray,
    errors_b: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Percentile bootstrap over test images of the difference and the ratio of two systems' mean errors.

    ``errors_a[i]`` and ``errors_b[i]`` are the errors of systems a and b on the same image i. Returns
    ``mean_a``, ``mean_b``, ``mean_diff`` (a − b; negative: a is better), ``ci_low``/``ci_high`` (of the
    difference), ``ratio`` (mean_a / mean_b) with ``ratio_ci_low``/``ratio_ci_high`` (NaN when b's mean is 0),
    ``excludes_zero`` (whether the difference's interval excludes 0), ``n``, ``n_boot``, ``confidence``, ``seed``.
    Reproducible for a given seed.
    """
    a = _finite_vector(errors_a, "errors_a")
    b = _finite_vector(errors_b, "errors_b")
    if a.size != b.size:
        raise DatasetError(f"paired errors need the same images: {a.size} errors for a, {b.size} for b")
    if a.size == 0:
        raise DatasetError("paired_bootstrap_ci: no images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    n = a.size
    rng = np.random.default_rng(seed)
    sums_a = np.empty(n_boot)
    sums_b = np.empty(n_boot)
    per_chunk = max(1, _BOOT_CHUNK // n)
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        index = rng.integers(0, n, size=(stop - start, n))
        sums_a[start:stop] = a[index].sum(axis=1)
        sums_b[start:stop] = b[index].sum(axis=1)
    boot_diff = (sums_a - sums_b) / n
    tail = (1 - confidence) / 2 * 100
    low, high = (float(v) for v in np.percentile(boot_diff, [tail, 100 - tail]))
    mean_a, mean_b = float(a.mean()), float(b.mean())
    if mean_b > 0 and np.all(sums_b > 0):
        ratio = mean_a / mean_b
        ratio_low, ratio_high = (float(v) for v in np.percentile(sums_a / sums_b, [tail, 100 - tail]))
    else:
        ratio = ratio_low = ratio_high = math.nan
    return {
        "n": int(n),
        "mean_a": mean_a,
        "mean_b": mean_b,
        "mean_diff": mean_a - mean_b,
        "ci_low": low,
        "ci_high": high,
        "excludes_zero": bool(low > 0 or high < 0),
        "ratio": ratio,
        "ratio_ci_low": ratio_low,
        "ratio_ci_high": ratio_high,
        "confidence": confidence,
        "n_boot": int(n_boot),
        "seed": int(seed),
    }


# --- per-image error files ----------------------------------------------------------------------------------------


@dataclass
class PerImageErrors:
    """One system's errors per test image, as saved by :func:`save_per_image_errors`.

    ``errors`` is the mean absolute error per image (over the cells scored for it); ``channel_errors`` the
    per-channel absolute errors (NaN where not scored), or None when only the per-image figure was saved.
    """

    system: str
    row_ids: list[str]
    errors: np.ndarray
    channel_errors: np.ndarray | None = None
    channels: tuple[str, ...] | None = None


def per_image_mean(errors: np.ndarray, *, what: str = "errors") -> np.ndarray:
    """Mean over the finite cells of each row of an ``[N, C]`` error matrix (:func:`metrics.per_image_mae`); a row
    with none is an error."""
    per_image = per_image_mae(errors)
    empty = np.flatnonzero(np.isnan(per_image))
    if empty.size:
        raise DatasetError(f"{what}: row {int(empty[0])} has no scored channel")
    return per_image


def _channel_names(width: int, channels: Sequence[str] | None) -> tuple[str, ...]:
    if channels is not None:
        if len(channels) != width:
            raise DatasetError(f"{len(channels)} channel names for an error matrix of {width} columns")
        return tuple(channels)
    if width == len(BLENDSHAPES):
        return BLENDSHAPES
    if width == len(CHANNELS):
        return CHANNELS
    raise DatasetError(f"an error matrix of {width} columns needs channel names (52 or 61 are known)")


def _row_ids(row_ids: Sequence[Any], count: int) -> list[str]:
    ids = [str(r) for r in row_ids]
    if len(ids) != count:
        raise DatasetError(f"{len(ids)} row ids for {count} rows of errors")
    seen: set[str] = set()
    for r in ids:
        if r in seen:
            raise DatasetError(f"row id {r!r} appears twice")
        seen.add(r)
    return ids


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in PER_IMAGE_FORMATS:
        raise ConfigError(f"{path}: per-image errors are saved as {' or '.join(PER_IMAGE_FORMATS)}, not {suffix!r}")
    return suffix


def save_per_image_errors(
    path: str | Path,
    row_ids: Sequence[Any],
    errors: Sequence[float] | np.ndarray,
    *,
    system: str,
    channels: Sequence[str] | None = None,
    append: bool = False,
) -> Path:
    """Write one system's per-image errors (a vector, or an ``[N, C]`` matrix of per-channel errors with NaN where
    a cell was not scored) to ``path`` (``.jsonl`` or ``.csv``); ``append`` adds a system to an existing file."""
    file = Path(path)
    suffix = _format(file)
    array = np.asarray(errors, dtype=float)
    if array.ndim == 1:
        per_image = _finite_vector(array, f"errors of {system!r}")
        matrix, names = None, None
    elif array.ndim == 2:
        names = _channel_names(array.shape[1], channels)
        matrix = np.abs(array)
        if np.isinf(matrix).any():
            raise DatasetError(f"errors of {system!r}: infinite value")
        per_image = per_image_mean(matrix, what=f"errors of {system!r}")
    else:
        raise DatasetError(f"errors of {system!r}: expected a vector or a matrix, got shape {array.shape}")
    ids = _row_ids(row_ids, per_image.size)
    if append and file.is_file():
        existing = _read_records(file)
        if any(record["system"] == system for record in existing):
            raise DatasetError(f"{file}: already holds errors of system {system!r}")
        if suffix == ".csv" and existing and _csv_header(file) != _csv_fields(names):
            raise DatasetError(f"{file}: cannot append errors with different channels to a CSV file")
    else:
        append = False
    file.parent.mkdir(parents=True, exist_ok=True)
    mode = "a" if append else "w"
    with open(file, mode, encoding="utf-8", newline="") as handle:
        if suffix == ".jsonl":
            for i, row_id in enumerate(ids):
                record: dict[str, Any] = {"row": row_id, "system": system, "mae": float(per_image[i])}
                if matrix is not None and names is not None:
                    record["errors"] = {n: _cell(matrix[i, j]) for j, n in enumerate(names)}
                handle.write(json.dumps(record) + "\n")
        else:
            writer = csv.writer(handle)
            if not append:
                writer.writerow(_csv_fields(names))
            for i, row_id in enumerate(ids):
                cells = [] if matrix is None else ["" if not math.isfinite(v) else repr(float(v)) for v in matrix[i]]
                writer.writerow([row_id, system, repr(float(per_image[i])), *cells])
    return file


def _cell(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _csv_fields(names: Sequence[str] | None) -> list[str]:
    return ["row", "system", "mae", *(names or ())]


def _csv_header(file: Path) -> list[str]:
    with open(file, encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), [])


def _number(value: Any, where: str) -> float:
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        raise DatasetError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{where}: expected a number, got {value!r}") from error
    if math.isinf(number):
        raise DatasetError(f"{where}: infinite value")
    return number


def _read_records(file: Path) -> list[dict[str, Any]]:
    """``[{"row", "system", "mae", "errors": {channel: float} | None}]`` with numbers checked, naming the line."""
    suffix = _format(file)
    records: list[dict[str, Any]] = []
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"{file}: cannot read per-image errors ({error})") from error
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{file}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{where}: not JSON ({error.msg})") from error
            if not isinstance(record, dict) or not {"row", "system", "mae"} <= set(record):
                raise DatasetError(f"{where}: expected an object with 'row', 'system' and 'mae'")
            cells = record.get("errors")
            if cells is not None and not isinstance(cells, dict):
                raise DatasetError(f"{where}: 'errors' must be an object of channel errors")
            records.append(_record(record["row"], record["system"], record["mae"], cells, where))
        return records
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or header[:3] != ["row", "system", "mae"]:
        raise DatasetError(f"{file}: the header must start with row,system,mae (got {header})")
    channels = header[3:]
    for number, fields in enumerate(reader, start=2):
        if not fields:
            continue
        where = f"{file}, line {number}"
        if len(fields) != len(header):
            raise DatasetError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        cells = dict(zip(channels, fields[3:])) if channels else None
        records.append(_record(fields[0], fields[1], fields[2], cells, where))
    return records


def _record(row: Any, system: Any, mae: Any, cells: dict[str, Any] | None, where: str) -> dict[str, Any]:
    value = _number(mae, f"{where}, field 'mae'")
    if math.isnan(value):
        raise DatasetError(f"{where}, field 'mae': missing or NaN")
    errors = None if cells is None else {n: _number(v, f"{where}, channel {n!r}") for n, v in cells.items()}
    return {"row": str(row), "system": str(system), "mae": value, "errors": errors}


def load_per_image_errors(path: str | Path, *, system: str | None = None) -> PerImageErrors:
    """Read one system's per-image errors; ``system`` may be omitted when the file holds only one."""
    file = Path(path)
    records = _read_records(file)
    systems = list(dict.fromkeys(r["system"] for r in records))
    if not systems:
        raise DatasetError(f"{file}: no per-image errors")
    if system is None:
        if len(systems) > 1:
            raise DatasetError(f"{file} holds several systems ({', '.join(systems)}): name one")
        system = systems[0]
    if system not in systems:
        raise DatasetError(f"{file}: no system {system!r} (it has {', '.join(systems)})")
    chosen = [r for r in records if r["system"] == system]
    ids = _row_ids([r["row"] for r in chosen], len(chosen))
    errors = np.array([r["mae"] for r in chosen])
    if all(r["errors"] is not None for r in chosen):
        names = tuple(chosen[0]["errors"])
        for r in chosen:
            if tuple(r["errors"]) != names:
                raise DatasetError(
                    f"{file}: row {r['row']!r} of {system!r} has different channels than row {ids[0]!r}"
                )
        matrix = np.array([[r["errors"][n] for n in names] for r in chosen])
        return PerImageErrors(system, ids, errors, matrix, names)
    return PerImageErrors(system, ids, errors)


def paired_errors(a: PerImageErrors, b: PerImageErrors) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Align two systems' errors by row id: ``(row ids, errors of a, errors of b)`` on exactly the same images.

    When both hold per-channel errors over the same channels, each image's error is recomputed over the cells
    scored for both (so a cell one system skipped does not count for the other). Rows must match exactly.
    """
    only_a = sorted(set(a.row_ids) - set(b.row_ids))
    only_b = sorted(set(b.row_ids) - set(a.row_ids))
    if only_a or only_b:
        detail = "; ".join(
            f"{len(rows)} row(s) only in {name} (e.g. {rows[0]!r})"
            for rows, name in ((only_a, a.system), (only_b, b.system))
            if rows
        )
        raise DatasetError(f"per-image errors of {a.system!r} and {b.system!r} cover different rows: {detail}")
    order_b = {r: i for i, r in enumerate(b.row_ids)}
    take_b = np.array([order_b[r] for r in a.row_ids], dtype=int)
    if (
        a.channel_errors is not None
        and b.channel_errors is not None
        and a.channels is not None
        and a.channels == b.channels
    ):
        ca, cb = a.channel_errors, b.channel_errors[take_b]
        both = np.isfinite(ca) & np.isfinite(cb)
        empty = np.flatnonzero(~both.any(axis=1))
        if empty.size:
            raise DatasetError(f"row {a.row_ids[int(empty[0])]!r}: no channel scored for both systems")
        counts = both.sum(axis=1)
        errors_a = np.where(both, ca, 0.0).sum(axis=1) / counts
        errors_b = np.where(both, cb, 0.0).sum(axis=1) / counts
        return list(a.row_ids), errors_a, errors_b
    return list(a.row_ids), a.errors, b.errors[take_b]


def compare_per_image_errors(
    path_a: str | Path,
    path_b: str | Path,
    *,
    system_a: str | None = None,
    system_b: str | None = None,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap comparison of two saved per-image error files (or two systems of one file)."""
    a = load_per_image_errors(path_a, system=system_a)
    b = load_per_image_errors(path_b, system=system_b)
    _, errors_a, errors_b = paired_errors(a, b)
    result = paired_bootstrap_ci(errors_a, errors_b, n_boot=n_boot, confidence=confidence, seed=seed)
    return {"system_a": a.system, "system_b": b.system, **result}
