"""Stage-1 throughput: describe + render target + parse, frames per second on one core, on a real recording.

    python recipes/benchmarks/stage1.py [RECORDING.csv] [--repeats 5] [--out outputs/benchmark_stage1]

Runs in one process on one thread (per-core figure); also checks that every parsed frame equals the quantised
input, so the figure is for a pipeline that works, not just one that runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import new_report, write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECORDING = (
    Path(os.environ.get("SEMANTICFACE_SHARED_DATA", REPO.parent / "shared" / "data"))
    / "llf"
    / "alexdjulin__alex_rom_3.csv"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording", nargs="?", default=str(DEFAULT_RECORDING), help="Live Link Face CSV")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the recording (best is reported)")
    parser.add_argument("--out", default="outputs/benchmark_stage1", help="folder to write report.json into")
    args = parser.parse_args(argv)
    header = new_report("stage1", vars(args))

    from semanticface.contract import TargetConfig, parse_output, render_target
    from semanticface.llf import read_llf
    from semanticface.semantics import describe

    recording = read_llf(args.recording)
    frames = recording.frames
    config = TargetConfig()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core: a per-core figure

    def timed(step) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - start)
        return best

    targets: list[str] = []
    t_describe = timed(lambda: [describe(c.quantized(config.decimals)) for c in frames])
    t_render = timed(lambda: targets.__setitem__(slice(None), [render_target(c, config) for c in frames]))
    parsed: list = []
    t_parse = timed(lambda: parsed.__setitem__(slice(None), [parse_output(t) for t in targets]))
    mismatches = sum(
        p.coefficients.blendshapes.tolist() != c.quantized(config.decimals).blendshapes.tolist() or bool(p.issues)
        for p, c in zip(parsed, frames)
    )
    n = len(frames)
    # render_target includes describe(); the end-to-end figure is render + parse.
    results = {
        "recording": str(args.recording),
        "frames": n,
        "repeats": args.repeats,
        "cores": 1,
        "describe_frames_per_s": n / t_describe,
        "render_target_frames_per_s": n / t_render,
        "parse_frames_per_s": n / t_parse,
        "describe_render_parse_frames_per_s": n / (t_render + t_parse),
        "mean_target_chars": sum(map(len, targets)) / n,
        "round_trip_mismatches": mismatches,
        "python": sys.version.split()[0],
        "machine": platform.processor() or platform.machine(),
    }
    path = write_report(Path(args.out), {**header, **results})
    for key, value in results.items():
        print(f"{key:>36}: {value:.1f}" if isinstance(value, float) else f"{key:>36}: {value}")
    print(f"saved {path}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
