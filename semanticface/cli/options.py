"""Command-line options shared by the subcommands that run a model."""

from __future__ import annotations

import argparse

from semanticface.decoding.forced import NUMBER_ESTIMATES
from semanticface.inference import DECODING_MODES


def add_decoding_arguments(parser: argparse.ArgumentParser, *, numbers: bool = True) -> None:
    """``--decoding`` (plain ``generate`` or template-forced) and, for point predictions, ``--numbers``."""
    parser.add_argument(
        "--decoding",
        choices=DECODING_MODES,
        default="generate",
        help="plain generate, or forced: the target's fixed text is appended, only values and descriptions are "
        "generated, and every output parses",
    )
    if numbers:
        parser.add_argument(
            "--numbers",
            choices=NUMBER_ESTIMATES,
            default="mode",
            help="coefficient values: greedy tokens (mode) or the median of the model's distribution (least "
            "expected absolute error; needs --decoding forced)",
        )
