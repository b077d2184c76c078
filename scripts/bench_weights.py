#!/usr/bin/env python3
"""Weights loading from the page cache, all in one run:
  the raw read() ceiling and our loader into CPU tensors (bench/weights_bench),
  safetensors.torch.load_file, and torch.load of the same tensors.
Prints RESULT load_vs_read (ours / ceiling, throughput) and RESULT load_vs_safetensors.

  bench_weights.py BUILD_DIR [GiB]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def median_seconds(fn, reps=5):
    fn()  # warm: page cache and allocator
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return statistics.median(times)


def touch(tensors):
    for t in tensors.values():
        t.view(-1).view(torch.uint8)[::4096].sum()
    return tensors


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
    medians = {b["run_name"]: b["real_time"] / 1e3 for b in json.loads(out.read_text())["benchmarks"]
               if b.get("aggregate_name") == "median"}  # ms -> s
    ceiling = medians["BM_Read_Ceiling/real_time"]
    ours = medians["BM_Load_CpuTensors/real_time"]
    # load_file maps the file and faults pages in on first use: touch one byte per
    # page so that its tensors are as resident as ours when the clock stops.
    st = median_seconds(lambda: touch(load_file(st_path)))
    pt = median_seconds(lambda: torch.load(pt_path, weights_only=True))
    gbps = lambda s: size / s / 1e9
    print(f"read() ceiling      {ceiling * 1e3:8.1f} ms  {gbps(ceiling):6.2f} GB/s")
    print(f"twistedpic (cpu)    {ours * 1e3:8.1f} ms  {gbps(ours):6.2f} GB/s")
    print(f"safetensors (+touch){st * 1e3:8.1f} ms  {gbps(st):6.2f} GB/s")
    print(f"torch.load          {pt * 1e3:8.1f} ms  {gbps(pt):6.2f} GB/s")
    print(f"RESULT load_vs_read={ceiling / ours:.2f}")
    print(f"RESULT load_vs_safetensors={st / ours:.2f}")
    print(f"RESULT load_vs_torch_load={pt / ours:.2f}")
    for p in (st_path, pt_path, out):
        p.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
