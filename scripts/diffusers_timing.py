"""diffusers' side of the CPU benchmarks that compare a pipeline with it (bench_pipeline.py, family_bench.py)."""
import time

import torch


def diffusers_times(pipe, repeats: int, **call):
    """Runs pipe(**call) repeats + 1 times (the first a warm-up, discarded), with generator seed i for call i.
    Returns (step times, generation times) in seconds: a step is the time between consecutive step callbacks."""
    stamps, steps_s, gens_s = [], [], []

    def on_step(_pipe, _i, _t, kwargs):
        stamps.append(time.perf_counter())
        return kwargs

    for i in range(repeats + 1):
        stamps.clear()
        t0 = time.perf_counter()
        pipe(generator=torch.Generator().manual_seed(i), callback_on_step_end=on_step, output_type="np", **call)
        if i:
            gens_s.append(time.perf_counter() - t0)
            steps_s += [b - a for a, b in zip(stamps, stamps[1:])]
    return steps_s, gens_s
