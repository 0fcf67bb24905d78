"""CI's learning guard: fail when the README's main job leaves a model that does not read faces.

Reads the ``heldout_summary.json`` the distillation recipe writes (held-out identities and expressions; forced
decoding with median numbers) and exits non-zero unless the model's MAE is below ``--max-ratio`` times the
per-channel-median constant's on the same rows. A guard against regressions that make the model blind, not a timing.

    python .ci/learning_guard.py outputs/quickstart/heldout_summary.json --max-ratio 0.9
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("summary", type=Path)
    parser.add_argument("--max-ratio", type=float, default=0.9)
    args = parser.parse_args(argv)
    summary = json.loads(args.summary.read_text())
    ratio = summary.get("ratio_to_median_constant")
    print(
        f"learning guard: held-out MAE {summary.get('mae')} vs per-channel median constant "
        f"{summary.get('median_constant_mae')} on {summary.get('rows')} rows: ratio {ratio} (must be < {args.max_ratio})"
    )
    if ratio is None or not ratio < args.max_ratio:
        print("learning guard FAILED: the main job's model does not read faces", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
