#!/usr/bin/env python3
"""Weights loading from the page cache, all in one run:
  the raw read() ceiling and our loader into CPU tensors (bench/weights_bench),
  safetensors and torch.load of the same tensors.
Prints RESULT load_vs_read (ceiling time / ours, so 1.0 is the ceiling), load_vs_safetensors and
load_vs_torch_load (theirs / ours: above 1, we are faster).

The read() ceiling is the best of 1, 2 and every core's threads, since our loader reads with several.
On CPU, safetensors.torch.load_file maps the file instead of copying it, so it is timed as a copy that owns
its memory, as ours does: safetensors.torch.load of the file's bytes. Each figure is the median of 5
repetitions after a warm-up; a ratio whose spread (the two sides' coefficients of variation combined) is over
10 % is printed as unstable, not as a result (scripts/bench_ratio.py).

  bench_weights.py BUILD_DIR [GiB]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load, save_file

from bench_ratio import MAX_SPREAD


def timed(fn, reps=5):
    """(median seconds, coefficient of variation) of `reps` calls after a warm-up."""
    fn()  # warm: page cache and allocator
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return statistics.median(times), statistics.stdev(times) / statistics.fmean(times)


def result(key, num, den):
    """RESULT key=num/den for (median, cv) pairs, or unstable when the combined spread is over the limit."""
    spread = (num[1] ** 2 + den[1] ** 2) ** 0.5
    print(f"{key}: spread {spread * 100:.1f} %")
    print(f"RESULT {key}={num[0] / den[0]:.2f}" if spread <= MAX_SPREAD else f"RESULT {key}=unstable")


def main() -> int:
    build = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    gib = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    work = Path(tempfile.mkdtemp(prefix="tp-bench-weights-"))
    st_path, pt_path = work / "model.safetensors", work / "model.pt"
    n = max(1, int(gib * 1024 / 32))  # 32 MiB bf16 tensors, like a transformer's linear layers
    g = torch.Generator().manual_seed(0)
    tensors = {f"blocks.{i}.weight": torch.randn(4096, 4096, generator=g).to(torch.bfloat16) for i in range(n)}
    save_file(tensors, st_path)
    torch.save(tensors, pt_path)
    del tensors
    size = os.path.getsize(st_path)
    print(f"file: {size / 2**30:.2f} GiB, {n} tensors")

    out = work / "bench.json"
    env = dict(os.environ, TP_BENCH_WEIGHTS=str(st_path))
    subprocess.run([str(build / "bench" / "weights_bench"), "--benchmark_repetitions=5",
                    "--benchmark_report_aggregates_only=true", f"--benchmark_out={out}",
                    "--benchmark_out_format=json"], check=True, env=env)
    stats = {}
    for b in json.loads(out.read_text())["benchmarks"]:
        if b.get("aggregate_name") in ("median", "cv"):
            name = re.sub(r"/min_warmup_time:[^/]*", "", b["run_name"])
            stats.setdefault(name, {})[b["aggregate_name"]] = b["real_time"] / (1e3 if b["aggregate_name"] == "median" else 1)
    figure = lambda name: (stats[name]["median"], stats[name]["cv"])  # (s, cv)
    reads = {n: figure(n) for n in stats if n.startswith("BM_Read_Ceiling/")}
    best_read = min(reads, key=lambda n: reads[n][0])
    ceiling, ours = reads[best_read], figure("BM_Load_CpuTensors/real_time")
    st = timed(lambda: load(st_path.read_bytes()))
    pt = timed(lambda: torch.load(pt_path, weights_only=True))
    gbps = lambda s: size / s / 1e9
    for name, (t, cv) in sorted(reads.items()):
        threads = name.split("/")[1]
        print(f"read() {threads:>2} thread(s) {t * 1e3:8.1f} ms  {gbps(t):6.2f} GB/s  cv {cv * 100:5.1f} %")
    for label, (t, cv) in (("twistedpic (cpu)", ours), ("safetensors (copy)", st), ("torch.load", pt)):
        print(f"{label:<19}{t * 1e3:8.1f} ms  {gbps(t):6.2f} GB/s  cv {cv * 100:5.1f} %")
    result("load_vs_read", ceiling, ours)
    result("load_vs_safetensors", st, ours)
    result("load_vs_torch_load", pt, ours)
    for p in (st_path, pt_path, out):
        p.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
