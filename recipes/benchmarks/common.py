"""What every benchmark's ``report.json`` starts with (environment, settings, timings), and how it is written."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.schema import CHANNELS


def environment() -> dict[str, Any]:
    """Machine, library versions and the code's commit: enough to tell two reports' conditions apart."""
    import torch
    import transformers
    import trl

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "commit": commit or None,
        "load_average_at_start": list(os.getloadavg()),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process or of the largest worker process it waited for, in MiB."""
    peaks = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return max(peaks) / 1024  # Linux reports KiB


def new_report(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "environment": environment(),
        "settings": settings,
    }


def write_report(out: Path, report: dict[str, Any]) -> Path:
    """Write ``out/report.json`` atomically (a reader never sees half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(report, indent=2, default=str) + "\n")
    scratch.replace(path)
    return path


def balance_seeds(costs: dict[int, float], jobs: int) -> list[list[int]]:
    """Seeds split into at most ``jobs`` groups of near-equal total cost (longest first, each to the lightest
    group), each group in seed order; empty groups are left out."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    groups: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0.0] * jobs
    for seed in sorted(costs, key=lambda s: (-costs[s], s)):
        lightest = loads.index(min(loads))
        groups[lightest].append(seed)
        loads[lightest] += costs[seed]
    return [sorted(group) for group in groups if group]


def run_seed_workers(script: Path, argv: list[str], groups: list[list[int]], out: Path) -> None:
    """Run each group of seeds as ``script argv --only-seeds ...`` in its own process with one torch thread
    (two 1-thread processes use 2 cores without the slowdown two 2-thread jobs suffer side by side), each
    logging to ``out/worker<k>.log``; raises SystemExit naming the log of a worker that fails."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    workers = []
    for k, group in enumerate(groups):
        log = out / f"worker{k}.log"
        command = [sys.executable, str(script), *argv, "--only-seeds", *map(str, group)]
        print(f"worker {k}: seeds {group} -> {log}", flush=True)
        with log.open("w") as handle:
            workers.append((log, subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)))
    failed = [str(log) for log, worker in workers if worker.wait() != 0]
    if failed:
        raise SystemExit(f"seed worker(s) failed; see {', '.join(failed)}")


def add_source_argument(parser: argparse.ArgumentParser) -> None:
    """``--source``: which expressions the faces wear (one definition for the benchmarks that train a model)."""
    parser.add_argument(
        "--source",
        choices=("prototype", "llf"),
        default="prototype",
        help="expressions: basic-emotion prototypes (independent draws; the quickstart's, which the tiny model reads) "
        "or the real Live Link Face captures (recording/time-block holdout; at this scale no distilled tiny model "
        "beats the per-channel-median constant on them, see benchmarks/distill.py's report)",
    )


def expression_source(shared_llf: Path) -> str:
    """``llf`` when the real captures are there, else ``sparse`` random draws (said aloud: figures then differ)."""
    if any(shared_llf.glob("*.csv")):
        return "llf"
    print(f"WARNING: no Live Link Face captures at {shared_llf}: expressions are sparse random draws", flush=True)
    return "sparse"


def coefficient_values(coefficients: FaceCoefficients) -> list[float | None]:
    """A prediction as JSON-ready values in channel order (None = missing), for stored stage results."""
    return [None if name in coefficients.missing else float(v) for name, v in zip(CHANNELS, coefficients.values)]


def coefficients_from_values(values: list[float | None] | None) -> FaceCoefficients | None:
    """The inverse of :func:`coefficient_values`; a shorter list (e.g. 52 blendshapes) leaves the rest missing."""
    if values is None:
        return None
    padded = list(values) + [None] * (len(CHANNELS) - len(values))
    missing = frozenset(name for name, v in zip(CHANNELS, padded) if v is None)
    return FaceCoefficients(np.asarray([0.0 if v is None else v for v in padded], dtype=np.float64), missing)
