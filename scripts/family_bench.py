#!/usr/bin/env python3
"""A pipeline family of twistedpic against diffusers' pipeline, on CPU, in the same run.

    family_bench.py {flux,sdxl} BUILD_DIR [--steps 4] [--repeats 3] [--min-rounds 3] [--max-rounds 8] [--threads 2]

Two random-weight folders of the family, fp32, the same prompt, size and thread count:
  flux  tiny: scripts/flux_reference.py's dev pipeline (head size 16) at 128 x 128;
        bench: flux_reference.py --variant bench (head size 128, as FLUX.1's; 4 heads) at 256 x 256.
  sdxl  tiny: scripts/sdxl_reference.py's base pipeline (diffusers' fast-test shapes) at 128 x 128;
        bench: sdxl_reference.py --variant bench (SDXL's level structure, narrower) at 256 x 256.
A step is the time between consecutive step callbacks (the denoiser plus the scheduler); a generation is the
whole call. Each side's first generation in a round is a warm-up and is discarded. Rounds alternate between the
two sides (ours first in even rounds, theirs first in odd ones) so that drift in the machine's speed hits both.
Each round gives one ratio per figure; rounds go on until the ratios' spread is at most 10 %, else the figure is
printed as unstable, not as a result (scripts/bench_ratio.py). Prints each side's median with its range and
  RESULT <family>_step_vs_diffusers=<ours/theirs>       (bench config; target <= 1.2 on CPU)
  RESULT <family>_generate_vs_diffusers=<ours/theirs>
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


class Family:
    def __init__(self, script, pipeline, tiny, guidance, max_sequence_length):
        self.script, self.pipeline, self.tiny = script, pipeline, tiny
        self.guidance, self.max_sequence_length = guidance, max_sequence_length

    def diffusers_call(self, size, steps):
        call = dict(prompt=PROMPT, height=size, width=size, num_inference_steps=steps, guidance_scale=self.guidance)
        if self.max_sequence_length != 77:  # SDXL's pipeline has no such argument: its CLIPs take 77 tokens
            call["max_sequence_length"] = self.max_sequence_length
        return call


FAMILIES = {
    "flux": Family("flux_reference.py", "FluxPipeline", "dev", 3.5, 64),
    "sdxl": Family("sdxl_reference.py", "StableDiffusionXLPipeline", "base", 5.0, 77),
}


def theirs_times(family: Family, pipe, size: int, steps: int, repeats: int):
    steps_s, gens_s = diffusers_times(pipe, repeats, **family.diffusers_call(size, steps))
    return statistics.median(steps_s), statistics.median(gens_s)


def ours_times(family: Family, binary: Path, folder: Path, size: int, steps: int, repeats: int, threads: int):
    out = subprocess.run([str(binary), str(folder), str(size), str(size), str(steps), str(repeats), str(threads),
                          str(family.guidance), str(family.max_sequence_length)],
                         check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    return r["step_s"], r["generate_s"]


def spread(v):
    return f"{statistics.median(v) * 1e3:8.1f} ms ({min(v) * 1e3:.1f}..{max(v) * 1e3:.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("build", type=Path)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-rounds", type=int, default=3)
    ap.add_argument("--max-rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import diffusers

    family = FAMILIES[args.family]
    root = args.build / f"{args.family}_bench_model"
    for variant in (family.tiny, "bench"):
        if not (root / variant / "model_index.json").exists():
            subprocess.run([sys.executable, str(HERE / family.script), str(root), "--variant", variant],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    binary = args.build / "bench" / "sd3_bench"
    results = {}
    for name, variant, size in (("tiny", family.tiny, 128), ("bench", "bench", 256)):
        folder = root / variant
        pipe = getattr(diffusers, family.pipeline).from_pretrained(folder, torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        ours_step, ours_gen, theirs_step, theirs_gen = [], [], [], []

        def one_round(r):
            got = {}
            for side in (["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]):
                if side == "ours":
                    got[side] = ours_times(family, binary, folder, size, args.steps, args.repeats, args.threads)
                    ours_step.append(got[side][0])
                    ours_gen.append(got[side][1])
                else:
                    got[side] = theirs_times(family, pipe, size, args.steps, args.repeats)
                    theirs_step.append(got[side][0])
                    theirs_gen.append(got[side][1])
            return {f"{args.family}_step_vs_diffusers": got["ours"][0] / got["theirs"][0],
                    f"{args.family}_generate_vs_diffusers": got["ours"][1] / got["theirs"][1]}

        results[name] = measure_rounds(one_round, args.min_rounds, args.max_rounds)
        print(f"{args.family} {name} ({variant}) {size}x{size}, {args.steps} steps, fp32, CPU, {args.threads} threads, "
              f"{len(ours_step)} rounds (median (min..max))")
        print(f"  one step:        twistedpic {spread(ours_step)}   diffusers {spread(theirs_step)}   "
              f"ratio {statistics.median(ours_step) / statistics.median(theirs_step):.3f}")
        print(f"  one generation:  twistedpic {spread(ours_gen)}   diffusers {spread(theirs_gen)}   "
              f"ratio {statistics.median(ours_gen) / statistics.median(theirs_gen):.3f}")
        print(f"  best of rounds (less exposed to a busy machine): step ratio {min(ours_step) / min(theirs_step):.3f}, "
              f"generation ratio {min(ours_gen) / min(theirs_gen):.3f}")
    for key, ratios in results["bench"].items():  # the headline: the larger config
        print(result_line(key, ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
