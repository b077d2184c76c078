"""The command line that sd3_reference.py and flux_reference.py share:

    <script> OUT [--variant V | all | bench]

Each variant is a tiny random-weight pipeline folder and diffusers' outputs on it (`reference(variant, out)`);
`bench` is a folder only (`build("bench", out)`) for the CPU benchmarks. OUT is shared by build trees, so a run
does nothing when a stamp says these scripts and these library versions made it; that is checked before importing
torch, which takes seconds.
"""
import argparse
import hashlib
import os
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_references(script: str, doc: str, variants, build, reference):
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--variant", choices=[*variants, "all", "bench"], default="all")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for name in (script, "make_tokenizers.py", "reference_main.py"):
        digest.update((HERE / name).read_bytes())
    stamp_file = args.out / f"{args.variant}.stamp"
    stamp = digest.hexdigest() + "".join(f" {p} {metadata.version(p)}" for p in ("torch", "diffusers", "transformers"))
    if stamp_file.exists() and stamp_file.read_text() == stamp + "\n":
        print(f"{args.out}: up to date")
        return
    import torch
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if args.variant == "bench":
        build("bench", args.out)
    else:
        for v in (variants if args.variant == "all" else [args.variant]):
            reference(v, args.out)
    stamp_file.write_text(stamp + "\n")
