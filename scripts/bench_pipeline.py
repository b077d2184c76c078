#!/usr/bin/env python3
"""twistedpic's SD3 pipeline against diffusers, on CPU, in the same run.

    bench_pipeline.py BUILD_DIR [--size 128] [--steps 5] [--repeats 3] [--rounds 2] [--threads 2]

Both run the same random-weight SD3.5-style folder (scripts/sd3_reference.py --variant bench) in fp32 with
classifier-free guidance, the same prompt, size and thread count. A step is the time between consecutive step
callbacks (the transformer on the guided batch, plus the scheduler); a generation is the whole call. Rounds
alternate between the two so that drift in the machine's speed hits both. Prints medians and
  RESULT step_vs_diffusers=<ours/theirs>   (target <= 1.2)
  RESULT generate_vs_diffusers=<ours/theirs>
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PROMPT = "a red circle on a white background"


def diffusers_times(folder: Path, size: int, steps: int, repeats: int):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    stamps = []

    def on_step(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    steps_s, gens_s = [], []
    for i in range(repeats + 1):  # the first is a warm-up
        stamps.clear()
        t0 = time.perf_counter()
        pipe(PROMPT, height=size, width=size, num_inference_steps=steps, guidance_scale=5.0,
             max_sequence_length=64, generator=torch.Generator().manual_seed(i), callback_on_step_end=on_step,
             output_type="np")
        if i:
            gens_s.append(time.perf_counter() - t0)
            steps_s += [b - a for a, b in zip(stamps, stamps[1:])]
    return steps_s, gens_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", type=Path)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.build / "sd3_bench_model" / "bench"
    if not (folder / "model_index.json").exists():
        subprocess.run([sys.executable, str(HERE / "sd3_reference.py"), str(folder.parent), "--variant", "bench"],
                       check=True, stdout=subprocess.DEVNULL)
    binary = args.build / "bench" / "sd3_bench"
    ours_step, ours_gen, theirs_step, theirs_gen = [], [], [], []
    for _ in range(args.rounds):
        out = subprocess.run([str(binary), str(folder), str(args.size), str(args.size), str(args.steps),
                              str(args.repeats), str(args.threads)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        ours_step.append(r["step_s"])
        ours_gen.append(r["generate_s"])
        s, g = diffusers_times(folder, args.size, args.steps, args.repeats)
        theirs_step.append(statistics.median(s))
        theirs_gen.append(statistics.median(g))
    ours_s, theirs_s = statistics.median(ours_step), statistics.median(theirs_step)
    ours_g, theirs_g = statistics.median(ours_gen), statistics.median(theirs_gen)
    print(f"sd3 {args.size}x{args.size}, {args.steps} steps, fp32, CPU, {args.threads} threads")
    print(f"  one step:        twistedpic {ours_s * 1e3:8.1f} ms   diffusers {theirs_s * 1e3:8.1f} ms")
    print(f"  one generation:  twistedpic {ours_g * 1e3:8.1f} ms   diffusers {theirs_g * 1e3:8.1f} ms")
    print(f"RESULT step_vs_diffusers={ours_s / theirs_s:.3f}")
    print(f"RESULT generate_vs_diffusers={ours_g / theirs_g:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
