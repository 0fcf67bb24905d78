"""The few lines a distillation run ends with: where the model is, how it reads held-out faces against the
constants, and what to run next. Also saved as ``heldout_summary.json`` (CI's learning guard reads it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SUMMARY_FILENAME = "heldout_summary.json"


def heldout_summary(
    metrics: dict[str, float], *, output_dir: str, target_format: str, decoding: str
) -> dict[str, Any]:
    """The held-out figures of the final generation eval (``eval_gen_*``), JSON-ready."""

    def figure(key: str) -> float | None:
        value = metrics.get(f"eval_gen_{key}")
        return None if value is None or not math.isfinite(float(value)) else round(float(value), 5)

    mae, median, neutral = figure("mae"), figure("median_mae"), figure("neutral_mae")
    ratio = round(mae / median, 4) if mae is not None and median else None
    return {
        "output_dir": output_dir,
        "target_format": target_format,
        "decoding": decoding,
        "rows": int(metrics.get("eval_gen_samples", 0)),
        "mae": mae,
        "median_constant_mae": median,
        "neutral_mae": neutral,
        "ratio_to_median_constant": ratio,
        "parse_failure_rate": figure("parse_failure_rate"),
        "spread_ratio": figure("spread_ratio"),
        "beats_median_constant": bool(ratio is not None and ratio < 1),
    }


def format_summary(summary: dict[str, Any]) -> str:
    out = summary["output_dir"]
    lines = [f"model: {out} ({summary['target_format']} target); load it with SemanticFacePredictor.from_pretrained"]
    if summary["mae"] is None:
        lines.append("no held-out evaluation ran (no eval split, or eval_generate_samples: 0)")
    else:
        lines.append(
            f"held-out faces ({summary['rows']} rows, {summary['decoding']}): MAE {summary['mae']:.4f} vs per-channel "
            f"median constant {summary['median_constant_mae']:.4f} (ratio {summary['ratio_to_median_constant']:.2f})"
            f", neutral {summary['neutral_mae']:.4f}"
        )
        if summary["beats_median_constant"]:
            lines.append("it beats the best constant face: the model reads the image")
        else:
            lines.append(
                "WARNING: it does not beat the best constant face: the model does not read the image yet "
                "(train longer, or give a random model eyes first: vision_pretrain_steps)"
            )
    lines.append(f"next: semanticface predict my_face.jpg --model {out} --out my_face.csv --decoding forced")
    return "\n".join(lines)


def write_summary(summary: dict[str, Any], output_dir: str | Path) -> Path:
    path = Path(output_dir) / SUMMARY_FILENAME
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def report_heldout(metrics: dict[str, float], *, output_dir: str, script_args: Any) -> dict[str, Any]:
    """Print the run's closing lines and save them beside the model."""
    decoding = f"{script_args.eval_decoding} decoding, {script_args.eval_numbers} numbers"
    summary = heldout_summary(
        metrics, output_dir=output_dir, target_format=script_args.target_format, decoding=decoding
    )
    write_summary(summary, output_dir)
    print("\n== semanticface distill: done ==\n" + format_summary(summary), flush=True)
    return summary
