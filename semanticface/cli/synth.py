"""`semanticface synth --renderer avatar|mesh --n N --out DIR`: render a synthetic dataset with known coefficients."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from semanticface.errors import ConfigError
from semanticface.sampling import SOURCES, SamplingConfig
from semanticface.splits import EXPRESSION_HOLDOUTS
from semanticface.synth import PROVENANCE_FILENAME, SynthConfig, parse_splits, synthesize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--renderer", choices=["avatar", "mesh"], default="avatar", help="face renderer (default avatar)"
    )
    parser.add_argument("--n", type=int, required=True, help="number of images over all splits")
    parser.add_argument("--out", required=True, help="output folder (datasets.save_to_disk layout)")
    parser.add_argument("--seed", type=int, default=0, help="seed for expressions, identities and splits")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument(
        "--styles", default="flat,shaded", help="comma-separated avatar styles to mix (default flat,shaded)"
    )
    parser.add_argument("--identities", type=int, default=40, help="number of distinct identities (default 40)")
    parser.add_argument(
        "--splits", default="train=0.8,validation=0.1,test=0.1", help="split=fraction list, split by identity"
    )
    parser.add_argument("--source", choices=SOURCES, default=None, help="expression source (default llf if "
                        "--recordings is given, else sparse)")  # fmt: skip
    parser.add_argument("--recordings", action="append", default=[], help="Live Link Face CSV path or glob "
                        "(repeatable; quote globs)")  # fmt: skip
    parser.add_argument("--mix", type=float, default=0.3, help="chance an llf sample blends two frames")
    parser.add_argument("--jitter", type=float, default=0.02, help="Gaussian noise std on llf blendshapes")
    parser.add_argument("--head-pose", type=float, default=0.3, help="max |head yaw/pitch/roll| drawn (0-1)")
    parser.add_argument(
        "--mesh-dir",
        default=os.environ.get("SEMANTICFACE_MESH_DIR"),
        help="rig for --renderer mesh: OBJ + npz folder or .glb/.gltf (default $SEMANTICFACE_MESH_DIR)",
    )
    parser.add_argument(
        "--expression-holdout",
        choices=EXPRESSION_HOLDOUTS,
        default="auto",
        help="split recorded expressions too: recording, block (time blocks with a gap), auto, none (leaks)",
    )
    parser.add_argument("--block-frames", type=int, default=120, help="frames per time block (block holdout)")
    parser.add_argument("--block-gap", type=int, default=30, help="frames dropped between blocks of two splits")
    parser.add_argument("--num-proc", type=int, default=None, help="worker processes for rendering")


def run(args: argparse.Namespace) -> int:
    source = args.source or ("llf" if args.recordings else "sparse")
    if source == "llf" and not args.recordings:
        raise ConfigError("--source llf needs --recordings (Live Link Face CSV paths or globs)")
    sampling = SamplingConfig(
        source=source,
        recordings=tuple(args.recordings),
        mix_probability=args.mix,
        jitter=args.jitter,
        head_pose=args.head_pose,
    )
    config = SynthConfig(
        renderer=args.renderer,
        n=args.n,
        size=args.size,
        seed=args.seed,
        styles=tuple(s.strip() for s in args.styles.split(",") if s.strip()),
        identities=args.identities,
        splits=parse_splits(args.splits),
        sampling=sampling,
        mesh_dir=args.mesh_dir,
        expression_holdout=args.expression_holdout,
        block_frames=args.block_frames,
        block_gap=args.block_gap,
    )
    start = time.perf_counter()
    dataset = synthesize(config, args.out, num_proc=args.num_proc)
    seconds = time.perf_counter() - start
    total = sum(len(split) for split in dataset.values())
    for name, split in dataset.items():
        print(f"{name}: {len(split)} images, identities {sorted(set(split['identity']))}")
    provenance = json.loads((Path(args.out) / PROVENANCE_FILENAME).read_text())
    print(f"expressions: {provenance.get('expression_holdout')} holdout (see {PROVENANCE_FILENAME})")
    for name, check in provenance.get("nearest_training_expression", {}).items():
        print(
            f"  {name}: {check['shared_source_frame_fraction']:.0%} of rows reuse a training frame; nearest training "
            f"expression median {check['median']:.3f} (mean |diff| over blendshapes)"
        )
    print(f"wrote {total} images to {args.out} in {seconds:.1f} s ({total / seconds:.1f} images/s)")
    return 0
