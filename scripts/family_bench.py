#!/usr/bin/env python3
"""twistedpic's Flux pipeline against diffusers' FluxPipeline, on CPU, in the same run.

    flux_bench.py BUILD_DIR [--steps 4] [--repeats 3] [--min-rounds 3] [--max-rounds 8] [--threads 2]

Two random-weight dev-style folders (guidance embedding on), fp32, the same prompt, size and thread count:
  tiny   scripts/flux_reference.py's dev pipeline (head size 16) at 128 x 128;
  bench  scripts/flux_reference.py --variant bench (head size 128, as FLUX.1's; 4 heads) at 256 x 256.
A step is the time between consecutive step callbacks (the transformer plus the scheduler); a generation is the
whole call. Each side's first generation in a round is a warm-up and is discarded. Rounds alternate between the
two sides (ours first in even rounds, theirs first in odd ones) so that drift in the machine's speed hits both.
Each round gives one ratio per figure; rounds go on until the ratios' spread is at most 10 %, else the figure is
printed as unstable, not as a result (scripts/bench_ratio.py). Prints each side's median with its range and
  RESULT flux_step_vs_diffusers=<ours/theirs>       (bench config; target <= 1.2 on CPU)
  RESULT flux_generate_vs_diffusers=<ours/theirs>
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from bench_ratio import measure_rounds, result_line
from diffusers_timing import diffusers_times

HERE = Path(__file__).resolve().parent
PROMPT = "a red circle on a white background"
GUIDANCE, MAX_SEQUENCE_LENGTH = 3.5, 64


def flux_diffusers_times(pipe, size: int, steps: int, repeats: int):
    steps_s, gens_s = diffusers_times(pipe, repeats, prompt=PROMPT, height=size, width=size,
                                      num_inference_steps=steps, guidance_scale=GUIDANCE,
                                      max_sequence_length=MAX_SEQUENCE_LENGTH)
    return statistics.median(steps_s), statistics.median(gens_s)


def ours_times(binary: Path, folder: Path, size: int, steps: int, repeats: int, threads: int):
    out = subprocess.run([str(binary), str(folder), str(size), str(size), str(steps), str(repeats), str(threads),
                          str(GUIDANCE), str(MAX_SEQUENCE_LENGTH)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    return r["step_s"], r["generate_s"]


def spread(v):
    return f"{statistics.median(v) * 1e3:8.1f} ms ({min(v) * 1e3:.1f}..{max(v) * 1e3:.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", type=Path)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-rounds", type=int, default=3)
    ap.add_argument("--max-rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import FluxPipeline

    root = args.build / "flux_bench_model"
    for variant in ("dev", "bench"):
        if not (root / variant / "model_index.json").exists():
            subprocess.run([sys.executable, str(HERE / "flux_reference.py"), str(root), "--variant", variant],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    binary = args.build / "bench" / "sd3_bench"
    results = {}
    for name, variant, size in (("tiny", "dev", 128), ("bench", "bench", 256)):
        folder = root / variant
        pipe = FluxPipeline.from_pretrained(folder, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        ours_step, ours_gen, theirs_step, theirs_gen = [], [], [], []

        def one_round(r):
            got = {}
            for side in (["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]):
                if side == "ours":
                    got[side] = ours_times(binary, folder, size, args.steps, args.repeats, args.threads)
                    ours_step.append(got[side][0])
                    ours_gen.append(got[side][1])
                else:
                    got[side] = flux_diffusers_times(pipe, size, args.steps, args.repeats)
                    theirs_step.append(got[side][0])
                    theirs_gen.append(got[side][1])
            return {"flux_step_vs_diffusers": got["ours"][0] / got["theirs"][0],
                    "flux_generate_vs_diffusers": got["ours"][1] / got["theirs"][1]}

        results[name] = measure_rounds(one_round, args.min_rounds, args.max_rounds)
        print(f"flux {name} ({variant}) {size}x{size}, {args.steps} steps, fp32, CPU, {args.threads} threads, "
              f"{len(ours_step)} rounds (median (min..max))")
        print(f"  one step:        twistedpic {spread(ours_step)}   diffusers {spread(theirs_step)}   "
              f"ratio {statistics.median(ours_step) / statistics.median(theirs_step):.3f}")
        print(f"  one generation:  twistedpic {spread(ours_gen)}   diffusers {spread(theirs_gen)}   "
              f"ratio {statistics.median(ours_gen) / statistics.median(theirs_gen):.3f}")
        print(f"  best of rounds (less exposed to a busy machine): step ratio {min(ours_step) / min(theirs_step):.3f}, "
              f"generation ratio {min(ours_gen) / min(theirs_gen):.3f}")
    for key, ratios in results["bench"].items():  # the headline: the config with FLUX.1's head size
        print(result_line(key, ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
