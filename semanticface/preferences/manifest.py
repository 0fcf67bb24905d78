"""The candidate directory format, read and written here and nowhere else.

::

    DIR/manifest.jsonl     one item per line (below)
    DIR/images/...         input images
    DIR/renders/...        rendered candidates

Each manifest line is a JSON object::

    {"id": "item-0003",                       # unique item id
     "image": "images/item-0003.png",          # input image, relative to DIR
     "region": "full",                         # "full" | "upper" | "lower": which face half to judge
     "candidates": [
        {"id": "c0",
         "render": "renders/item-0003_c0.png", # rendered face, relative to DIR
         "coefficients": {"eyeBlinkLeft": 0.0, ..., "RightEyeRoll": 0.0},   # 61 canonical channels, null = missing
         "completion": "Expression: ...",      # the target text (contract.render_target) DPO trains on
         "raw_text": "...",                    # what the model emitted (model samples only)
         "origin": {"kind": "sample", "temperature": 0.7, "seed": 3}},   # or {"kind": "perturbation", ...}
        ...],
     "metadata": {...}}                        # free-form (source dataset row, identity, ...)

Paths must be relative and stay inside DIR; loading refuses anything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.rows import coefficients_to_row, row_to_coefficients

MANIFEST_NAME = "manifest.jsonl"
REGION_MODES = ("full", "upper", "lower")


@dataclass(frozen=True)
class Candidate:
    id: str
    render: str
    coefficients: FaceCoefficients
    completion: str
    origin: Mapping[str, Any] = field(default_factory=dict)
    raw_text: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "render": self.render,
            "coefficients": coefficients_to_row(self.coefficients),
            "completion": self.completion,
            "origin": dict(self.origin),
        }
        if self.raw_text is not None:
            out["raw_text"] = self.raw_text
        return out


@dataclass(frozen=True)
class Item:
    id: str
    image: str
    candidates: tuple[Candidate, ...]
    region: str = "full"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def candidate_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.candidates)

    def candidate(self, candidate_id: str) -> Candidate:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise KeyError(candidate_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image": self.image,
            "region": self.region,
            "candidates": [c.to_json() for c in self.candidates],
            "metadata": dict(self.metadata),
        }


def _relative_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{where}: path must be a non-empty string")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise DatasetError(f"{where}: path {value!r} must be relative to the candidate directory")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DatasetError(f"{where} must be an object, got {type(value).__name__}")
    return dict(value)


def _parse_item(data: Any, where: str) -> Item:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    for key in ("id", "image", "candidates"):
        if key not in data:
            raise DatasetError(f"{where}: missing field {key!r}")
    region = data.get("region", "full")
    if region not in REGION_MODES:
        raise DatasetError(f"{where}: region must be one of {REGION_MODES}, got {region!r}")
    if not isinstance(data["candidates"], list) or len(data["candidates"]) < 2:
        raise DatasetError(f"{where}: an item needs at least 2 candidates")
    candidates = []
    for j, c in enumerate(data["candidates"]):
        cw = f"{where}, candidate {j}"
        if not isinstance(c, dict) or not all(k in c for k in ("id", "render", "coefficients", "completion")):
            raise DatasetError(f"{cw}: needs id, render, coefficients and completion")
        if not isinstance(c["coefficients"], dict):
            raise DatasetError(f"{cw}: coefficients must be an object")
        candidates.append(
            Candidate(
                id=str(c["id"]),
                render=_relative_path(c["render"], cw),
                coefficients=row_to_coefficients(c["coefficients"], where=cw),
                completion=str(c["completion"]),
                origin=_object(c.get("origin"), f"{cw}: origin"),
                raw_text=c.get("raw_text"),
            )
        )
    if len({c.id for c in candidates}) != len(candidates):
        raise DatasetError(f"{where}: candidate ids must be unique")
    return Item(
        id=str(data["id"]),
        image=_relative_path(data["image"], where),
        candidates=tuple(candidates),
        region=region,
        metadata=_object(data.get("metadata"), f"{where}: metadata"),
    )


class CandidateSet:
    """The items of a candidate directory, in manifest order."""

    def __init__(self, root: str | Path, items: Iterable[Item]) -> None:
        self.root = Path(root)
        self.items = list(items)
        self._by_id = {item.id: item for item in self.items}
        if len(self._by_id) != len(self.items):
            raise DatasetError(f"{self.root / MANIFEST_NAME}: item ids must be unique")

    @classmethod
    def load(cls, root: str | Path) -> CandidateSet:
        root = Path(root)
        manifest = root / MANIFEST_NAME
        if not manifest.is_file():
            raise DatasetError(f"{manifest}: no candidate manifest (run `semanticface candidates` first)")
        items = []
        try:
            raw_lines = manifest.read_bytes().splitlines()
        except OSError as error:
            raise DatasetError(f"{manifest}: cannot read ({error.strerror or error})") from None
        for number, raw in enumerate(raw_lines, start=1):
            where = f"{manifest}, line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DatasetError(f"{where}: not UTF-8 text (byte at column {error.start + 1})") from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{where}: invalid JSON ({error.msg})") from None
            except RecursionError:
                raise DatasetError(f"{where}: invalid JSON (nested too deeply)") from None
            items.append(_parse_item(data, where))
        return cls(root, items)

    def save(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / MANIFEST_NAME
        tmp = path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for item in self.items:
                handle.write(json.dumps(item.to_json()) + "\n")
        tmp.replace(path)  # atomic: a reader never sees half a manifest
        return path

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def get(self, item_id: str) -> Item:
        try:
            return self._by_id[item_id]
        except KeyError:
            raise DatasetError(f"unknown item {item_id!r}") from None
