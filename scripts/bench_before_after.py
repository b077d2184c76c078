#!/usr/bin/env python3
"""A change's effect on the headline CPU figures: two builds measured in the same run.

    bench_before_after.py BEFORE_BUILD AFTER_BUILD [--rounds 6] [--size 128] [--steps 5] [--threads 2]

Each build needs bench/registry_bench and bench/sd3_bench (-DTP_BUILD_BENCHMARKS=ON). Every round runs
both builds, alternating which goes first; the first round is a warm-up and is discarded. For each
figure it prints the per-side medians, the after/before ratio of every round, and their spread
((max - min) / median): a ratio whose spread is over 10 % is not a result.
  RESULT acquire_release_ns_before=...  acquire_release_ns_after=...  acquire_release_after_vs_before=...
  RESULT sd3_step_after_vs_before=...   sd3_generate_after_vs_before=...
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (scripts/bench.py: Google Benchmark medians)

ACQUIRE = "BM_Registry_AcquireRelease/real_time/threads:1"


def acquire_release_ns(build: Path) -> float:
    return bench.run(build / "bench" / "registry_bench", reps=3, extra=[f"--benchmark_filter=^{ACQUIRE}$"],
                     quiet=True)[ACQUIRE]


def sd3(build: Path, folder: Path, args) -> dict:
    out = subprocess.run([str(build / "bench" / "sd3_bench"), str(folder), str(args.size), str(args.size),
                          str(args.steps), "3", str(args.threads)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def report(name: str, before: list, after: list) -> float:
    ratios = [a / b for a, b in zip(after, before)]
    ratio = statistics.median(ratios)
    spread = (max(ratios) - min(ratios)) / ratio
    print(f"{name}: before {statistics.median(before):.4g}  after {statistics.median(after):.4g}  "
          f"after/before {ratio:.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)}; spread {spread:.1%}"
          f"{', NOT A RESULT' if spread > 0.10 else ''})")
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder = args.after / "sd3_bench_model" / "bench"
    if not (folder / "model_index.json").exists():
        subprocess.run([sys.executable, str(HERE / "sd3_reference.py"), str(folder.parent), "--variant", "bench"],
                       check=True, stdout=subprocess.DEVNULL)
    acq = {"before": [], "after": []}
    step = {"before": [], "after": []}
    gen = {"before": [], "after": []}
    for r in range(args.rounds + 1):
        sides = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for side in sides:
            build = getattr(args, side)
            a = acquire_release_ns(build)
            s = sd3(build, folder, args)
            if r == 0:
                continue  # warm-up
            acq[side].append(a)
            step[side].append(s["step_s"])
            gen[side].append(s["generate_s"])
    ar = report("acquire_release_ns", acq["before"], acq["after"])
    sr = report("sd3 step_s", step["before"], step["after"])
    gr = report("sd3 generate_s", gen["before"], gen["after"])
    print(f"RESULT acquire_release_ns_before={statistics.median(acq['before']):.0f}")
    print(f"RESULT acquire_release_ns_after={statistics.median(acq['after']):.0f}")
    print(f"RESULT acquire_release_after_vs_before={ar:.3f}")
    print(f"RESULT sd3_step_after_vs_before={sr:.3f}")
    print(f"RESULT sd3_generate_after_vs_before={gr:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
