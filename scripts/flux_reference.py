#!/usr/bin/env python3
"""Tiny random-weight Flux pipelines and diffusers' outputs for them.

    flux_reference.py OUT_DIR [--variant schnell|dev|all|bench]

For each variant this writes
  OUT_DIR/<variant>/                         a diffusers FluxPipeline folder (fp32 safetensors)
  OUT_DIR/<variant>.reference.safetensors    diffusers' outputs, component by component
  OUT_DIR/<variant>.reference.json           the prompts and settings of each whole-pipeline run

The C++ pipeline must reproduce every tensor (tests/unit/pipeline/flux/flux_parity_test.cpp).
The variants:
  schnell  FLUX.1 [schnell]'s shape: no guidance embedding, a static shift, a ReLU T5 (as diffusers' tiny
           test T5), CLIP pooling at the first EOS; a non-square size.
  dev      FLUX.1 [dev]'s: the guidance embedding, dynamic shifting (base/max image_seq_len read from the
           scheduler config), a gated-GELU T5 (T5 v1.1), CLIP's legacy pooling rule (eos_token_id 2); a
           second run with true CFG and a negative prompt, its noise drawn from the seed (not passed in).
           Also OUT_DIR/dev_bfl/: the same folder with the transformer saved in the original Black Forest Labs
           key layout (fused qkv, ComfyUI's "model.diffusion_model." prefix) as transformer/flux1-dev-tiny.safetensors.
  bench    a folder only, for scripts/family_bench.py: head size 128, as FLUX.1's.
Weights are random (seeded), so the images mean nothing; parity is what counts.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from reference_main import make_references

HERE = Path(__file__).resolve().parent

PROMPTS = ["a red circle on a white background", "A blue square, on a YELLOW background!"]
MAX_SEQUENCE_LENGTH = 24
# (height, width, steps, guidance) of the main run: non-square in both variants.
RUNS = {"schnell": (32, 48, 3, 0.0), "dev": (64, 80, 4, 3.5)}
CFG_PROMPT, CFG_NEGATIVE, CFG_SCALE, CFG_SEED, CFG_COUNT = "a green triangle", "blurry, red", 2.5, 11, 2


def tokenizers(out: Path):
    """The project's tiny tokenizers (scripts/make_tokenizers.py), made once into OUT_DIR/tokenizers."""
    from transformers import CLIPTokenizer, T5TokenizerFast

    root = out / "tokenizers"
    if not (root / "tokenizer_3" / "spiece.model").exists():
        subprocess.run([sys.executable, str(HERE / "make_tokenizers.py"), str(root)], check=True)
    return CLIPTokenizer.from_pretrained(root / "tokenizer"), T5TokenizerFast.from_pretrained(root / "tokenizer_3")


def build(variant: str, out: Path):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tok, tok2 = tokenizers(out)
    torch.manual_seed({"schnell": 4321, "dev": 8765}.get(variant, 99))
    dev = variant != "schnell"
    big = variant == "bench"
    # Deliberately unequal widths, so that a mixed-up dimension cannot pass.
    clip = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=40, num_attention_heads=4,
                          num_hidden_layers=2, projection_dim=20, hidden_act="quick_gelu", max_position_embeddings=77,
                          bos_token_id=tok.bos_token_id, eos_token_id=2 if dev else tok.eos_token_id, pad_token_id=1)
    joint = 256 if big else 40
    t5 = T5Config(vocab_size=len(tok2), d_model=joint, d_kv=8, d_ff=72, num_layers=2, num_heads=4,
                  relative_attention_num_buckets=8, relative_attention_max_distance=20,
                  feed_forward_proj="gated-gelu" if dev else "relu", is_encoder_decoder=False, use_cache=False)
    head, heads = (128, 4) if big else (16, 3)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=3 if not big else 4, attention_head_dim=head,
        num_attention_heads=heads, joint_attention_dim=joint, pooled_projection_dim=32, guidance_embeds=dev,
        axes_dims_rope=(16, 56, 56) if big else (4, 6, 6))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=4, sample_size=32, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    if dev:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, base_image_seq_len=8, max_image_seq_len=40)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    # Random init leaves some weights at zero or one (norms, gates); perturb everything so each one matters.
    modules = [CLIPTextModel(clip), T5EncoderModel(t5), transformer, vae]
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    pipe = FluxPipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=modules[0], tokenizer=tok,
                        text_encoder_2=modules[1], tokenizer_2=tok2)
    pipe.save_pretrained(out / variant, safe_serialization=True)
    # transformers 5 saves only tokenizer.json; ship the source files too, as the Hub's Flux folders do.
    shutil.copytree(out / "tokenizers" / "tokenizer", out / variant / "tokenizer", dirs_exist_ok=True)
    shutil.copytree(out / "tokenizers" / "tokenizer_3", out / variant / "tokenizer_2", dirs_exist_ok=True)
    # The reference is what loads from disk (in memory, T5's tied embedding may differ from the saved one).
    return FluxPipeline.from_pretrained(out / variant, torch_dtype=torch.float32)


def bfl_checkpoint(sd: dict, layers: int, single_layers: int) -> dict:
    """diffusers' FluxTransformer2DModel tensors in the original Black Forest Labs layout (the inverse of
    diffusers' convert_flux_transformer_checkpoint_to_diffusers), under ComfyUI's prefix."""
    import torch

    sd, out = dict(sd), {}

    def take(diff, bfl):
        for s in ("weight", "bias"):
            if f"{diff}.{s}" in sd:
                out[f"{bfl}.{s}"] = sd.pop(f"{diff}.{s}")

    def norm(diff, bfl):
        out[f"{bfl}.scale"] = sd.pop(f"{diff}.weight")

    def fuse(diffs, bfl):
        for s in ("weight", "bias"):
            out[f"{bfl}.{s}"] = torch.cat([sd.pop(f"{d}.{s}") for d in diffs])

    for diff, bfl in [("x_embedder", "img_in"), ("context_embedder", "txt_in"),
                      ("time_text_embed.timestep_embedder.linear_1", "time_in.in_layer"),
                      ("time_text_embed.timestep_embedder.linear_2", "time_in.out_layer"),
                      ("time_text_embed.guidance_embedder.linear_1", "guidance_in.in_layer"),
                      ("time_text_embed.guidance_embedder.linear_2", "guidance_in.out_layer"),
                      ("time_text_embed.text_embedder.linear_1", "vector_in.in_layer"),
                      ("time_text_embed.text_embedder.linear_2", "vector_in.out_layer"),
                      ("proj_out", "final_layer.linear")]:
        take(diff, bfl)
    for s in ("weight", "bias"):
        scale, shift = sd.pop(f"norm_out.linear.{s}").chunk(2, dim=0)
        out[f"final_layer.adaLN_modulation.1.{s}"] = torch.cat([shift, scale])
    for i in range(layers):
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for diff, bfl in [("norm1.linear", "img_mod.lin"), ("norm1_context.linear", "txt_mod.lin"),
                          ("attn.to_out.0", "img_attn.proj"), ("attn.to_add_out", "txt_attn.proj"),
                          ("ff.net.0.proj", "img_mlp.0"), ("ff.net.2", "img_mlp.2"),
                          ("ff_context.net.0.proj", "txt_mlp.0"), ("ff_context.net.2", "txt_mlp.2")]:
            take(p + diff, q + bfl)
        for diff, bfl in [("attn.norm_q", "img_attn.norm.query_norm"), ("attn.norm_k", "img_attn.norm.key_norm"),
                          ("attn.norm_added_q", "txt_attn.norm.query_norm"),
                          ("attn.norm_added_k", "txt_attn.norm.key_norm")]:
            norm(p + diff, q + bfl)
        fuse([p + "attn.to_q", p + "attn.to_k", p + "attn.to_v"], q + "img_attn.qkv")
        fuse([p + "attn.add_q_proj", p + "attn.add_k_proj", p + "attn.add_v_proj"], q + "txt_attn.qkv")
    for i in range(single_layers):
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        take(p + "norm.linear", q + "modulation.lin")
        take(p + "proj_out", q + "linear2")
        norm(p + "attn.norm_q", q + "norm.query_norm")
        norm(p + "attn.norm_k", q + "norm.key_norm")
        fuse([p + "attn.to_q", p + "attn.to_k", p + "attn.to_v", p + "proj_mlp"], q + "linear1")
    assert not sd, sorted(sd)
    return {"model.diffusion_model." + k: v.contiguous() for k, v in out.items()}


def write_bfl_twin(pipe, out: Path):
    """OUT_DIR/dev_bfl: dev's folder with its transformer as a single Black Forest Labs-layout file."""
    from safetensors.torch import save_file

    twin = out / "dev_bfl"
    shutil.rmtree(twin, ignore_errors=True)
    shutil.copytree(out / "dev", twin)
    (twin / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    cfg = pipe.transformer.config
    save_file(bfl_checkpoint(pipe.transformer.state_dict(), cfg.num_layers, cfg.num_single_layers),
              str(twin / "transformer" / "flux1-dev-tiny.safetensors"))


def reference(variant: str, out: Path):
    import torch
    from safetensors.torch import save_file

    pipe = build(variant, out)
    pipe.set_progress_bar_config(disable=True)
    height, width, steps, guidance = RUNS[variant]
    ref = {}
    vsf = pipe.vae_scale_factor
    lat_h, lat_w = 2 * (height // (vsf * 2)), 2 * (width // (vsf * 2))
    gen = torch.Generator().manual_seed(7)
    noise = torch.randn((len(PROMPTS), 4, lat_h, lat_w), generator=gen)  # as drawn, before packing
    packed = pipe._pack_latents(noise, len(PROMPTS), 4, lat_h, lat_w)
    ref["initial_latents"] = noise
    ref["initial_packed"] = packed

    with torch.no_grad():
        # Components one by one, on the pipeline's own token ids.
        ids = pipe.tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        ref["clip.input_ids"] = ids
        ref["clip.pooled"] = pipe.text_encoder(ids).pooler_output
        ids = pipe.tokenizer_2(PROMPTS, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                               return_tensors="pt").input_ids
        ref["t5.input_ids"] = ids
        ref["t5.hidden"] = pipe.text_encoder_2(ids)[0]

        pe, pooled, text_ids = pipe.encode_prompt(PROMPTS, None, max_sequence_length=MAX_SEQUENCE_LENGTH)
        ref["prompt_embeds"], ref["pooled_prompt_embeds"] = pe, pooled
        img_ids = pipe._prepare_latent_image_ids(len(PROMPTS), lat_h // 2, lat_w // 2, "cpu", torch.float32)
        ref["txt_ids"], ref["img_ids"] = text_ids, img_ids
        t = torch.tensor([1.0, 0.4375])
        ref["transformer.timestep"] = t
        g = torch.tensor([3.5, 7.0]) if pipe.transformer.config.guidance_embeds else None
        if g is not None:
            ref["transformer.guidance"] = g
        ref["transformer.out"] = pipe.transformer(hidden_states=packed, timestep=t, guidance=g,
                                                  pooled_projections=pooled, encoder_hidden_states=pe,
                                                  txt_ids=text_ids, img_ids=img_ids, return_dict=False)[0]
        ref["vae.out"] = pipe.vae.decode(noise, return_dict=False)[0]

        runs = []
        common = dict(prompt=PROMPTS, height=height, width=width, num_inference_steps=steps, guidance_scale=guidance,
                      max_sequence_length=MAX_SEQUENCE_LENGTH)
        ref["final_latents"] = pipe(**common, latents=packed.clone(), output_type="latent").images
        ref["scheduler.timesteps"] = pipe.scheduler.timesteps.clone()
        ref["scheduler.sigmas"] = pipe.scheduler.sigmas.clone()
        image = pipe(**common, latents=packed.clone(), output_type="np").images  # float, [0, 1], NHWC
        ref["image"] = torch.from_numpy((image * 255).round().astype("uint8"))
        runs.append(dict(name="main", prompts=PROMPTS, negative_prompts=[], height=height, width=width, steps=steps,
                         guidance_scale=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH, images_per_prompt=1,
                         image_seq_len=(lat_h // 2) * (lat_w // 2), initial_latents=True, options={}))
        if variant == "dev":
            # True CFG with a negative prompt; the noise comes from the seed, so the seeds must agree too.
            cfg = dict(prompt=[CFG_PROMPT], negative_prompt=[CFG_NEGATIVE], true_cfg_scale=CFG_SCALE,
                       num_images_per_prompt=CFG_COUNT, height=height, width=width, num_inference_steps=steps,
                       guidance_scale=guidance, max_sequence_length=MAX_SEQUENCE_LENGTH)
            ref["cfg.final_latents"] = pipe(**cfg, generator=torch.Generator().manual_seed(CFG_SEED),
                                            output_type="latent").images
            image = pipe(**cfg, generator=torch.Generator().manual_seed(CFG_SEED), output_type="np").images
            ref["cfg.image"] = torch.from_numpy((image * 255).round().astype("uint8"))
            runs.append(dict(name="cfg", prompts=[CFG_PROMPT], negative_prompts=[CFG_NEGATIVE], height=height,
                             width=width, steps=steps, guidance_scale=guidance,
                             max_sequence_length=MAX_SEQUENCE_LENGTH, images_per_prompt=CFG_COUNT, seed=CFG_SEED,
                             image_seq_len=(lat_h // 2) * (lat_w // 2), initial_latents=False,
                             options={"true_cfg_scale": str(CFG_SCALE)}))

    if variant == "dev":
        write_bfl_twin(pipe, out)
    save_file({k: v.contiguous() for k, v in ref.items()}, str(out / f"{variant}.reference.safetensors"))
    (out / f"{variant}.reference.json").write_text(json.dumps({"runs": runs}, indent=1))


def main():
    make_references("flux_reference.py", __doc__, ["schnell", "dev"], build, reference)


if __name__ == "__main__":
    main()
