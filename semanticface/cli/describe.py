"""`semanticface describe RECORDING.csv [--frame N]`: the stage-1 description and training target of a frame."""

from __future__ import annotations

import argparse

from semanticface.contract import TargetConfig, render_target
from semanticface.llf import read_llf
from semanticface.schema import FACS_NAMES
from semanticface.semantics import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", help="Live Link Face CSV recording")
    parser.add_argument("--frame", type=int, default=0, help="frame index (negative counts from the end; default 0)")
    parser.add_argument("--decimals", type=int, default=2, help="decimals of the coefficient values (default 2)")
    parser.add_argument("--include-pose", action="store_true", help="also emit the 9 head/eye pose channels")
    parser.add_argument(
        "--key-dialect", default="arkit", choices=["arkit", "llf", "mediapipe", "suffix"], help="key spelling"
    )
    parser.add_argument("--template-dir", default=None, help="directory of Jinja templates overriding prompts/")
    parser.add_argument(
        "--block-style", default="json", choices=["json", "compact"], help="coefficient block (default json)"
    )


def run(args: argparse.Namespace) -> int:
    config = TargetConfig(
        target_format="semantic",
        decimals=args.decimals,
        include_pose=args.include_pose,
        key_dialect=args.key_dialect,
        template_dir=args.template_dir,
        block_style=args.block_style,
    )
    recording = read_llf(args.recording)
    coefficients = recording.frame(args.frame)
    index = args.frame % len(recording)
    print(
        f"# {recording.path}: frame {index} of {len(recording)} ({recording.timecodes[index]}, {recording.fps:g} fps)"
    )
    description = describe(coefficients.quantized(config.decimals))
    units = ", ".join(f"{au} {FACS_NAMES.get(au, au)} {v:.2f}" for au, v in description.action_units.items())
    print("## Description")
    print(f"category: {description.category}; emotions: {', '.join(description.emotions) or 'none'}")
    print(f"active action units: {units or 'none'}")
    print(f"active regions: {', '.join(description.active_regions()) or 'none'}")
    print("## Training target")
    print(render_target(coefficients, config))
    return 0
