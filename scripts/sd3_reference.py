#!/usr/bin/env python3
"""Tiny random-weight SD3 pipelines and diffusers' outputs for them.

    sd3_reference.py OUT_DIR [--variant plain|sd35|all]

For each variant this writes
  OUT_DIR/<variant>/                         a diffusers folder (fp32 safetensors)
  OUT_DIR/<variant>.reference.safetensors    diffusers' outputs, component by component
  OUT_DIR/<variant>.reference.json           the prompts and settings that produced them

The C++ pipeline must reproduce every tensor (tests/unit/pipeline/sd3/sd3_parity_test.cpp).
The variants:
  plain     SD3 Medium's architecture: joint attention, no qk norm, T5 present.
  sd35      SD3.5's: qk RMS norm (Large) and dual-attention layers (Medium).
  fasttest  diffusers' own fast-test folder, built as get_dummy_components() in diffusers'
            tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py builds it: two
            byte-identical CLIPs of width 32 (64 side by side) against a joint_attention_dim of 32, which
            diffusers cuts to 32; patch size 1, a one-block VAE (scale factor 1), a 5-layer ReLU T5.
            The tokenizers are the project's, as transformers 5's save_pretrained writes them
            (tokenizer.json only); hf-internal-testing/tiny-random-t5's encoder is rebuilt from its
            config (no network here), and the CLIPs' vocab_size is our tokenizers' 1500, not 1000.
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
NEGATIVE = ["blurry", ""]
HEIGHT, WIDTH, STEPS, GUIDANCE = 32, 48, 3, 4.5
MAX_SEQUENCE_LENGTH = 64


def tokenizers(out: Path):
    """The project's tiny tokenizers (scripts/make_tokenizers.py), made once into OUT_DIR/tokenizers."""
    from transformers import CLIPTokenizer, T5TokenizerFast

    root = out / "tokenizers"
    if not (root / "tokenizer_3" / "spiece.model").exists():
        subprocess.run([sys.executable, str(HERE / "make_tokenizers.py"), str(root)], check=True)
    return (CLIPTokenizer.from_pretrained(root / "tokenizer"), CLIPTokenizer.from_pretrained(root / "tokenizer_2"),
            T5TokenizerFast.from_pretrained(root / "tokenizer_3"))


def build(variant: str, out: Path):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    tok, tok2, tok3 = tokenizers(out)
    if variant == "fasttest":
        return build_fasttest(out, tok, tok2, tok3)
    torch.manual_seed({"plain": 1234, "sd35": 5678}.get(variant, 42))
    # bench: SD3.5-Medium-like blocks, small enough for a CPU benchmark at 128x128.
    big = variant == "bench"
    heads, joint = (8, 256) if big else (4, 96)
    # Deliberately unequal widths, so that a mixed-up dimension cannot pass.
    clip_l = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=40, num_attention_heads=4,
                            num_hidden_layers=3, projection_dim=24, hidden_act="quick_gelu", max_position_embeddings=77,
                            bos_token_id=tok.bos_token_id, eos_token_id=2, pad_token_id=1)
    clip_g = CLIPTextConfig(vocab_size=len(tok2), hidden_size=48, intermediate_size=56, num_attention_heads=4,
                            num_hidden_layers=3, projection_dim=40, hidden_act="gelu", max_position_embeddings=77,
                            bos_token_id=tok2.bos_token_id, eos_token_id=tok2.eos_token_id, pad_token_id=1)
    t5 = T5Config(vocab_size=len(tok3), d_model=joint, d_kv=8, d_ff=72, num_layers=2, num_heads=4,
                  relative_attention_num_buckets=8, relative_attention_max_distance=20,
                  feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, out_channels=4,
        num_layers={"plain": 2, "sd35": 3}.get(variant, 6), attention_head_dim=32 if big else 8,
        num_attention_heads=heads, joint_attention_dim=joint, caption_projection_dim=heads * (32 if big else 8),
        pooled_projection_dim=24 + 40, pos_embed_max_size=24 if not big else 64,
        dual_attention_layers=(0, 1) if variant != "plain" else (),
        qk_norm="rms_norm" if variant != "plain" else None)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=4, sample_size=32, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    # Random init leaves some weights at zero or one (norms, gates); perturb everything so each one matters.
    modules = [CLIPTextModelWithProjection(clip_l), CLIPTextModelWithProjection(clip_g), T5EncoderModel(t5),
               transformer, vae]
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=vae,
                                    text_encoder=modules[0], tokenizer=tok, text_encoder_2=modules[1],
                                    tokenizer_2=tok2, text_encoder_3=modules[2], tokenizer_3=tok3)
    pipe.save_pretrained(out / variant, safe_serialization=True)
    # transformers 5 saves only tokenizer.json; ship the source files too, as the Hub's SD3 folders do.
    for name in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        shutil.copytree(out / "tokenizers" / name, out / variant / name, dirs_exist_ok=True)
    # The reference is what loads from disk (in memory, T5's tied embedding may differ from the saved one).
    return StableDiffusion3Pipeline.from_pretrained(out / variant, torch_dtype=torch.float32)


def build_fasttest(out: Path, tok, tok2, tok3):
    """diffusers' SD3 fast-test components (see the module docstring), saved and loaded back."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
    # diffusers' config but for vocab_size (1000 there): our tokenizers have 1500 ids.
    clip_config = CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                                 layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5, pad_token_id=1,
                                 vocab_size=len(tok), hidden_act="gelu", projection_dim=32)
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config)
    # hf-internal-testing/tiny-random-t5's encoder, from its config (no network here).
    torch.manual_seed(0)
    text_encoder_3 = T5EncoderModel(T5Config(
        vocab_size=len(tok3), d_model=32, d_kv=8, d_ff=37, num_layers=5, num_heads=4,
        relative_attention_num_buckets=8, feed_forward_proj="relu", dropout_rate=0.1, layer_norm_epsilon=1e-6,
        is_encoder_decoder=False, use_cache=False))
    torch.manual_seed(0)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    scheduler = FlowMatchEulerDiscreteScheduler()
    # Random init leaves norms at one and biases at zero; perturb them so each weight matters, keeping the
    # two CLIPs identical as diffusers' are (one seed each).
    with torch.no_grad():
        torch.manual_seed(99)
        for m in (text_encoder, text_encoder_3, transformer, vae):
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        text_encoder_2.load_state_dict(text_encoder.state_dict())
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=vae,
                                    text_encoder=text_encoder, tokenizer=tok, text_encoder_2=text_encoder_2,
                                    tokenizer_2=tok2, text_encoder_3=text_encoder_3, tokenizer_3=tok3)
    pipe.save_pretrained(out / "fasttest", safe_serialization=True)
    for name in ("tokenizer", "tokenizer_2", "tokenizer_3"):  # transformers 5: tokenizer.json only
        legacy = {"vocab.json", "merges.txt", "spiece.model"} & {p.name for p in (out / "fasttest" / name).iterdir()}
        assert not legacy, f"save_pretrained wrote {legacy}: fasttest no longer tests tokenizer.json"
    return StableDiffusion3Pipeline.from_pretrained(out / "fasttest", torch_dtype=torch.float32)


def reference(variant: str, out: Path):
    import torch
    from safetensors.torch import save_file

    pipe = build(variant, out)
    pipe.set_progress_bar_config(disable=True)
    ref = {}
    gen = torch.Generator().manual_seed(7)
    lat_h, lat_w = HEIGHT // pipe.vae_scale_factor, WIDTH // pipe.vae_scale_factor
    latents = torch.randn((len(PROMPTS), 4, lat_h, lat_w), generator=gen)
    ref["initial_latents"] = latents

    with torch.no_grad():
        # Components one by one, on the pipeline's own token ids.
        for i, (tok, enc) in enumerate([(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]):
            ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            o = enc(ids, output_hidden_states=True)
            ref[f"clip{i}.input_ids"] = ids
            ref[f"clip{i}.penultimate"] = o.hidden_states[-2]
            ref[f"clip{i}.pooled"] = o.text_embeds
        ids = pipe.tokenizer_3(PROMPTS, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                               add_special_tokens=True, return_tensors="pt").input_ids
        ref["t5.input_ids"] = ids
        ref["t5.hidden"] = pipe.text_encoder_3(ids)[0]

        pe, npe, pooled, npooled = pipe.encode_prompt(PROMPTS, None, None, negative_prompt=NEGATIVE,
                                                      do_classifier_free_guidance=True,
                                                      max_sequence_length=MAX_SEQUENCE_LENGTH)
        ref["prompt_embeds"], ref["negative_prompt_embeds"] = pe, npe
        ref["pooled_prompt_embeds"], ref["negative_pooled_prompt_embeds"] = pooled, npooled
        t = torch.tensor([1000.0, 437.5])
        ref["transformer.timestep"] = t
        ref["transformer.out"] = pipe.transformer(hidden_states=latents, timestep=t, encoder_hidden_states=pe,
                                                  pooled_projections=pooled, return_dict=False)[0]
        ref["vae.out"] = pipe.vae.decode(latents, return_dict=False)[0]

        pipe.scheduler.set_timesteps(STEPS)
        ref["scheduler.timesteps"] = pipe.scheduler.timesteps.clone()
        ref["scheduler.sigmas"] = pipe.scheduler.sigmas.clone()

        common = dict(prompt=PROMPTS, negative_prompt=NEGATIVE, height=HEIGHT, width=WIDTH, num_inference_steps=STEPS,
                      guidance_scale=GUIDANCE, max_sequence_length=MAX_SEQUENCE_LENGTH)
        ref["final_latents"] = pipe(**common, latents=latents.clone(), output_type="latent").images
        image = pipe(**common, latents=latents.clone(), output_type="np").images  # float, [0, 1], NHWC
        ref["image"] = torch.from_numpy((image * 255).round().astype("uint8"))

    save_file({k: v.contiguous() for k, v in ref.items()}, str(out / f"{variant}.reference.safetensors"))
    settings = dict(prompts=PROMPTS, negative_prompts=NEGATIVE, height=HEIGHT, width=WIDTH, steps=STEPS,
                    guidance_scale=GUIDANCE, max_sequence_length=MAX_SEQUENCE_LENGTH)
    (out / f"{variant}.reference.json").write_text(json.dumps(settings, indent=1))


def main():
    make_references("sd3_reference.py", __doc__, ["plain", "sd35", "fasttest"], build, reference)


if __name__ == "__main__":
    main()
