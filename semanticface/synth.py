"""Synthetic datasets: sampled expressions rendered as faces, with their exact coefficients.

The result is a ``datasets.DatasetDict`` in the toolkit's row layout (:mod:`semanticface.rows`): an ``images``
column holding a list with one image (TRL's vision convention), one float column per canonical channel, and
``identity``, ``style``, ``source`` and ``renderer`` columns. Splits are made by identity, so no face identity
appears in two splits. It is ready for ``save_to_disk`` and ``push_to_hub``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.rows import COEFFICIENT_COLUMNS, coefficients_to_row
from semanticface.sampling import ExpressionSampler, SamplingConfig
from semanticface.schema import NUM_CHANNELS

METADATA_COLUMNS = ("identity", "style", "source", "renderer")


@dataclass
class SynthConfig:
    """What to render and how to split it."""

    renderer: str = field(default="avatar", metadata={"help": "avatar (built in) or mesh (needs mesh_dir)."})
    n: int = field(default=1000, metadata={"help": "Number of images over all splits."})
    size: int = field(default=256, metadata={"help": "Image side in pixels."})
    seed: int = field(default=0, metadata={"help": "Seed for expressions, identities, styles and splits."})
    styles: tuple[str, ...] = field(
        default=("flat", "shaded"), metadata={"help": "Avatar styles to draw from (ignored by the mesh renderer)."}
    )
    identities: int = field(default=40, metadata={"help": "Number of distinct face identities."})
    splits: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1},
        metadata={"help": "Split name -> fraction of identities (and of images)."},
    )
    sampling: SamplingConfig = field(
        default_factory=SamplingConfig, metadata={"help": "How expression vectors are drawn."}
    )
    mesh_dir: str | None = field(
        default=None, metadata={"help": "Rig for renderer=mesh: ICT-style OBJ + npz folder, or a .glb/.gltf."}
    )
    png_compress_level: int = field(
        default=1, metadata={"help": "PNG compression (0-9) of stored images; 1 is fast and lossless."}
    )

    def __post_init__(self) -> None:
        if self.renderer not in ("avatar", "mesh"):
            raise ConfigError(f"renderer must be 'avatar' or 'mesh', got {self.renderer!r}")
        if self.renderer == "mesh" and not self.mesh_dir:
            raise ConfigError("renderer=mesh needs mesh_dir (an ICT-style OBJ + npz folder or a .glb/.gltf file)")
        if self.n < 1 or self.size < 16:
            raise ConfigError("n must be >= 1 and size >= 16")
        from semanticface.render.avatar import STYLES

        bad = [s for s in self.styles if s not in STYLES]
        if bad or not self.styles:
            raise ConfigError(f"unknown avatar style(s) {bad} (choose from {', '.join(STYLES)})")
        if not self.splits or any(f <= 0 for f in self.splits.values()):
            raise ConfigError("splits need positive fractions")
        if self.identities < len(self.splits):
            raise ConfigError(f"{self.identities} identities cannot fill {len(self.splits)} splits without sharing")


def parse_splits(text: str) -> dict[str, float]:
    """``"train=0.8,validation=0.1,test=0.1"`` -> dict (fractions are normalised to sum to 1)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"bad split {part!r} (expected name=fraction)") from None
        if not name.strip():
            raise ConfigError(f"bad split {part!r} (expected name=fraction)")
    total = sum(out.values())
    if total <= 0:
        raise ConfigError("split fractions must sum to more than 0")
    return {k: v / total for k, v in out.items()}


def features():
    """The ``datasets.Features`` of a synthetic or user dataset."""
    from datasets import Features, Image, List, Value

    cols: dict[str, Any] = {"images": List(Image())}
    cols.update({name: Value("float64") for name in COEFFICIENT_COLUMNS})  # exact round trip
    cols.update({"identity": Value("int32"), "style": Value("string"), "source": Value("string")})
    cols["renderer"] = Value("string")
    return Features(cols)


def assign_identities(config: SynthConfig) -> dict[str, list[int]]:
    """Disjoint identity ids per split, proportional to the split fractions (each split gets at least one)."""
    rng = np.random.default_rng([config.seed, 1])
    ids = rng.permutation(config.identities).tolist()
    names = list(config.splits)
    total = sum(config.splits.values())
    counts = [max(1, round(config.identities * config.splits[s] / total)) for s in names]
    while sum(counts) > config.identities:  # rounding overshoot: take from the largest split
        counts[int(np.argmax(counts))] -= 1
    counts[0] += config.identities - sum(counts)
    out, start = {}, 0
    for name, count in zip(names, counts):
        out[name] = sorted(ids[start : start + count])
        start += count
    return out


def plan(config: SynthConfig) -> dict[str, list[dict[str, Any]]]:
    """Every row to render, per split: coefficients, identity, style, source (deterministic for the seed)."""
    identities = assign_identities(config)
    sampler = ExpressionSampler(config.sampling, seed=config.seed)
    rng = np.random.default_rng([config.seed, 2])
    total = sum(config.splits.values())
    names = list(config.splits)
    sizes = [math.floor(config.n * config.splits[s] / total) for s in names]
    for k in range(config.n - sum(sizes)):  # hand the remainder out in split order
        sizes[k % len(sizes)] += 1
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, count in zip(names, sizes):
        rows = []
        for sample in sampler.draw(count):
            style = str(rng.choice(config.styles)) if config.renderer == "avatar" else "shaded"
            rows.append(
                {
                    "values": sample.coefficients.values.tolist(),
                    "identity": int(rng.choice(identities[name])),
                    "style": style,
                    "source": sample.source,
                }
            )
        jobs[name] = rows
    return jobs


_RENDERERS: dict[str, Any] = {}


def _renderer(kind: str, style: str, mesh_dir: str | None):
    # One renderer per process and kind: the mesh rig takes a moment to load.
    key = f"{kind}|{style}|{mesh_dir}"
    if key not in _RENDERERS:
        from semanticface.render import get_renderer

        _RENDERERS[key] = (
            get_renderer("mesh", mesh_dir=mesh_dir) if kind == "mesh" else get_renderer(f"avatar-{style}")
        )
    return _RENDERERS[key]


def _generate(jobs: list[dict[str, Any]], kind: str, mesh_dir: str | None, size: int, compress: int):
    for job in jobs:
        coefficients = FaceCoefficients(np.asarray(job["values"], dtype=np.float64))
        renderer = _renderer(kind, job["style"], mesh_dir)
        image = renderer.render(coefficients, identity=job["identity"], size=size)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=compress)
        row: dict[str, Any] = {"images": [{"bytes": buffer.getvalue(), "path": None}]}
        row.update(coefficients_to_row(coefficients))
        row.update(identity=job["identity"], style=job["style"], source=job["source"], renderer=renderer.name)
        yield row


def build_dataset(config: SynthConfig, *, num_proc: int | None = None, cache_dir: str | None = None):
    """Render the dataset. Returns a ``datasets.DatasetDict`` (one entry per split)."""
    from datasets import Dataset, DatasetDict

    jobs = plan(config)
    out = {}
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True, default=str).encode()).hexdigest()[:16]
    for name, rows in jobs.items():
        if not rows:
            continue
        out[name] = Dataset.from_generator(
            _generate,
            features=features(),
            gen_kwargs={
                "jobs": rows,
                "kind": config.renderer,
                "mesh_dir": config.mesh_dir,
                "size": config.size,
                "compress": config.png_compress_level,
            },
            num_proc=num_proc if num_proc and num_proc > 1 and len(rows) >= num_proc else None,
            cache_dir=cache_dir,
            # An explicit fingerprint spares datasets from hashing thousands of job dicts.
            fingerprint=f"semanticface-synth-{digest}-{name}",
            split=name,
        )
    return DatasetDict(out)


def synthesize(config: SynthConfig, out_dir: str | Path, *, num_proc: int | None = None):
    """Build the dataset in a scratch cache, save it to ``out_dir`` (``save_to_disk``) and return it from there."""
    from datasets import load_from_disk

    out_dir = Path(out_dir)
    scratch = tempfile.mkdtemp(prefix="semanticface-synth-")
    try:
        dataset = build_dataset(config, num_proc=num_proc, cache_dir=scratch)
        dataset.save_to_disk(str(out_dir))
        (out_dir / "synth_config.json").write_text(json.dumps(asdict(config), indent=2, default=str) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load_from_disk(str(out_dir))


assert len(COEFFICIENT_COLUMNS) == NUM_CHANNELS
