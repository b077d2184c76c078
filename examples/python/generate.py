"""Generate a picture from Python: a registry with one pipeline, a prompt, progress, a PNG.

    pip install .    # once, at the repository's root, in a venv with torch
    python examples/python/generate.py "a red circle on a white background" --seed 5 -o circle.png

Without --model-dir it uses the tiny default model shipped with the package, models/tiny-sd3 (32x32 pixels, runs
on the CPU).
Ctrl-C cancels the generation between two steps.
"""

import argparse
import json
import pathlib
import sys

import twistedpic

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="a red circle on a white background")
    parser.add_argument("--model-dir", type=pathlib.Path, default=twistedpic.default_model_dir(),
                        help="a diffusers folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("-o", "--out", type=pathlib.Path, default=pathlib.Path("twistedpic.png"))
    args = parser.parse_args()

    # One pipeline model: its networks (text encoders, transformer, VAE) become registry models.
    config = {"models": {"default": {"path": str(args.model_dir), "pipeline_type": "sd3", "dtype": "fp32"}}}

    def on_step(p: twistedpic.Progress):
        if p.stage == twistedpic.Stage.DENOISE:
            print(f"step {p.step}/{p.steps} ({p.elapsed_s:.2f} s)", file=sys.stderr)
        elif p.stage == twistedpic.Stage.WAITING:
            print(f"loading {p.model}", file=sys.stderr)
        # returning False would cancel the call (CancelledError)

    with twistedpic.Registry.from_string(json.dumps(config)) as registry, \
            registry.pipeline("default") as pipeline:
        try:
            [image] = pipeline.generate(args.prompt, seed=args.seed, steps=args.steps, on_step=on_step)
        except KeyboardInterrupt:
            print("cancelled", file=sys.stderr)
            return 130
        image.save(args.out)
        info = image.info
        print(f"{args.out}: {image.width}x{image.height}, seed {info.seed}, {info.steps} steps, "
              f"guidance {info.guidance_scale}, {info.total_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
