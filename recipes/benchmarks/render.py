"""Renderer throughput (images/s per core at 256x256) and the time to build a 10,000-sample dataset.

    python recipes/benchmarks/render.py --out outputs/benchmark_render
    python recipes/benchmarks/render.py --mesh-dir ../shared/data/meshes/ict_facekit --dataset-n 10000

"Per core" is CPU time of this single-threaded process (numpy/BLAS threads pinned to 1), so the figure does not
depend on how busy the machine's other cores are; wall-clock rates are reported beside it.
"""

from __future__ import annotations

import os

# One core: pin numpy's thread pools before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import new_report, write_report  # noqa: E402

DEFAULT_MESH_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "meshes" / "ict_facekit"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="image side")
    parser.add_argument("--avatar-n", type=int, default=1000, help="images per avatar style")
    parser.add_argument("--mesh-n", type=int, default=100, help="mesh images")
    parser.add_argument("--mesh-dir", default=str(DEFAULT_MESH_DIR), help="ICT-FaceKit folder (skipped if absent)")
    parser.add_argument("--dataset-n", type=int, default=10000, help="samples in the dataset build (0 skips)")
    parser.add_argument("--num-proc", type=int, default=1, help="processes for the dataset build")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write report.json (benchmarks/common.py's header) into this folder")
    return parser.parse_args(argv)


def measure(renderer, samples, size: int) -> dict[str, float]:
    renderer.render(samples[0], size=size)  # warm-up: identity caches, rig precomputation
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for k, coefficients in enumerate(samples):
        renderer.render(coefficients, identity=k % 50, size=size)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "images": len(samples),
        "images_per_s_per_core": round(len(samples) / cpu, 1),
        "images_per_s_wall": round(len(samples) / wall, 1),
        "ms_per_image_cpu": round(1000 * cpu / len(samples), 2),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    header = new_report("render", vars(args))
    from semanticface.render import get_renderer
    from semanticface.sampling import SamplingConfig, sample_expressions
    from semanticface.synth import SynthConfig, synthesize

    report: dict = {"size": args.size, "machine": platform.processor() or platform.machine(), "renderers": {}}
    samples = [s.coefficients for s in sample_expressions(SamplingConfig(source="sparse"), args.avatar_n, seed=1)]
    for name in ("avatar-flat", "avatar-shaded"):
        report["renderers"][name] = measure(get_renderer(name), samples, args.size)
        print(f"{name}: {report['renderers'][name]}", flush=True)
    if args.mesh_n and Path(args.mesh_dir).is_dir():
        renderer = get_renderer("mesh", mesh_dir=args.mesh_dir)
        report["renderers"]["mesh-ict"] = measure(renderer, samples[: args.mesh_n], args.size)
        report["renderers"]["mesh-ict"]["vertices"] = int(len(renderer.rig.vertices))
        print(f"mesh-ict: {report['renderers']['mesh-ict']}", flush=True)
    else:
        print(f"mesh: skipped ({args.mesh_dir} not found)")
    if args.dataset_n:
        out = Path(tempfile.mkdtemp(prefix="semanticface-bench-"))
        try:
            config = SynthConfig(renderer="avatar", n=args.dataset_n, size=args.size, seed=args.seed, identities=100)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            dataset = synthesize(config, out / "ds", num_proc=args.num_proc)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            size_mb = sum(p.stat().st_size for p in (out / "ds").rglob("*") if p.is_file()) / 2**20
            report["dataset_build"] = {
                "renderer": "avatar (flat+shaded)",
                "samples": sum(len(s) for s in dataset.values()),
                "splits": {k: len(v) for k, v in dataset.items()},
                "num_proc": args.num_proc,
                "wall_s": round(wall, 1),
                "main_process_cpu_s": round(cpu, 1),
                "on_disk_mb": round(size_mb, 1),
                "what": "sample + render + PNG encode + Arrow write + save_to_disk, at the given size",
            }
            print(f"dataset build: {report['dataset_build']}", flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    report = {**header, **report}
    print(json.dumps(report, indent=2, default=str))
    if args.out:
        print(f"saved {write_report(Path(args.out), report)}")
    return report


if __name__ == "__main__":
    main()
