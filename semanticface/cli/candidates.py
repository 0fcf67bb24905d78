"""`semanticface candidates`: a model's own output, its samples and half-face perturbations of its output, rendered
into a directory for ranking. A --dataset gives images only: its coefficient columns are never read."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from semanticface.cli.options import add_dataclass_arguments, add_decoding_arguments, dataclass_from_arguments
from semanticface.preferences.candidates import CandidateConfig
from semanticface.render import RENDERER_NAMES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="a folder of face images")
    source.add_argument(
        "--dataset", help="a dataset (save_to_disk dir or Hub id) in the semanticface row layout; only its images "
        "are read"
    )  # fmt: skip
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--out", required=True, help="candidate directory to write")
    parser.add_argument("--model", help="trained model (adapter or full) the candidates come from (required)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="run code and use prompt templates shipped with --model"
    )
    add_decoding_arguments(parser, numbers=False)
    # The candidate settings are CandidateConfig's fields, flag for flag (defaults, help and choices from there).
    add_dataclass_arguments(parser, CandidateConfig)
    parser.add_argument(
        "--no-own-output", dest="include_own_output", action="store_false", help="= --no-include-own-output"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--renderer", default="avatar", choices=RENDERER_NAMES, help="candidate renderer")
    parser.add_argument("--mesh-dir", help="mesh folder for --renderer mesh")
    parser.add_argument("--limit", type=int, help="use only the first N images")


def run(args: argparse.Namespace) -> int:
    from semanticface.errors import ConfigError, DatasetError
    from semanticface.images import read_image
    from semanticface.preferences.candidates import generate_candidates
    from semanticface.render import get_renderer

    config = dataclass_from_arguments(CandidateConfig, args)
    if args.images:
        folder = Path(args.images)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not a folder")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
        if not paths:
            raise DatasetError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        images = [read_image(path) for path in paths]  # upright, 8-bit RGB; ImageReadError names a bad file
        ids = [_safe_id(p.stem, i) for i, p in enumerate(paths)]
        metadata: list[dict[str, Any]] = [{"source": p.name} for p in paths]
    else:
        from semanticface.preferences.rounds import load_rows, row_images

        rows = load_rows(args.dataset, args.split)
        if "images" not in rows.column_names:
            raise DatasetError(f"{args.dataset}: no 'images' column")
        rows = rows.select_columns(["images"])  # the coefficient columns may be the truth: never read them
        indices = list(range(len(rows)))[: args.limit]
        images = row_images(rows, indices)
        ids = [f"row-{i:06d}" for i in indices]
        metadata = [{"row": i} for i in indices]
    if not args.model:
        raise ConfigError("give --model: candidates are the model's own output, its samples and perturbations of it")
    # Everything that can be wrong in the arguments fails before the model loads.
    renderer = get_renderer(args.renderer, **({"mesh_dir": args.mesh_dir} if args.renderer == "mesh" else {}))
    from semanticface.inference import SemanticFacePredictor

    predictor = SemanticFacePredictor.from_pretrained(
        args.model, decoding=args.decoding, trust_remote_code=args.trust_remote_code
    )
    out = generate_candidates(
        args.out,
        images,
        renderer,
        predictor=predictor,
        item_ids=ids,
        metadata=metadata,
        config=config,
        progress=not args.quiet,
    )
    skipped = len(images) - len(out)
    print(f"{len(out)} items written to {out.root}" + (f" ({skipped} had < 2 distinct candidates)" if skipped else ""))
    return 0


def _safe_id(stem: str, index: int) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip(".-_")[:80]
    return f"{index:05d}-{cleaned}" if cleaned else f"item-{index:05d}"
