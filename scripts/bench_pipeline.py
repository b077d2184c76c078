#!/usr/bin/env python3
"""twistedpic's SD3 pipeline against diffusers, on CPU, in the same run.

    bench_pipeline.py BUILD_DIR [--size 128] [--steps 5] [--repeats 3] [--min-rounds 3] [--max-rounds 8] [--threads 2]

Both run the same random-weight SD3.5-style folder (scripts/sd3_reference.py --variant bench) in fp32 with
classifier-free guidance, the same prompt, size and thread count. A step is the time between consecutive step
callbacks (the transformer on the guided batch, plus the scheduler); a generation is the whole call. Each
side's first generation in a round is a warm-up and is discarded. The two sides swap order every round (ours
first in even rounds), and each round gives one ratio per figure; rounds go on until the ratios' spread is at
most 10 % (scripts/bench_ratio.py), else the figure is printed as unstable, not as a result. Prints medians and
  RESULT step_vs_diffusers=<ours/theirs>   (target <= 1.2)
  RESULT generate_vs_diffusers=<ours/theirs>
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


def sd3_diffusers_times(folder: Path, size: int, steps: int, repeats: int):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return diffusers_times(pipe, repeats, prompt=PROMPT, height=size, width=size, num_inference_steps=steps,
                           guidance_scale=5.0, max_sequence_length=64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", type=Path)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-rounds", type=int, default=3)
    ap.add_argument("--max-rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.build / "sd3_bench_model" / "bench"
    if not (folder / "model_index.json").exists():
        subprocess.run([sys.executable, str(HERE / "sd3_reference.py"), str(folder.parent), "--variant", "bench"],
                       check=True, stdout=subprocess.DEVNULL)
    binary = args.build / "bench" / "sd3_bench"
    times = {"ours_step": [], "ours_gen": [], "theirs_step": [], "theirs_gen": []}

    def ours():
        out = subprocess.run([str(binary), str(folder), str(args.size), str(args.size), str(args.steps),
                              str(args.repeats), str(args.threads)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        return r["step_s"], r["generate_s"]

    def theirs():
        s, g = sd3_diffusers_times(folder, args.size, args.steps, args.repeats)
        return statistics.median(s), statistics.median(g)

    def one_round(r):
        sides = [("ours", ours), ("theirs", theirs)]
        got = {}
        for name, run in sides if r % 2 == 0 else sides[::-1]:
            got[name] = run()
            times[f"{name}_step"].append(got[name][0])
            times[f"{name}_gen"].append(got[name][1])
        return {"step_vs_diffusers": got["ours"][0] / got["theirs"][0],
                "generate_vs_diffusers": got["ours"][1] / got["theirs"][1]}

    ratios = measure_rounds(one_round, args.min_rounds, args.max_rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sd3 {args.size}x{args.size}, {args.steps} steps, fp32, CPU, {args.threads} threads, "
          f"{len(times['ours_step'])} rounds")
    print(f"  one step:        twistedpic {med['ours_step'] * 1e3:8.1f} ms   diffusers {med['theirs_step'] * 1e3:8.1f} ms")
    print(f"  one generation:  twistedpic {med['ours_gen'] * 1e3:8.1f} ms   diffusers {med['theirs_gen'] * 1e3:8.1f} ms")
    for key, values in ratios.items():
        print(result_line(key, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
