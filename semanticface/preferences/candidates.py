"""Candidate predictions for ranking, built from the model's own outputs only: its point estimate (median numbers
with forced decoding), K samples, and half-face perturbations of its point estimate; region-aware composition;
rendered and written as a candidate directory (format: :mod:`semanticface.preferences.manifest`).

Nothing here reads a dataset's coefficient columns: in a benchmark those are the truth, and a candidate built from
them would leak it into the pairs (tests feed datasets whose coefficient columns are removed or poisoned).

Region-aware mode ("upper"/"lower") starts from one base proposal and swaps in the judged half (``schema.FACE_HALVES``)
from each other proposal, so every candidate shows the same other half and people compare only the half asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semanticface.choices import check_choices
from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, render_target
from semanticface.errors import ConfigError
from semanticface.preferences.manifest import REGION_MODES, Candidate, CandidateSet, Item
from semanticface.render import Renderer
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX, FACE_HALVES

CANDIDATE_REGION_MODES = (*REGION_MODES, "alternate")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # whole string: .fullmatch


@dataclass
class CandidateConfig:
    num_samples: int = field(default=4, metadata={"help": "Model samples per image (spread over the temperatures)."})
    temperatures: tuple[float, ...] = field(
        default=(0.7, 1.0), metadata={"help": "Sampling temperatures, cycled over the samples."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass of model samples."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Upper bound on generated tokens per sample."})
    seed: int = field(default=0, metadata={"help": "Base seed of sampling and perturbations."})
    num_perturbations: int = field(
        default=0,
        metadata={
            "help": "Extra candidates: Gaussian noise on one face half of the model's own output (the judged half "
            "in region mode; upper and lower in turn otherwise)."
        },
    )
    include_own_output: bool = field(
        default=True, metadata={"help": "Offer the model's own point estimate (first, the base of region items)."}
    )
    own_output_estimate: str = field(
        default="median",
        metadata={
            "help": "Number readout of the own output with decoding='forced': 'median' (as evaluation reads the model) "
            "or 'mode'; free generation always reads greedy tokens.",
            "choices": ("median", "mode"),
        },
    )
    perturbation_scale: float = field(default=0.1, metadata={"help": "Std of the perturbation noise."})
    region_mode: str = field(
        default="full",
        metadata={
            "help": "'full', 'upper', 'lower' (candidates differ only in that half) or 'alternate'.",
            "choices": CANDIDATE_REGION_MODES,
        },
    )
    max_candidates: int = field(default=6, metadata={"help": "At most this many candidates per item."})
    render_size: int = field(default=192, metadata={"help": "Side of rendered candidate images in pixels."})
    identity: int = field(default=0, metadata={"help": "Renderer identity (avatar/mesh look) for all candidates."})
    batch_size: int = field(default=8, metadata={"help": "Images per generation batch."})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.num_perturbations and not self.include_own_output:
            raise ConfigError("num_perturbations perturb the model's own output: keep include_own_output")
        if self.num_samples < 0 or self.num_perturbations < 0 or self.max_candidates < 2:
            raise ConfigError("num_samples and num_perturbations must be >= 0, max_candidates >= 2")
        if self.num_samples and (not self.temperatures or min(self.temperatures) <= 0):
            raise ConfigError("temperatures must be a non-empty list of positive numbers")


@dataclass(frozen=True)
class Proposal:
    """A candidate before rendering."""

    coefficients: FaceCoefficients
    origin: Mapping[str, Any]
    raw_text: str | None = None


def perturb(
    coefficients: FaceCoefficients, scale: float, rng: np.random.Generator, half: str | None = None
) -> FaceCoefficients:
    """Gaussian noise on the blendshapes (only those of ``half``, "upper"/"lower", when given), clipped to [0, 1];
    pose and missing channels unchanged."""
    values = np.nan_to_num(coefficients.values.copy())
    names = BLENDSHAPES if half is None else FACE_HALVES[half]
    index = np.array([CHANNEL_INDEX[n] for n in names])
    values[index] = np.clip(values[index] + rng.normal(0.0, scale, len(index)), 0.0, 1.0)
    return FaceCoefficients(values, coefficients.missing)


def compose_half(base: FaceCoefficients, donor: FaceCoefficients, half: str) -> FaceCoefficients:
    """``base`` with the channels of ``half`` ("upper"/"lower") taken from ``donor``."""
    values = np.nan_to_num(base.values.copy())
    missing = set(base.missing)
    for name in FACE_HALVES[half]:
        values[CHANNEL_INDEX[name]] = np.nan_to_num(donor.values[CHANNEL_INDEX[name]])
        if name in donor.missing:
            missing.add(name)
        else:
            missing.discard(name)
    return FaceCoefficients(values, frozenset(missing))


def region_proposals(proposals: Sequence[Proposal], half: str) -> list[Proposal]:
    """The first proposal, then the first with each other's ``half`` swapped in."""
    if not proposals:
        return []
    base = proposals[0]
    out = [Proposal(base.coefficients, {**base.origin, "region_base": True}, base.raw_text)]
    for donor in proposals[1:]:
        out.append(
            Proposal(
                compose_half(base.coefficients, donor.coefficients, half),
                {"kind": "composed", "half": half, "base": dict(base.origin), "donor": dict(donor.origin)},
            )
        )
    return out


def _distinct(proposals: Iterable[Proposal], config: TargetConfig, limit: int) -> list[tuple[Proposal, str]]:
    # Candidates identical once rendered as text would force ties; keep the first of each.
    seen: set[str] = set()
    out = []
    for proposal in proposals:
        text = render_target(proposal.coefficients, config)
        if text not in seen:
            seen.add(text)
            out.append((proposal, text))
        if len(out) == limit:
            break
    return out


def item_region(config: CandidateConfig, index: int) -> str:
    if config.region_mode == "alternate":
        return ("upper", "lower")[index % 2]
    return config.region_mode


def build_item(
    root: Path,
    item_id: str,
    image: Image.Image,
    proposals: Sequence[Proposal],
    renderer: Renderer,
    *,
    region: str,
    target_config: TargetConfig,
    config: CandidateConfig,
    metadata: Mapping[str, Any] | None = None,
) -> Item | None:
    """Render the distinct proposals and save the image; None when fewer than 2 distinct candidates remain."""
    if not _SAFE_ID.fullmatch(item_id):
        raise ConfigError(f"item id {item_id!r} must be letters, digits, '.', '_' or '-' (it names files)")
    if region != "full":
        proposals = region_proposals(proposals, region)
    distinct = _distinct(proposals, target_config, config.max_candidates)
    if len(distinct) < 2:
        return None
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "renders").mkdir(parents=True, exist_ok=True)
    image_path = f"images/{item_id}.png"
    image.convert("RGB").save(root / image_path)
    candidates = []
    for j, (proposal, completion) in enumerate(distinct):
        render_path = f"renders/{item_id}_c{j}.png"
        renderer.render(proposal.coefficients, identity=config.identity, size=config.render_size).save(
            root / render_path
        )
        candidates.append(
            Candidate(
                f"c{j}", render_path, proposal.coefficients, completion, dict(proposal.origin), proposal.raw_text
            )
        )
    return Item(item_id, image_path, tuple(candidates), region, dict(metadata or {}))


def sample_proposals(
    predictor: Any, images: Sequence[Image.Image], config: CandidateConfig, *, progress: bool = False
) -> list[list[Proposal]]:
    """``num_samples`` parsed model samples per image, temperatures cycled; unparseable samples are dropped."""
    out: list[list[Proposal]] = [[] for _ in images]
    if not config.num_samples:
        return out
    per_temperature = [
        (t, sum(1 for s in range(config.num_samples) if s % len(config.temperatures) == i))
        for i, t in enumerate(config.temperatures)
    ]
    for i, (temperature, count) in enumerate(per_temperature):
        if not count:
            continue
        seed = config.seed * 1000 + i
        flat = predictor.predict(
            images,
            batch_size=config.batch_size,
            do_sample=True,
            temperature=temperature,
            top_p=config.top_p,
            seed=seed,
            num_return_sequences=count,
            max_new_tokens=config.max_new_tokens,
            progress=progress,
        )
        for image_index in range(len(images)):
            for k, prediction in enumerate(flat[image_index * count : (image_index + 1) * count]):
                if prediction.coefficients is None:
                    continue
                origin = {"kind": "sample", "temperature": temperature, "seed": seed, "index": k}
                out[image_index].append(Proposal(prediction.coefficients, origin, prediction.raw_text))
    return out


def own_output_proposals(
    predictor: Any, images: Sequence[Image.Image], config: CandidateConfig, *, progress: bool = False
) -> list[Proposal | None]:
    """The model's point estimate per image (None where it does not parse): median numbers with forced decoding."""
    if not config.include_own_output:
        return [None for _ in images]
    forced = getattr(predictor, "decoding", "generate") == "forced"
    estimate = config.own_output_estimate if forced else "mode"
    predictions = predictor.predict(
        images,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        number_estimate=estimate,
        progress=progress,
    )
    return [
        None
        if p.coefficients is None
        else Proposal(p.coefficients, {"kind": "own_output", "number_estimate": estimate}, p.raw_text)
        for p in predictions
    ]


def perturbation_proposals(own: Proposal, config: CandidateConfig, region: str, rng_seed: int) -> list[Proposal]:
    """``num_perturbations`` half-face perturbations of the model's own output: the judged half of a region item,
    the upper and lower half in turn for a full-face item."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for p in range(config.num_perturbations):
        half = region if region != "full" else ("upper", "lower")[p % 2]
        origin = {"kind": "perturbation", "of": "own_output", "half": half, "scale": config.perturbation_scale}
        out.append(Proposal(perturb(own.coefficients, config.perturbation_scale, rng, half), {**origin, "index": p}))
    return out


def generate_candidates(
    out_dir: str | Path,
    images: Sequence[Image.Image],
    renderer: Renderer,
    *,
    predictor: Any,
    item_ids: Sequence[str] | None = None,
    metadata: Sequence[Mapping[str, Any]] | None = None,
    target_config: TargetConfig | None = None,
    config: CandidateConfig | None = None,
    progress: bool = False,
) -> CandidateSet:
    """Predict, sample, perturb, compose, render and write a candidate directory; returns it (saved).

    Every candidate comes from ``predictor``'s outputs for the image alone; no coefficient column is an input.
    """
    config = config or CandidateConfig()
    if predictor is None:
        raise ConfigError("candidates are built from a model's outputs: give a predictor")
    if target_config is None:
        target_config = getattr(predictor, "target_config", None) or TargetConfig()
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    ids = list(item_ids) if item_ids is not None else [f"item-{i:05d}" for i in range(len(images))]
    own = own_output_proposals(predictor, images, config, progress=progress)
    samples = sample_proposals(predictor, images, config, progress=progress)
    items = []
    boundary: float | None = None  # where the app dims the half not judged (same look and size for every render)
    bar = _progress_bar(len(images), progress)  # predicting and sampling show their own bars
    for i, image in enumerate(images):
        region = item_region(config, i)
        if region != "full" and boundary is None:
            from semanticface.preferences.halves import half_boundary

            boundary = half_boundary(renderer, identity=config.identity, size=config.render_size)
        proposals: list[Proposal] = []
        own_i = own[i]
        if own_i is not None:
            proposals.append(own_i)
        proposals += samples[i]
        if own_i is not None:
            proposals += perturbation_proposals(own_i, config, region, config.seed * 1_000_003 + i)
        item = build_item(
            root,
            ids[i],
            image,
            proposals,
            renderer,
            region=region,
            target_config=target_config,
            config=config,
            metadata=_with_boundary(metadata[i] if metadata is not None else {"index": i}, region, boundary),
        )
        if item is not None:
            items.append(item)
        bar.update(1)
    bar.close()
    candidate_set = CandidateSet(root, items)
    candidate_set.save()
    return candidate_set


def _with_boundary(metadata: Mapping[str, Any], region: str, boundary: float | None) -> dict[str, Any]:
    return {**metadata, "half_boundary": boundary} if region != "full" and boundary is not None else dict(metadata)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="candidates", unit="image", disable=not enabled)
