#!/usr/bin/env python3
"""What the C ABI and the Python binding add to one default-model image, against the C++ CLI, in the same run.

    bench_overhead.py BUILD_DIR [--rounds 5] [--per-process 3] [--threads 1] [--no-process] [--python PY] [--python-path DIR]

All three sides run models/tiny-sd3 (32x32, the model's 20 steps, fp32) from one config, the same prompt and
seeds, and time the generate call alone (wall clock around it), in a process that makes N+1 calls:
  C++     BUILD/bench/overhead_cpp (bench/overhead_cpp.cpp): tp::Pipeline::generate
  C       scripts/bench_overhead.c (compiled here, into a temporary folder): tp_pipeline_generate
  Python  the binding (bindings/python), Pipeline.generate
The first call (lazy loads) is a warm-up and is discarded. The sides alternate, in a rotated order each round,
so drift in the machine's speed hits all three. Between processes, run-to-run noise on a shared CPU is larger
than what a binding adds, so the headline divides each call's wall time by the library's own timer of the same
call (GenerateResult timings.total_s, which starts inside Pipeline::generate), and that by the same figure for
C++:
  RESULT capi_overhead=<C (wall / total) / C++ (wall / total)>       (target <= 1.02)
  RESULT python_overhead=<Python (wall / total) / C++ (wall / total)> (target <= 1.05)
It charges each binding with everything outside the library's timer: argument conversion, the C shim, ctypes,
result wrapping. The between-process ratio (each round's median call over the C++ one) is printed beside it
as a check.
A ratio whose spread over the calls is over 10 % is printed as not a result (scripts/bench_ratio.py). The per-call "wall - library total" lines measure what each binding adds outside the library's own
timer. With processes on (default), whole-process times of one image (the CLI, build/examples/tp_c_generate,
examples/python/generate.py) are printed too, for information.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_ratio import result_line

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a red circle on a white background"

PY_SIDE = r"""
import json, sys, time
import twistedpic
config_file, name, prompt, seed, count = sys.argv[1:6]
with twistedpic.Registry.from_string(open(config_file).read()) as registry, registry.pipeline(name) as pipeline:
    for i in range(int(count)):
        t0 = time.perf_counter()
        [image] = pipeline.generate(prompt, seed=int(seed) + i)
        t1 = time.perf_counter()
        print(json.dumps({"wall_s": t1 - t0, "total_s": image.info.total_s}), flush=True)
        del image
"""


def spread(xs):
    """(median, min, max, relative median absolute deviation)."""
    med = statistics.median(xs)
    mad = statistics.median(abs(x - med) for x in xs)
    return med, min(xs), max(xs), mad / med if med else 0.0


def fmt(name, xs, unit_ms=True):
    med, lo, hi, rmad = spread(xs)
    k = 1e3 if unit_ms else 1.0
    return (f"  {name:<34} median {med * k:9.3f} ms   min {lo * k:9.3f}   max {hi * k:9.3f}   "
            f"MAD {rmad * 100:5.2f} %   (n={len(xs)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP_NUM_THREADS/MKL_NUM_THREADS for every side (1: robust on a shared, busy CPU)")
    ap.add_argument("--per-process", type=int, default=3, help="timed calls per process, after one warm-up")
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process timings")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--model-dir", type=Path, default=REPO / "models" / "tiny-sd3")
    ap.add_argument("--python", default=str(Path(os.environ.get("TP_VENV", Path.home() / ".cache/twistedpic/venv"))
                                              / "bin" / "python"))
    ap.add_argument("--python-path", type=Path, default=REPO / "bindings" / "python",
                    help="where the twistedpic package is (default: bindings/python)")
    args = ap.parse_args()
    if args.rounds < 5:
        ap.error("--rounds must be at least 5")
    build = args.build.resolve()
    lib, cli, cpp_bin = build / "libtwistedpic.so", build / "twistedpic", build / "bench" / "overhead_cpp"
    for f in (lib, cli, cpp_bin):
        if not f.exists():
            sys.exit(f"{f} does not exist: build first")
    model = args.model_dir.resolve()
    calls = args.per_process + 1

    tmp = Path(tempfile.mkdtemp(prefix="tp_bench_overhead_"))
    try:
        return measure(args, build, lib, cli, cpp_bin, model, calls, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args, build, lib, cli, cpp_bin, model, calls, tmp) -> int:
    config = tmp / "config.json"
    config.write_text(json.dumps({"models": {"default": {"path": str(model), "pipeline_type": "sd3",
                                                         "dtype": "fp32"}}}))
    c_bin = tmp / "bench_overhead"
    subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'capi' / 'include'}",
                    f"-I{build / 'generated' / 'include'}", str(REPO / "scripts" / "bench_overhead.c"), "-o",
                    str(c_bin), f"-L{build}", "-ltwistedpic", f"-Wl,-rpath,{build}"], check=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    py_env = dict(env, PYTHONPATH=str(args.python_path.resolve()), TWISTEDPIC_LIBRARY=str(lib),
                  PYTHONDONTWRITEBYTECODE="1")

    def run_json(cmd, env=None):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        out = proc.stdout
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if len(rows) != calls:
            sys.exit(f"expected {calls} timings from {cmd[0]}, got:\n{out}")
        return rows[1:]

    sides = {
        "C++": lambda: run_json([str(cpp_bin), str(config), "default", args.prompt, str(args.seed), str(calls)], env),
        "C": lambda: run_json([str(c_bin), str(config), "default", args.prompt, str(args.seed), str(calls)], env),
        "Python": lambda: run_json([args.python, "-c", PY_SIDE, str(config), "default", args.prompt,
                                    str(args.seed), str(calls)], py_env),
    }
    c_example = build / "examples" / "tp_c_generate"
    whole = {
        "C++": [str(cli), "-q", "--keep-text-encoders", "--config", str(config), "generate", args.prompt,
                "--seed", str(args.seed), "-o", str(tmp / "p_cli.png")],
        "C": [str(c_example), str(model), args.prompt, str(args.seed), str(tmp / "p_c.png")],
        "Python": [args.python, str(REPO / "examples" / "python" / "generate.py"), args.prompt, "--model-dir",
                   str(model), "--seed", str(args.seed), "-o", str(tmp / "p_py.png")],
    }
    if not c_example.exists():  # build/examples/tp_c_generate, else compile examples/c/generate.c here
        c_example = tmp / "tp_c_generate"
        subprocess.run(["cc", "-O2", "-std=c11", f"-I{REPO / 'capi' / 'include'}",
                        f"-I{build / 'generated' / 'include'}", str(REPO / "examples" / "c" / "generate.c"), "-o",
                        str(c_example), f"-L{build}", "-ltwistedpic", f"-Wl,-rpath,{build}"], check=True)
        whole["C"][0] = str(c_example)

    names = list(sides)
    calls_by = {n: [] for n in names}
    rounds_by = {n: [] for n in names}  # per round: the median call
    process_by = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % 3:] + names[:r % 3]
        for n in order:
            rows = sides[n]()
            calls_by[n] += rows
            rounds_by[n].append(statistics.median(row["wall_s"] for row in rows))
        if not args.no_process:
            for n in order:
                t0 = time.perf_counter()
                subprocess.run(whole[n], check=True, capture_output=True, env=py_env)
                process_by[n].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{args.rounds} ({', '.join(order)}) done", file=sys.stderr, flush=True)

    print(f"one {model.name} image (32x32, the model's steps, fp32, CPU, {args.threads} thread(s)), "
          f"{args.rounds} rounds x {args.per_process} calls per process after 1 warm-up, sides alternated")
    print("generate call (wall):")
    for n, label in (("C++", "C++ Pipeline::generate"), ("C", "C tp_pipeline_generate"),
                     ("Python", "Python Pipeline.generate")):
        print(fmt(label, [c["wall_s"] for c in calls_by[n]]))
    print("outside the library's timer, per call (wall - library total of the same call):")
    for n in names:
        print(fmt(n, [c["wall_s"] - c["total_s"] for c in calls_by[n]]))
    if not args.no_process:
        print("whole process, one image (start, loads, generate, PNG; information only):")
        print(fmt("C++ twistedpic generate", process_by["C++"]))
        print(fmt("C examples/c/generate.c", process_by["C"]))
        print(fmt("Python examples/python/generate.py", process_by["Python"]))
    # The headline: per call, wall time over the library's own timer of the same call (generate's total_s), so
    # the reference is measured in the same call and machine noise cancels; C++ is the baseline of that ratio.
    m = statistics.median
    per_call = {n: [c["wall_s"] / c["total_s"] for c in calls_by[n]] for n in names}
    print("per call, wall / library total of the same call (the headline: noise cancels):")
    for n in names:
        med, lo, hi, _ = spread(per_call[n])
        print(f"  {n:<7} median {med:.5f}  min {lo:.5f}  max {hi:.5f}  spread {(hi - lo) / med * 100:.2f} %")
    print("between processes, each round's median call over the C++ one of the same round (a check; on a busy "
          "CPU its spread is machine noise):")
    for key, n in (("capi_overhead", "C"), ("python_overhead", "Python")):
        ratios = [b / a for a, b in zip(rounds_by["C++"], rounds_by[n])]
        print(f"  {key}: median {m(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}  "
              f"({', '.join(f'{x:.3f}' for x in ratios)})")
    for key, n in (("capi_overhead", "C"), ("python_overhead", "Python")):
        print(result_line(key, [x / m(per_call["C++"]) for x in per_call[n]], digits=4, what="calls"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
