#!/usr/bin/env python3
"""Tiny random-weight SDXL pipelines and diffusers' outputs for them.

    sdxl_reference.py OUT_DIR [--variant base|vpred|fasttest|turbo|all|bench]

For each variant this writes
  OUT_DIR/<variant>/                         a diffusers StableDiffusionXLPipeline folder (fp32 safetensors)
  OUT_DIR/<variant>.reference.safetensors    diffusers' outputs, network by network
  OUT_DIR/<variant>.reference.json           the settings of each whole-pipeline run ({"runs": [...]})

The C++ networks must reproduce every tensor (tests/unit/pipeline/sdxl/sdxl_parity_test.cpp).
Every folder has SDXL's parts: text_encoder a CLIPTextModel (CLIP-L), text_encoder_2 a
CLIPTextModelWithProjection (CLIP-G), tokenizer_2 padding with "!", the "text_time" additional embedding,
a 4-channel VAE, and SDXL's shipped scheduler_config.json (EulerDiscreteScheduler, scaled_linear,
steps_offset 1, "leading" spacing).
The variants:
  base      SDXL's layout at small widths: DownBlock2D then two CrossAttnDownBlock2D, linear projection,
            transformer_layers_per_block (1, 1, 2), unequal widths and head counts (so that a mixed-up
            dimension cannot pass), epsilon prediction; the VAE as SDXL's (scaling_factor 0.13025, no
            shift_factor).
  vpred     v_prediction in the scheduler config, and a different UNet: two cross-attention levels,
            layers_per_block (1, 2), transformer_layers_per_block (1, 2), norm_num_groups 4, 1x1-convolution
            projections (use_linear_projection false), freq_shift 1.
  fasttest  diffusers' own fast-test components, as get_dummy_components() in diffusers'
            tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl.py builds them (UNet
            block_out_channels (2, 4), norm_num_groups 1, ...), but for the CLIPs' vocab_size: our
            tokenizers' 1500, not 1000.
  turbo     base's networks with SDXL Turbo's scheduler_config.json (Euler ancestral, "trailing" spacing).
  bench     a folder only, for scripts/family_bench.py: SDXL's levels at a fifth of its widths.
Whole-pipeline runs (RUNS; tests/unit/pipeline/sdxl/sdxl_pipeline_test.cpp): each scheduler as the request
option "scheduler" names it, epsilon and v-prediction, non-square sizes, no / empty / non-empty negative
prompts, guidance_rescale, two images per prompt, and Turbo-style 1 and 4 steps with guidance off.
Each UNet runs on fixed random inputs: batch 2, non-square latents, two different (fractional) timesteps,
again on latents with odd sides (diffusers then forwards the upsampling sizes), and in bf16.
Weights are random (seeded), so the images mean nothing; parity is what counts.
"""
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

from reference_main import make_references

HERE = Path(__file__).resolve().parent

PROMPTS = ["a red circle on a white background", "A blue square, on a YELLOW background!"]
# SDXL's shipped scheduler_config.json (stabilityai/stable-diffusion-xl-base-1.0), prediction_type per variant.
SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
    "use_karras_sigmas": False,
}
# (latent height, latent width) of the UNet runs: non-square, then with odd sides.
LATENTS = {"base": [(8, 12), (5, 7)], "vpred": [(6, 10), (5, 3)], "fasttest": [(6, 10), (7, 5)]}
TIMESTEPS = [999.0, 401.375]  # the second fractional, as a Karras schedule gives
TIME_IDS = [[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0], [768.0, 1344.0, 16.0, 32.0, 896.0, 1152.0]]


def tokenizers(out: Path):
    """The project's tiny tokenizers (scripts/make_tokenizers.py), made once into OUT_DIR/tokenizers:
    tokenizer/ pads with <|endoftext|> (CLIP-L), tokenizer_2/ with "!" (CLIP-G), as SDXL's."""
    from transformers import CLIPTokenizer

    root = out / "tokenizers"
    if not (root / "tokenizer_2" / "vocab.json").exists():
        subprocess.run([sys.executable, str(HERE / "make_tokenizers.py"), str(root)], check=True)
    return CLIPTokenizer.from_pretrained(root / "tokenizer"), CLIPTokenizer.from_pretrained(root / "tokenizer_2")


def components(variant: str, tok, tok2):
    """(unet, vae, clip_l config, clip_g config) of a variant, the UNet and VAE built under the current seed."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    if variant == "fasttest":
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
            cross_attention_dim=64, norm_num_groups=1)
        torch.manual_seed(0)
        vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                            down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                            up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, sample_size=128)
        clip = CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
                              num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=len(tok),
                              hidden_act="gelu", projection_dim=32)
        return unet, vae, clip, clip
    if variant == "bench":
        # SDXL's levels (no attention, then 2 cross-attention levels with deeper transformers, heads of 64),
        # at a fifth of its widths; 2-layer CLIPs.
        clip_l = CLIPTextConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_attention_heads=2,
                                num_hidden_layers=2, projection_dim=128, hidden_act="quick_gelu",
                                max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=2, pad_token_id=1)
        clip_g = CLIPTextConfig(vocab_size=len(tok2), hidden_size=256, intermediate_size=512, num_attention_heads=4,
                                num_hidden_layers=2, projection_dim=256, hidden_act="gelu", max_position_embeddings=77,
                                bos_token_id=tok2.bos_token_id, eos_token_id=tok2.eos_token_id, pad_token_id=1)
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=4, out_channels=4, block_out_channels=(64, 128, 256), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(1, 2, 4), transformer_layers_per_block=(1, 2, 4), use_linear_projection=True,
            norm_num_groups=32, cross_attention_dim=128 + 256, addition_embed_type="text_time",
            addition_time_embed_dim=64, projection_class_embeddings_input_dim=256 + 6 * 64)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64, 64),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=1, norm_num_groups=32, sample_size=256, scaling_factor=0.13025)
        return unet, vae, clip_l, clip_g
    # Deliberately unequal widths, so that a mixed-up dimension cannot pass.
    clip_l = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=40, num_attention_heads=4,
                            num_hidden_layers=3, projection_dim=24, hidden_act="quick_gelu", max_position_embeddings=77,
                            bos_token_id=tok.bos_token_id, eos_token_id=2, pad_token_id=1)
    clip_g = CLIPTextConfig(vocab_size=len(tok2), hidden_size=48, intermediate_size=56, num_attention_heads=4,
                            num_hidden_layers=3, projection_dim=40, hidden_act="gelu", max_position_embeddings=77,
                            bos_token_id=tok2.bos_token_id, eos_token_id=tok2.eos_token_id, pad_token_id=1)
    context, pooled = 32 + 48, 40
    if variant == "base":
        time_dim = 8
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 24, 40), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4, 5), transformer_layers_per_block=(1, 1, 2), use_linear_projection=True,
            norm_num_groups=8, cross_attention_dim=context, addition_embed_type="text_time",
            addition_time_embed_dim=time_dim, projection_class_embeddings_input_dim=pooled + 6 * time_dim)
    else:  # vpred
        time_dim = 6
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, block_out_channels=(12, 20), layers_per_block=(1, 2),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=(3, 4), transformer_layers_per_block=(1, 2), use_linear_projection=False,
            norm_num_groups=4, freq_shift=1, cross_attention_dim=context, addition_embed_type="text_time",
            addition_time_embed_dim=time_dim, projection_class_embeddings_input_dim=pooled + 6 * time_dim)
    # Four blocks: SDXL's scale factor 8.
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=4, sample_size=32, scaling_factor=0.13025)
    return unet, vae, clip_l, clip_g


def build(variant: str, out: Path):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if variant == "turbo":
        return build_turbo(out)

    tok, tok2 = tokenizers(out)
    torch.manual_seed({"base": 2024, "vpred": 3141}.get(variant, 0))
    unet, vae, clip_l, clip_g = components(variant, tok, tok2)
    torch.manual_seed({"base": 2025, "vpred": 3142}.get(variant, 0))
    text_encoder, text_encoder_2 = CLIPTextModel(clip_l), CLIPTextModelWithProjection(clip_g)
    # Random init leaves some weights at zero or one (norms, biases); perturb everything so each one matters.
    with torch.no_grad():
        torch.manual_seed(99)
        for m in (text_encoder, text_encoder_2, unet, vae):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    scheduler = EulerDiscreteScheduler.from_config(SCHEDULER)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tok,
                                     tokenizer_2=tok2, unet=unet, scheduler=scheduler)
    folder = out / variant
    shutil.rmtree(folder, ignore_errors=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    # SDXL's scheduler_config.json as shipped (its extra keys included), not as save_pretrained rewrites it.
    config = dict(SCHEDULER, prediction_type="v_prediction" if variant == "vpred" else "epsilon")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(config, indent=2))
    # transformers 5 saves only tokenizer.json; ship the source files too, as the Hub's SDXL folders do.
    for name in ("tokenizer", "tokenizer_2"):
        shutil.copytree(out / "tokenizers" / name, folder / name, dirs_exist_ok=True)
    return StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32, add_watermarker=False)


def build_turbo(out: Path):
    """base's networks with SDXL Turbo's scheduler_config.json: Euler ancestral, "trailing" spacing."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    if not (out / "base" / "model_index.json").exists():
        build("base", out)
    folder = out / "turbo"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(out / "base", folder)
    config = dict(SCHEDULER, _class_name="EulerAncestralDiscreteScheduler", timestep_spacing="trailing")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(config, indent=2))
    index = json.loads((folder / "model_index.json").read_text())  # diffusers loads the class model_index names
    index["scheduler"] = ["diffusers", "EulerAncestralDiscreteScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=torch.float32, add_watermarker=False)


# UNet2DConditionModel options that diffusers accepts and SDXL's checkpoints do not use, in two UNet-only
# folders (OUT_DIR/unet_options/<name>/), run with base's reference: the C++ UNet implements them too.
UNET_OPTIONS = {
    "a": dict(block_out_channels=(8, 16, 24), layers_per_block=(1, 2, 1),
              down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"),
              attention_head_dim=(2, 4, 3), transformer_layers_per_block=(2, 1, 1),
              reverse_transformer_layers_per_block=(1, 3, 2), resnet_time_scale_shift="scale_shift",
              downsample_padding=0, center_input_sample=True, conv_in_kernel=5, conv_out_kernel=1,
              time_embedding_dim=40, mid_block_scale_factor=0.75, resnet_out_scale_factor=1.25,
              use_linear_projection=True, norm_num_groups=4, norm_eps=1e-4),
    "b": dict(block_out_channels=(12, 20), layers_per_block=1, mid_block_type=None,
              down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=5,
              flip_sin_to_cos=False, freq_shift=1, upcast_attention=True, norm_num_groups=4),
}


def unet_options(out: Path, gen, ref: dict, context, text_embeds):
    import torch
    from diffusers import UNet2DConditionModel

    for name, options in UNET_OPTIONS.items():
        torch.manual_seed(17)
        time_dim, pooled = 4, text_embeds.shape[1]
        unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                    cross_attention_dim=[context.shape[2]] * len(options["block_out_channels"]),
                                    addition_embed_type="text_time", addition_time_embed_dim=time_dim,
                                    projection_class_embeddings_input_dim=pooled + 6 * time_dim, **options)
        with torch.no_grad():
            for p in unet.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        unet.save_pretrained(out / "unet_options" / name, safe_serialization=True)
        sample = torch.randn((2, 4, 8, 12), generator=gen)
        ref[f"unet_options.{name}.sample"] = sample
        ref[f"unet_options.{name}.out"] = unet(sample, ref["unet.timestep"], encoder_hidden_states=context,
                                               added_cond_kwargs={"text_embeds": text_embeds,
                                                                  "time_ids": ref["unet.time_ids"]},
                                               return_dict=False)[0]


def reference(variant: str, out: Path):
    import torch
    from safetensors.torch import save_file

    pipe = build(variant, out)
    pipe.set_progress_bar_config(disable=True)
    ref, runs = {}, []
    if variant == "turbo":  # base's networks: only its own whole runs
        with torch.no_grad():
            whole_runs(pipe, variant, ref, runs)
        save_file({k: v.contiguous() for k, v in ref.items()}, str(out / f"{variant}.reference.safetensors"))
        (out / f"{variant}.reference.json").write_text(json.dumps({"prompts": PROMPTS, "runs": runs}, indent=1))
        return
    gen = torch.Generator().manual_seed(7)
    unet = pipe.unet
    pooled_width = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim

    with torch.no_grad():
        # The text encoders, on the pipeline's own token ids.
        for i, (tok, enc) in enumerate([(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]):
            ids = tok(PROMPTS, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            o = enc(ids, output_hidden_states=True)
            ref[f"clip{i}.input_ids"] = ids
            ref[f"clip{i}.penultimate"] = o.hidden_states[-2]
            ref[f"clip{i}.pooled"] = o.text_embeds if i == 1 else o.pooler_output
        pe, _, pooled, _ = pipe.encode_prompt(PROMPTS, do_classifier_free_guidance=False)
        ref["prompt_embeds"], ref["pooled_prompt_embeds"] = pe, pooled

        # The UNet on fixed random inputs, at each latent size.
        context = torch.randn((2, 77, unet.config.cross_attention_dim), generator=gen)
        text_embeds = torch.randn((2, pooled_width), generator=gen)
        ref["unet.timestep"] = torch.tensor(TIMESTEPS)
        ref["unet.context"], ref["unet.text_embeds"] = context, text_embeds
        ref["unet.time_ids"] = torch.tensor(TIME_IDS)
        for name, (h, w) in zip(("unet", "unet_odd"), LATENTS[variant]):
            sample = torch.randn((2, 4, h, w), generator=gen)
            ref[f"{name}.sample"] = sample
            ref[f"{name}.out"] = unet(sample, ref["unet.timestep"], encoder_hidden_states=context,
                                      added_cond_kwargs={"text_embeds": text_embeds, "time_ids": ref["unet.time_ids"]},
                                      return_dict=False)[0]

        if variant == "base":
            unet_options(out, gen, ref, context, text_embeds)

        # The same UNet in bf16, as diffusers runs it: the sinusoidal projections in fp32, then cast; the
        # time ids in the prompt embeddings' dtype, as the pipeline passes them.
        # A copy: casting the pipeline's own UNet to bf16 and back would round its weights for the runs below.
        bf16 = torch.bfloat16
        unet_bf16 = copy.deepcopy(unet).to(bf16)
        ref["unet.bf16.out"] = unet_bf16(ref["unet.sample"].to(bf16), ref["unet.timestep"],
                                    encoder_hidden_states=context.to(bf16),
                                    added_cond_kwargs={"text_embeds": text_embeds.to(bf16),
                                                       "time_ids": ref["unet.time_ids"].to(bf16)},
                                    return_dict=False)[0]
        del unet_bf16

        # The VAE's decoder, on latents as it sees them (already unscaled).
        latents = torch.randn((2, 4, 5, 7), generator=gen)
        ref["vae.latents"] = latents
        ref["vae.out"] = pipe.vae.decode(latents, return_dict=False)[0]

        whole_runs(pipe, variant, ref, runs)

    save_file({k: v.contiguous() for k, v in ref.items()}, str(out / f"{variant}.reference.safetensors"))
    (out / f"{variant}.reference.json").write_text(json.dumps({"prompts": PROMPTS, "runs": runs}, indent=1))


# The request option "scheduler" -> (diffusers class, from_config overrides), as twistedpic names them.
SCHEDULERS = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": False}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
}
# The whole-pipeline runs of each variant: (name, scheduler or None for the folder's, prompts, negative prompts
# (None: not given), height, width, steps, guidance, images per prompt, seed, initial latents given, guidance_rescale).
RUNS = {
    "base": [
        ("euler", None, PROMPTS, None, 48, 64, 3, 5.0, 1, 3, True, 0.0),
        ("euler_a", "euler_a", PROMPTS[:1], [""], 48, 64, 3, 5.0, 2, 11, False, 0.0),
        ("dpmpp_2m", "dpmpp_2m", PROMPTS, ["blurry, red", "a green triangle"], 64, 40, 4, 4.0, 1, 12, False, 0.0),
        ("dpmpp_2m_karras", "dpmpp_2m_karras", PROMPTS[1:], None, 40, 56, 4, 6.0, 1, 13, False, 0.7),
    ],
    "vpred": [
        ("euler", None, PROMPTS, None, 48, 64, 3, 5.0, 1, 4, True, 0.0),
        ("euler_a", "euler_a", PROMPTS[:1], ["blurry"], 32, 48, 3, 5.0, 1, 14, False, 0.0),
        ("dpmpp_2m_karras", "dpmpp_2m_karras", PROMPTS[:1], None, 48, 32, 4, 5.0, 1, 15, False, 0.5),
    ],
    # SDXL Turbo's way: its own folder's Euler ancestral with trailing spacing, 1 to 4 steps, guidance off.
    "turbo": [
        ("one_step", None, PROMPTS[:1], None, 48, 64, 1, 0.0, 1, 21, False, 0.0),
        ("four_steps", None, PROMPTS, None, 48, 64, 4, 1.0, 1, 22, False, 0.0),
    ],
}


def whole_runs(pipe, variant: str, ref: dict, runs: list):
    """diffusers' StableDiffusionXLPipeline on each of the variant's RUNS: final latents and 8-bit pixels."""
    import diffusers
    import torch

    folder_config, folder_class = dict(pipe.scheduler.config), type(pipe.scheduler)
    for name, scheduler, prompts, negatives, height, width, steps, guidance, count, seed, given, rescale in \
            RUNS.get(variant, []):
        if scheduler:
            cls, overrides = SCHEDULERS[scheduler]
            pipe.scheduler = getattr(diffusers, cls).from_config(folder_config, **overrides)
        else:
            pipe.scheduler = folder_class.from_config(folder_config)
        common = dict(prompt=prompts, negative_prompt=negatives, height=height, width=width,
                      num_inference_steps=steps, guidance_scale=guidance, num_images_per_prompt=count,
                      guidance_rescale=rescale)
        if given:
            noise = torch.randn((len(prompts) * count, 4, height // pipe.vae_scale_factor,
                                 width // pipe.vae_scale_factor), generator=torch.Generator().manual_seed(100 + seed))
            ref[f"{name}.initial_latents"] = noise
            common["latents"] = noise
        ref[f"{name}.final_latents"] = pipe(**common, generator=torch.Generator().manual_seed(seed),
                                            output_type="latent").images
        denoising_steps = len(pipe.scheduler.timesteps)
        image = pipe(**common, generator=torch.Generator().manual_seed(seed), output_type="np").images
        ref[f"{name}.image"] = torch.from_numpy((image * 255).round().astype("uint8"))
        options = {}
        if scheduler:
            options["scheduler"] = scheduler
        if rescale:
            options["guidance_rescale"] = str(rescale)
        runs.append(dict(name=name, prompts=prompts, negative_prompts=negatives, height=height, width=width,
                         steps=steps, guidance_scale=guidance, images_per_prompt=count, seed=seed,
                         initial_latents=given, options=options, denoising_steps=denoising_steps))
    pipe.scheduler = folder_class.from_config(folder_config)


def main():
    make_references("sdxl_reference.py", __doc__, ["base", "vpred", "fasttest", "turbo"], build, reference)


if __name__ == "__main__":
    main()
