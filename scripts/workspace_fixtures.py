#!/usr/bin/env python3
"""Scaled copies of the tiny reference pipelines, for the activation-estimate test.

    workspace_fixtures.py OUT_DIR SD3_REFERENCE_DIR FLUX_REFERENCE_DIR SDXL_REFERENCE_DIR

Writes OUT_DIR/{sd3,flux,sdxl}: the reference folders sd3_reference/plain,
flux_reference/schnell and sdxl_reference/base with their denoiser, VAE and T5
four times wider (and the denoisers one block deeper), random weights (seeded,
fp32). The CLIP encoders, tokenizers and schedulers are copied unchanged (their
widths are tied to the denoiser's pooled projection). Only shapes matter here:
tests/unit/pipeline/activation_estimate_test.cpp compares each network's
estimated activation bytes with what torch allocates. Remade when this script
changes (a stamp holds its hash).
"""
import hashlib
import json
import shutil
import sys
from pathlib import Path


def load(folder: Path, component: str) -> dict:
    config = json.loads((folder / component / "config.json").read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}


def save(model, folder: Path, component: str):
    target = folder / component
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target, safe_serialization=True)


def scaled(out: Path, source: Path, name: str, scale_components):
    import torch

    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder)
    torch.manual_seed(1234)
    for component, make in scale_components.items():
        save(make(load(source, component)), folder, component)


def main():
    out, sd3_dir, flux_dir, sdxl_dir = (Path(a) for a in sys.argv[1:5])
    stamp = out / "fixtures.stamp"
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    out.mkdir(parents=True, exist_ok=True)
    from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel, UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    def vae(c):
        c["block_out_channels"] = [4 * ch for ch in c["block_out_channels"]]
        return AutoencoderKL.from_config(c)

    def t5(c, d_model):
        c.update(d_model=d_model, d_ff=4 * c["d_ff"], num_heads=4 * c["num_heads"])
        c.pop("architectures", None)
        return T5EncoderModel(T5Config(**c))

    def sd3_transformer(c):
        c.update(num_attention_heads=4 * c["num_attention_heads"], num_layers=c["num_layers"] + 1,
                 joint_attention_dim=4 * c["joint_attention_dim"])
        c["caption_projection_dim"] = c["num_attention_heads"] * c["attention_head_dim"]
        return SD3Transformer2DModel.from_config(c)

    sd3_joint = 4 * load(sd3_dir / "plain", "transformer")["joint_attention_dim"]
    scaled(out, sd3_dir / "plain", "sd3", {"transformer": sd3_transformer, "vae": vae,
                                          "text_encoder_3": lambda c: t5(c, sd3_joint)})

    def flux_transformer(c):
        c.update(num_attention_heads=4 * c["num_attention_heads"], num_layers=c["num_layers"] + 1,
                 num_single_layers=c["num_single_layers"] + 1, joint_attention_dim=4 * c["joint_attention_dim"])
        return FluxTransformer2DModel.from_config(c)

    flux_joint = 4 * load(flux_dir / "schnell", "transformer")["joint_attention_dim"]
    scaled(out, flux_dir / "schnell", "flux", {"transformer": flux_transformer, "vae": vae,
                                               "text_encoder_2": lambda c: t5(c, flux_joint)})

    def unet(c):
        c["block_out_channels"] = [4 * ch for ch in c["block_out_channels"]]
        c["layers_per_block"] = 2
        return UNet2DConditionModel.from_config(c)

    scaled(out, sdxl_dir / "base", "sdxl", {"unet": unet, "vae": vae})
    stamp.write_text(digest)


if __name__ == "__main__":
    main()
