"""Synthetic datasets: sampled expressions rendered as faces, with their exact coefficients.

The result is a ``datasets.DatasetDict`` in the toolkit's row layout (:mod:`semanticface.rows`): an ``images``
column holding a list with one image (TRL's vision convention), one float column per canonical channel, and
``identity``, ``style``, ``source`` and ``renderer`` columns. Splits are made by identity, so no face identity
appears in two splits, and — for recorded expressions — by expression source too (whole recordings or time blocks,
:mod:`semanticface.splits`), so no test face shows a recorded frame training saw. ``synthesize`` saves the split's
provenance (identities, recordings and frame ranges per split, nearest-training-expression distances) as
``split_provenance.json`` beside the dataset. It is ready for ``save_to_disk`` and ``push_to_hub``.
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
from semanticface.sampling import ExpressionSampler, FramePool, SamplingConfig
from semanticface.schema import NUM_CHANNELS
from semanticface.splits import EXPRESSION_HOLDOUTS, distance_summary, nearest_distances, split_pool

METADATA_COLUMNS = ("identity", "style", "source", "renderer")
PROVENANCE_FILENAME = "split_provenance.json"


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
    expression_holdout: str = field(
        default="auto",
        metadata={
            "help": "How recorded (llf) expressions are split on top of identities: recording (whole takes), "
            "block (time blocks with a gap), auto (recording with >= 2 takes per split, else block), none (leaks).",
            "choices": EXPRESSION_HOLDOUTS,
        },
    )
    block_frames: int = field(default=120, metadata={"help": "Frames per time block (expression_holdout=block)."})
    block_gap: int = field(
        default=30, metadata={"help": "Frames dropped between time blocks of different splits (block holdout)."}
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
        if self.expression_holdout not in EXPRESSION_HOLDOUTS:
            raise ConfigError(
                f"unknown expression_holdout {self.expression_holdout!r} (choose from {', '.join(EXPRESSION_HOLDOUTS)})"
            )
        if self.block_frames < 1 or self.block_gap < 0:
            raise ConfigError("block_frames must be >= 1 and block_gap >= 0")


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


@dataclass
class SplitPlan:
    """Every row to render, per split, and where the split's identities and expressions come from."""

    jobs: dict[str, list[dict[str, Any]]]
    provenance: dict[str, Any]


def _split_sizes(config: SynthConfig) -> dict[str, int]:
    total = sum(config.splits.values())
    names = list(config.splits)
    sizes = [math.floor(config.n * config.splits[s] / total) for s in names]
    for k in range(config.n - sum(sizes)):  # hand the remainder out in split order
        sizes[k % len(sizes)] += 1
    return dict(zip(names, sizes))


def plan_splits(config: SynthConfig) -> SplitPlan:
    """Draw every row (deterministic for the seed), holding out identities and, for llf, expression sources."""
    identities = assign_identities(config)
    rng = np.random.default_rng([config.seed, 2])
    sizes = _split_sizes(config)
    provenance: dict[str, Any] = {"identities": identities, "expression_source": config.sampling.source}
    samplers: dict[str, ExpressionSampler]
    if config.sampling.source == "llf":
        pool = FramePool.from_patterns(config.sampling.recordings)
        split = split_pool(
            pool,
            config.splits,
            config.expression_holdout,
            seed=config.seed,
            block_frames=config.block_frames,
            gap=config.block_gap,
        )
        provenance.update(split.provenance(), block_frames=config.block_frames, block_gap=config.block_gap)
        samplers = {
            name: ExpressionSampler(config.sampling, seed=[config.seed, k], pool=split.pools[name])
            for k, name in enumerate(config.splits)
        }
    else:
        # Uniform and sparse vectors are drawn independently per row: no two rows share a source frame.
        provenance["expression_holdout"] = "independent draws"
        shared = ExpressionSampler(config.sampling, seed=config.seed)
        samplers = dict.fromkeys(config.splits, shared)
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, count in sizes.items():
        rows = []
        for sample in samplers[name].draw(count):
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
    provenance["nearest_training_expression"] = expression_leak_check(jobs)
    return SplitPlan(jobs, provenance)


def plan(config: SynthConfig) -> dict[str, list[dict[str, Any]]]:
    """Every row to render, per split (see :func:`plan_splits`)."""
    return plan_splits(config).jobs


def source_frames(source: str) -> list[str]:
    """The recorded frames (``<file>#<frame>``) a row's ``source`` names: one, two for a blend, none if not llf."""
    kind, _, rest = source.partition(":")
    return rest.split("+") if kind in ("llf", "llf-mix") and rest else []


def expression_leak_check(jobs: dict[str, list[dict[str, Any]]], train: str = "train") -> dict[str, Any]:
    """Per held-out split: the share of rows built from a recorded frame that training also used, and the
    distances of its expressions to the nearest training expression (blendshapes, mean absolute difference)."""
    if train not in jobs or not jobs[train]:
        return {}
    reference = np.array([row["values"] for row in jobs[train]])
    seen = {frame for row in jobs[train] for frame in source_frames(row["source"])}
    out: dict[str, Any] = {}
    for name, rows in jobs.items():
        if name == train or not rows:
            continue
        shared = sum(any(f in seen for f in source_frames(row["source"])) for row in rows)
        summary = distance_summary(nearest_distances(np.array([row["values"] for row in rows]), reference))
        out[name] = {"shared_source_frame_fraction": round(shared / len(rows), 4), **summary}
    return out


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


def build_dataset(
    config: SynthConfig,
    *,
    num_proc: int | None = None,
    cache_dir: str | None = None,
    split_plan: SplitPlan | None = None,
):
    """Render the dataset. Returns a ``datasets.DatasetDict`` (one entry per split)."""
    from datasets import Dataset, DatasetDict

    jobs = (split_plan or plan_splits(config)).jobs
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
        split_plan = plan_splits(config)
        dataset = build_dataset(config, num_proc=num_proc, cache_dir=scratch, split_plan=split_plan)
        dataset.save_to_disk(str(out_dir))
        (out_dir / "synth_config.json").write_text(json.dumps(asdict(config), indent=2, default=str) + "\n")
        (out_dir / PROVENANCE_FILENAME).write_text(json.dumps(split_plan.provenance, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load_from_disk(str(out_dir))


assert len(COEFFICIENT_COLUMNS) == NUM_CHANNELS
