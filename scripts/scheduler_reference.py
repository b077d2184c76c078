"""diffusers' discrete-time schedulers (SDXL's), as references for
tests/unit/pipeline/common/discrete_sampler_reference_test.cpp:

    scheduler_reference.py OUT

OUT/tables.json: for each case (a class, a config: SDXL's shipped scheduler_config.json with overrides, a step
count) the timesteps, sigmas and init_noise_sigma after set_timesteps(steps), and the training tables
(alphas_cumprod, sigmas) of each config. OUT/trajectories.safetensors (+ trajectories.json): whole sampling runs,
as the SDXL pipeline drives a scheduler: latents drawn from torch.Generator("cpu").manual_seed(seed) times
init_noise_sigma, then per step a pseudo model output 0.9 * scale_model_input(latents) + 0.1 * r_i (r_i drawn from
manual_seed(1000 + i)) and step(..., generator) on the same generator (Euler ancestral draws its noise from it);
the latents after each step are kept.

OUT is shared by build trees: a run does nothing when its stamp says this script and these library versions made
it (checked before importing torch).
"""
import argparse
import hashlib
import json
from importlib import metadata
from pathlib import Path

SDXL = {
    "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}
CLASSES = ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"]
# (name, class, overrides of SDXL's config)
VARIANTS = [
    ("euler", "EulerDiscreteScheduler", {}),
    ("euler_a", "EulerAncestralDiscreteScheduler", {}),
    ("dpmpp_2m", "DPMSolverMultistepScheduler", {}),
    ("dpmpp_2m_karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
]
SWEEP_STEPS = list(range(1, 131)) + [200, 500, 999, 1000]
GRID_STEPS = [1, 2, 4, 25, 50]
# Options off SDXL's path, on the grid's step counts.
EXTRAS = [
    ("euler_karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    ("euler_karras_range", "EulerDiscreteScheduler", {"use_karras_sigmas": True, "sigma_min": 0.1, "sigma_max": 10.0}),
    ("euler_sigma_min", "EulerDiscreteScheduler", {"final_sigmas_type": "sigma_min"}),
    ("euler_continuous_v", "EulerDiscreteScheduler", {"timestep_type": "continuous", "prediction_type": "v_prediction"}),
    ("euler_linear_betas", "EulerDiscreteScheduler", {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}),
    ("dpm_cosine", "DPMSolverMultistepScheduler", {"beta_schedule": "squaredcos_cap_v2"}),
    ("dpm_cosine_karras", "DPMSolverMultistepScheduler", {"beta_schedule": "squaredcos_cap_v2", "use_karras_sigmas": True}),
    ("dpm_sigma_min", "DPMSolverMultistepScheduler", {"final_sigmas_type": "sigma_min"}),
    ("euler_a_v", "EulerAncestralDiscreteScheduler", {"prediction_type": "v_prediction"}),
]
# Trajectories: (name, class, overrides) x prediction x spacing x steps, float32; a few in bfloat16.
TRAJ_VARIANTS = VARIANTS + [
    ("dpm_heun", "DPMSolverMultistepScheduler", {"solver_type": "heun"}),
    ("dpm_order1", "DPMSolverMultistepScheduler", {"solver_order": 1}),
    ("dpm_sigma_min", "DPMSolverMultistepScheduler", {"final_sigmas_type": "sigma_min", "lower_order_final": False}),
    ("euler_karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}),
]
TRAJ_STEPS = [1, 2, 4, 25]
SHAPE = (2, 4, 8, 8)
SEED = 1234


def build(out: Path):
    import numpy as np
    import torch
    import diffusers
    from safetensors.torch import save_file

    torch.set_num_threads(1)

    def make(cls, overrides):
        return getattr(diffusers, cls).from_config({**SDXL, **overrides})

    def floats(t):
        return [float(v) for v in np.asarray(t, dtype=np.float64).reshape(-1)]

    tables = {"cases": [], "training": []}
    for name, cls, overrides in VARIANTS + EXTRAS:
        s = make(cls, overrides)
        tables["training"].append({"name": name, "class": cls, "config": {**SDXL, **overrides},
                                   "alphas_cumprod": floats(s.alphas_cumprod),
                                   "sigmas": floats(((1 - s.alphas_cumprod) / s.alphas_cumprod) ** 0.5)})

    def table(name, cls, overrides, steps):
        s = make(cls, overrides)
        s.set_timesteps(steps)
        tables["cases"].append({"name": name, "class": cls, "config": {**SDXL, **overrides}, "steps": steps,
                                "timesteps": floats(s.timesteps.to(torch.float64)),
                                "sigmas": floats(s.sigmas), "init_noise_sigma": float(s.init_noise_sigma)})

    for name, cls, overrides in VARIANTS:
        for spacing in ("leading", "trailing", "linspace"):
            for steps in SWEEP_STEPS:
                table(f"{name}/{spacing}", cls, {**overrides, "timestep_spacing": spacing}, steps)
    for name, cls, overrides in EXTRAS:
        for spacing in ("leading", "trailing", "linspace"):
            for steps in GRID_STEPS:
                table(f"{name}/{spacing}", cls, {**overrides, "timestep_spacing": spacing}, steps)
    # The class defaults (not SDXL's config): linear betas, "linspace" spacing.
    for cls in CLASSES:
        s = getattr(diffusers, cls)()
        for steps in GRID_STEPS:
            s.set_timesteps(steps)
            tables["cases"].append({"name": f"{cls}/defaults", "class": cls, "config": {"_class_name": cls},
                                    "steps": steps, "timesteps": floats(s.timesteps.to(torch.float64)),
                                    "sigmas": floats(s.sigmas), "init_noise_sigma": float(s.init_noise_sigma)})
    (out / "tables.json").write_text(json.dumps(tables))

    tensors, runs = {}, []

    def run(name, cls, overrides, steps, dtype):
        s = make(cls, overrides)
        s.set_timesteps(steps)
        g = torch.Generator("cpu").manual_seed(SEED)
        latents = diffusers.utils.torch_utils.randn_tensor(SHAPE, generator=g, dtype=dtype) * s.init_noise_sigma
        key = f"{name}/{overrides.get('prediction_type', 'epsilon')}/{overrides['timestep_spacing']}/{steps}/" \
              f"{str(dtype).removeprefix('torch.')}"
        for i, t in enumerate(s.timesteps):
            x = s.scale_model_input(latents, t)
            r = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(1000 + i))
            model_output = (0.9 * x + 0.1 * r).to(dtype)
            latents = s.step(model_output, t, latents, generator=g).prev_sample
            tensors[f"{key}/{i}"] = latents.contiguous()
        runs.append({"key": key, "class": cls, "config": {**SDXL, **overrides}, "steps": steps,
                     "dtype": str(dtype).removeprefix("torch."), "timesteps": len(s.timesteps)})

    for name, cls, overrides in TRAJ_VARIANTS:
        for prediction in ("epsilon", "v_prediction"):
            for spacing in ("leading", "trailing"):
                for steps in TRAJ_STEPS:
                    run(name, cls, {**overrides, "prediction_type": prediction, "timestep_spacing": spacing}, steps,
                        torch.float32)
        # 50 "leading" steps meet timestep 21, one of the training sigmas torch rounds differently.
        run(name, cls, {**overrides, "timestep_spacing": "leading"}, 50, torch.float32)
        for steps in (4, 25):
            run(name, cls, {**overrides, "timestep_spacing": "leading"}, steps, torch.bfloat16)
    save_file(tensors, str(out / "trajectories.safetensors"))
    (out / "trajectories.json").write_text(json.dumps({"shape": SHAPE, "seed": SEED, "runs": runs}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp_file = args.out / "scheduler_reference.stamp"
    stamp = hashlib.sha256(Path(__file__).read_bytes()).hexdigest() + "".join(
        f" {p} {metadata.version(p)}" for p in ("torch", "diffusers", "numpy"))
    if stamp_file.exists() and stamp_file.read_text() == stamp + "\n":
        print(f"{args.out}: up to date")
        return
    build(args.out)
    stamp_file.write_text(stamp + "\n")
    print(f"{args.out}: written")


if __name__ == "__main__":
    main()
