#!/usr/bin/env python3
"""The GPU bundle's Python measurements, each compared with twistedpic in the same run (run.sh calls them).

    measure.py safetensors FILE OURS_JSON
        safetensors.load_file(FILE, device="cuda"), best of 3, against gpu_bench's cold load of the same file:
        RESULT safetensors_gib_s, RESULT cold_vs_safetensors=<ours / theirs>
    measure.py sd3 GPU_BENCH WORK_DIR TOKENIZERS_DIR [--layers 38] [--size 1024] [--steps 4] [--repeats 2]
        An SD3.5-Large-shaped pipeline with random weights (the transformer at full width, 38 heads of 64,
        joint dim 4096; --layers of its 38 blocks; tiny CLIPs of the real widths; no T5; a tiny 16-channel VAE),
        saved as a diffusers folder, timed in diffusers (bf16, CFG, the device synchronized at each step) and
        then in twistedpic (gpu_bench sd3) on the same folder:
        RESULT sd3_step_vs_diffusers=<ours / theirs> (target <= 1.0)
    measure.py flux GPU_BENCH WORK_DIR CLIP_TOKENIZER_DIR T5_TOKENIZER_DIR [--double 19] [--single 38] [--size 1024]
        A FLUX.1 [dev]-shaped pipeline with random weights (the transformer at full width: 24 heads of 128,
        --double and --single of its 19 + 38 blocks, the guidance embedding; a 2-layer CLIP-L; a 1-layer T5 of
        d_model 4096; a tiny 16-channel VAE), timed the same way (bf16, guidance 3.5, 512 T5 tokens):
        RESULT flux_step_vs_diffusers=<ours / theirs> (target <= 1.0)
    measure.py sdxl GPU_BENCH WORK_DIR CLIP_TOKENIZER_DIR [--size 1024]
        An SDXL-shaped pipeline with random weights (stabilityai/stable-diffusion-xl-base-1.0's UNet config, whole;
        2-layer CLIPs of the real widths, 768 and 1280 with a 1280 projection; a tiny 4-channel VAE), timed the
        same way (bf16, CFG, guidance 5, the Euler scheduler SDXL ships):
        RESULT sdxl_step_vs_diffusers=<ours / theirs> (target <= 1.0)
Without CUDA each prints "skipped: no CUDA".
"""
import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "a red circle on a white background"


def no_cuda(keys):
    import torch

    if torch.cuda.is_available():
        return False
    for k in keys:
        print(f"RESULT {k}=skipped: no CUDA")
    return True


def cmd_safetensors(args) -> int:
    if no_cuda(["safetensors_gib_s", "cold_vs_safetensors"]):
        return 0
    import torch
    from safetensors.torch import load_file

    size = os.path.getsize(args.file)
    torch.cuda.init()
    best = float("inf")
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        tensors = load_file(args.file, device="cuda")
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        del tensors
        torch.cuda.empty_cache()
    theirs = size / 2**30 / best
    ours = json.loads(Path(args.ours).read_text())["cold_gib_s"]
    print(f"RESULT safetensors_gib_s={theirs:.2f}  # safetensors.load_file(device='cuda'), best of 3, same file")
    print(f"RESULT cold_vs_safetensors={ours / theirs:.3f}  # twistedpic cold load / safetensors'")
    return 0


def sd35_large_transformer_config(layers: int) -> dict:
    # stabilityai/stable-diffusion-3.5-large transformer/config.json, with num_layers configurable.
    return dict(attention_head_dim=64, caption_projection_dim=2432, in_channels=16, joint_attention_dim=4096,
                num_attention_heads=38, num_layers=layers, out_channels=16, patch_size=2, pooled_projection_dim=2048,
                pos_embed_max_size=192, qk_norm="rms_norm", sample_size=128, dual_attention_layers=())


def build_folder(folder: Path, tokenizers: Path, layers: int):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(tokenizers / "tokenizer")
    tok2 = CLIPTokenizer.from_pretrained(tokenizers / "tokenizer_2")
    torch.manual_seed(0)
    with torch.device("cuda"):
        # The real widths (768 + 1280 = 2048 pooled), two layers each (SD3 reads the penultimate): not what is timed.
        clip_l = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=768, intermediate_size=256, num_attention_heads=12, num_hidden_layers=2,
            projection_dim=768, hidden_act="quick_gelu", max_position_embeddings=77, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tok2), hidden_size=1280, intermediate_size=256, num_attention_heads=20, num_hidden_layers=2,
            projection_dim=1280, hidden_act="gelu", max_position_embeddings=77, bos_token_id=tok2.bos_token_id,
            eos_token_id=tok2.eos_token_id, pad_token_id=tok2.pad_token_id))
        transformer = SD3Transformer2DModel(**sd35_large_transformer_config(layers))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32, 32, 32, 32),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=1, norm_num_groups=32, sample_size=1024, use_quant_conv=False,
                            use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5305)
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                    vae=vae, text_encoder=clip_l, tokenizer=tok, text_encoder_2=clip_g,
                                    tokenizer_2=tok2, text_encoder_3=None, tokenizer_3=None)
    pipe = pipe.to(torch.bfloat16)
    pipe.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer", "tokenizer_2"):  # the source files too, as the Hub's folders have them
        shutil.copytree(tokenizers / name, folder / name, dirs_exist_ok=True)
    return pipe


def compare_step(family: str, folder: Path, make_pipe, args, shape: str, guidance: float, seq: int) -> int:
    """Builds the random-weight folder (make_pipe(folder) returns diffusers' pipeline on it), times diffusers'
    steps, then gpu_bench FAMILY on the same folder, and prints RESULT <family>_step_vs_diffusers."""
    key = f"{family}_step_vs_diffusers"
    if no_cuda([key]):
        return 0
    import torch

    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    pipe = make_pipe(folder)
    denoiser = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
    params = sum(p.numel() for p in denoiser.parameters())
    print(f"{family}: built {folder} ({params / 1e9:.2f} B denoiser parameters, {shape}) "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    pipe.set_progress_bar_config(disable=True)
    extra = {} if family == "sdxl" else {"max_sequence_length": seq}  # SDXL's CLIPs take 77 tokens, fixed
    theirs = step_times(pipe, torch.cuda.synchronize, args.size, args.steps, args.repeats, guidance_scale=guidance,
                        **extra)
    del pipe
    gc.collect()
    torch.cuda.empty_cache()
    out = subprocess.run([args.bench, family, str(folder), "--size", str(args.size), "--steps", str(args.steps),
                          "--repeats", str(args.repeats), "--dtype", "bf16", "--seq", str(seq),
                          "--guidance", str(guidance)], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stdout + out.stderr, file=sys.stderr)
        print(f"RESULT {key}=failed: gpu_bench {family} exited {out.returncode}")
        return 1
    ours = json.loads(out.stdout.strip().splitlines()[-1])
    theirs_s = statistics.median(theirs)
    print(f"RESULT {family}_step_ms_twistedpic={ours['step_s'] * 1e3:.1f}  # {args.size}x{args.size}, bf16, "
          f"{shape}; weights loaded in {ours['load_s']:.1f} s")
    print(f"RESULT {family}_step_ms_diffusers={theirs_s * 1e3:.1f}")
    print(f"RESULT {key}={ours['step_s'] / theirs_s:.3f}  # target <= 1.0")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def cmd_sd3(args) -> int:
    return compare_step("sd3", Path(args.work) / "sd35_large_shaped",
                        lambda folder: build_folder(folder, Path(args.tokenizers), args.layers), args,
                        f"CFG, {args.layers} of 38 SD3.5-Large blocks", 5.0, 77)


def flux_transformer_config(double: int, single: int) -> dict:
    # black-forest-labs/FLUX.1-dev transformer/config.json, with the block counts configurable.
    return dict(patch_size=1, in_channels=64, num_layers=double, num_single_layers=single, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))


def build_flux_folder(folder: Path, clip_tokenizer: Path, t5_tokenizer: Path, double: int, single: int,
                      device: str = "cuda"):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(clip_tokenizer)
    tok2 = AutoTokenizer.from_pretrained(t5_tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        # The real widths (CLIP-L 768 pooled, T5 4096), one or two layers: not what is timed.
        clip = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=768, intermediate_size=256, num_attention_heads=12, num_hidden_layers=2,
            hidden_act="quick_gelu", max_position_embeddings=77, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
        t5 = T5EncoderModel(T5Config(vocab_size=len(tok2), d_model=4096, d_kv=64, d_ff=256, num_layers=1, num_heads=8,
                                     feed_forward_proj="gated-gelu", relative_attention_num_buckets=32))
        transformer = FluxTransformer2DModel(**flux_transformer_config(double, single))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32, 32, 32, 32),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=1, norm_num_groups=32, sample_size=1024, use_quant_conv=False,
                            use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                                                max_shift=1.15, shift=3.0, use_dynamic_shifting=True)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tok, text_encoder_2=t5,
                        tokenizer_2=tok2, transformer=transformer)
    pipe = pipe.to(torch.bfloat16)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields that differ from the class defaults).
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                                        "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816, norm_num_groups=32)
# Its scheduler_config.json.
SDXL_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      prediction_type="epsilon", steps_offset=1, timestep_spacing="leading", interpolation_type="linear",
                      use_karras_sigmas=False)


def build_sdxl_folder(folder: Path, clip_tokenizer: Path, device: str = "cuda"):
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok = AutoTokenizer.from_pretrained(clip_tokenizer)
    tok2 = AutoTokenizer.from_pretrained(clip_tokenizer, pad_token="!")
    torch.manual_seed(0)

    def clip(hidden, heads, projection=None):
        config = CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=256,
                                num_attention_heads=heads, num_hidden_layers=2, hidden_act="gelu",
                                max_position_embeddings=77, projection_dim=projection or hidden,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id)
        return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)

    with torch.device(device):
        # The real widths (CLIP-L 768, CLIP-G 1280 projected to 1280), two layers: not what is timed.
        text_encoder, text_encoder_2 = clip(768, 12), clip(1280, 20, 1280)
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32, 32),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=1, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025,
                            force_upcast=False)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tok,
                                     tokenizer_2=tok2, unet=unet, scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER))
    pipe = pipe.to(torch.bfloat16)
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def step_times(pipe, sync, size: int, steps: int, repeats: int, **kwargs):
    """diffusers' step times (between consecutive step callbacks, the device synchronized), warm-up discarded."""
    import torch

    stamps, times = [], []

    def on_step(_pipe, _i, _t, kw):
        sync()
        stamps.append(time.perf_counter())
        return kw

    for i in range(repeats + 1):  # the first is a warm-up
        stamps.clear()
        with torch.inference_mode():
            pipe(PROMPT, height=size, width=size, num_inference_steps=steps, generator=torch.Generator().manual_seed(i),
                 callback_on_step_end=on_step, output_type="latent", **kwargs)
        if i:
            times += [b - a for a, b in zip(stamps, stamps[1:])]
    return times


def cmd_flux(args) -> int:
    return compare_step("flux", Path(args.work) / "flux1_dev_shaped",
                        lambda folder: build_flux_folder(folder, Path(args.clip_tokenizer), Path(args.t5_tokenizer),
                                                         args.double, args.single), args,
                        f"{args.double} + {args.single} of FLUX.1's 19 + 38 blocks", 3.5, 512)


def cmd_sdxl(args) -> int:
    return compare_step("sdxl", Path(args.work) / "sdxl_base_shaped",
                        lambda folder: build_sdxl_folder(folder, Path(args.clip_tokenizer)), args,
                        "stable-diffusion-xl-base-1.0's whole UNet, CFG", 5.0, 77)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("safetensors")
    s.add_argument("file")
    s.add_argument("ours")
    d = sub.add_parser("sd3")
    d.add_argument("bench")
    d.add_argument("work")
    d.add_argument("tokenizers")
    d.add_argument("--layers", type=int, default=38)
    d.add_argument("--size", type=int, default=1024)
    d.add_argument("--steps", type=int, default=4)
    d.add_argument("--repeats", type=int, default=2)
    f = sub.add_parser("flux")
    f.add_argument("bench")
    f.add_argument("work")
    f.add_argument("clip_tokenizer")
    f.add_argument("t5_tokenizer")
    f.add_argument("--double", type=int, default=19)
    f.add_argument("--single", type=int, default=38)
    f.add_argument("--size", type=int, default=1024)
    f.add_argument("--steps", type=int, default=4)
    f.add_argument("--repeats", type=int, default=2)
    x = sub.add_parser("sdxl")
    x.add_argument("bench")
    x.add_argument("work")
    x.add_argument("clip_tokenizer")
    x.add_argument("--size", type=int, default=1024)
    x.add_argument("--steps", type=int, default=4)
    x.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    return {"safetensors": cmd_safetensors, "sd3": cmd_sd3, "flux": cmd_flux, "sdxl": cmd_sdxl}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
