#!/usr/bin/env python3
"""A FLUX.1 [dev]-shaped diffusers folder whose weights are safetensors headers with the real shapes.

    flux_plan_headers.py OUT_DIR

writes OUT_DIR/dev/: model_index.json, every component's config (FLUX.1 [dev]'s: a 12B transformer with the
guidance embedding, T5-XXL, CLIP-L, the 16-channel VAE), bf16 safetensors files whose headers list every
tensor with its real shape and whose data sections are sparse (the files have their real sizes, 33 GB in all,
but hold no data and take no disk space), and the tiny tokenizers of scripts/make_tokenizers.py.
Nothing can be generated from it; it is for plan() (docs/architecture.md, "Planning FLUX.1 [dev] on a 24 GB
card"), which needs only the weights' sizes. The networks are built on the meta device, so this runs in seconds.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_headers(path: Path, shapes: dict):
    """A bf16 safetensors file: the header, then a sparse data section of the right size."""
    header, offset = {}, 0
    for name in sorted(shapes):
        n = 2
        for d in shapes[name]:
            n *= d
        header[name] = {"dtype": "BF16", "shape": list(shapes[name]), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)


def save(model, folder: Path, file_name: str):
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_config"):
        model.save_config(folder)  # diffusers
    else:
        model.config.save_pretrained(folder)  # transformers
    write_headers(folder / file_name, {k: tuple(v.shape) for k, v in model.state_dict().items()})


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: flux_plan_headers.py OUT_DIR")
    out = Path(sys.argv[1])
    root = out / "dev"
    if (root / "model_index.json").exists():
        print(f"{root}: up to date")
        return
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    with torch.device("meta"):
        transformer = FluxTransformer2DModel(guidance_embeds=True)  # the defaults are FLUX.1's
        t5 = T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                     num_heads=64, feed_forward_proj="gated-gelu", is_encoder_decoder=False))
        clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                            num_attention_heads=12, num_hidden_layers=12, projection_dim=768))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                            block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611,
                            shift_factor=0.1159)
    tmp = root.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(transformer, tmp / "transformer", "diffusion_pytorch_model.safetensors")
    save(vae, tmp / "vae", "diffusion_pytorch_model.safetensors")
    save(clip, tmp / "text_encoder", "model.safetensors")
    save(t5, tmp / "text_encoder_2", "model.safetensors")
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "FlowMatchEulerDiscreteScheduler", "base_image_seq_len": 256, "base_shift": 0.5,
        "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 3.0,
        "use_dynamic_shifting": True}, indent=1))
    tokenizers = out / "tokenizers"
    if not (tokenizers / "tokenizer_3" / "spiece.model").exists():
        subprocess.run([sys.executable, str(HERE / "make_tokenizers.py"), str(tokenizers)], check=True)
    shutil.copytree(tokenizers / "tokenizer", tmp / "tokenizer")
    shutil.copytree(tokenizers / "tokenizer_3", tmp / "tokenizer_2")
    (tmp / "model_index.json").write_text(json.dumps({
        "_class_name": "FluxPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}, indent=1))
    os.replace(tmp, root)
    print(root)


if __name__ == "__main__":
    main()
