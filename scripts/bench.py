#!/usr/bin/env python3
"""Runs the CPU benchmarks and prints their headline figures as RESULT lines.

Each benchmark binary runs with repetitions; medians are read from its JSON.
Figures are also given as ratios to a reference measured in the same run.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run(binary: Path, reps: int = 5, extra=(), quiet: bool = False) -> dict:
    """Each benchmark's median real time in ns, from `reps` repetitions (`extra`: more flags, e.g. a filter)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([str(binary), f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=true",
                        f"--benchmark_out={out.name}", "--benchmark_out_format=json", *extra], check=True,
                       stdout=subprocess.DEVNULL if quiet else None)
        data = json.loads(Path(out.name).read_text())
    medians = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"]] = b["real_time"] if b["time_unit"] == "ns" else b["real_time"] * {"us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
    return medians


def main() -> int:
    build = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    m = run(build / "bench" / "registry_bench")
    for k, v in sorted(m.items()):
        print(f"median {k}: {v:.1f} ns")
    ar1 = m["BM_Registry_AcquireRelease/real_time/threads:1"]
    ar2 = m["BM_Registry_AcquireRelease/real_time/threads:2"]
    mutex = m["BM_Mutex_LockUnlock/threads:1"]
    print(f"RESULT acquire_release_ns={ar1:.0f}")
    print(f"RESULT acquire_release_2t_ns={ar2:.0f}")
    print(f"RESULT acquire_release_vs_mutex={ar1 / mutex:.1f}")
    print(f"RESULT list_1000_us={m['BM_Registry_List1000'] / 1e3:.1f}")
    print(f"RESULT rank_victims_1000_us={m['BM_Policy_RankVictims1000'] / 1e3:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
