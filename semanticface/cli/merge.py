"""`semanticface merge`: merge a LoRA adapter into its base model and save a standalone checkpoint."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("adapter", help="adapter directory or Hub repo id (holds adapter_config.json)")
    parser.add_argument("--out", required=True, help="directory for the merged model (safetensors + processor)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")


def run(args: argparse.Namespace) -> int:
    from semanticface.inference import merge_adapter

    out = merge_adapter(args.adapter, args.out, dtype=args.dtype)
    print(f"merged model saved to {out}", file=sys.stderr)
    return 0
