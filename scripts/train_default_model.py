#!/usr/bin/env python3
"""Trains the project's tiny default model: an SD3 pipeline that draws coloured shapes.

    train_default_model.py [--out models/tiny-sd3] [--seed 0] [--quick] [--minutes N]
    train_default_model.py --eval-only [--out models/tiny-sd3] [--eval-dir DIR]

Everything is made here, on the CPU, from nothing but this script (no downloads, no data):
  data          procedurally drawn 32x32 pictures of one flat shape (circle, square or upward
                triangle, 40-70% of the side, anywhere inside) in one of eight colours on a
                background of another; the prompt is "a <colour> <shape> on a <bgcolour> background"
                ("an" before orange)
                (scripts/shape_meaning.py holds the palette and reads such pictures back)
  tokenizers    scripts/make_tokenizers.py's CLIP BPE tokenizers (no T5: text_encoder_3 = None,
                which diffusers and the C++ pipeline replace with zeros)
  text encoders two small CLIPTextModelWithProjection at a seeded random init, frozen
  VAE           a small AutoencoderKL (4 latent channels, 8x8 latents), trained first on
                reconstruction, its decoder fed slightly noised latents so that it draws
                clean shapes from a generated latent's small errors; its scaling/shift
                factors are measured on its latents
  transformer   a small SD3Transformer2DModel trained with SD3's rectified-flow objective on the
                VAE's latents, 10% of the prompts dropped to "" so that guidance works
  decoder       then the VAE's decoder alone (the encoder frozen) is trained further on the
                latents the transformer makes: its guided estimates of drawn pictures' latents
and the result is saved as a diffusers StableDiffusion3Pipeline folder in fp16 (about 12 MB),
reloaded with from_pretrained and evaluated: generated pictures are classified by
shape_meaning.py and the accuracy is printed; the exit status is 1 under 90 %.
docs/default-model.md records the run that made models/tiny-sd3.

Deterministic for a given --seed, torch version and thread count (--threads, default 2):
the number of steps is fixed; --minutes only caps the transformer's training time, and then
the result depends on the machine's speed. --quick is a smoke run of about two minutes.

Training is cheap because the text encoders are frozen: every prompt's embeddings are
computed once, and the 256 all-zero T5 tokens, which stay identical through every block, are
trained as one token whose attention logit gets log(256) added. That is the same function the
pipeline computes with all 256 (self_test() checks it before training).
"""
import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import shape_meaning as sm  # noqa: E402

RES = 32                 # training and default generation resolution (pixels)
VAE_SCALE = 4            # 2 ** (len(block_out_channels) - 1)
LATENT = RES // VAE_SCALE
CLIP_LEN = 77            # diffusers' CLIP tokenizer_max_length
CONTENT_LEN = 9          # <start> a <colour> <shape> on a <colour> background <end>
T5_LEN = 256             # diffusers' default max_sequence_length: that many zero tokens
SHIFT = 3.0              # FlowMatchEulerDiscreteScheduler(shift=...)
STEPS, GUIDANCE = 20, 2.5  # recommended generation settings
# The t range the decoder's fine-tune takes the transformer's estimates at. With 20 steps at
# shift 3 the next-to-last step goes from sigma 0.15 to 0.009, so a generated latent is, all but
# the last 1 %, the transformer's estimate of the clean latent at t = 0.15.
DECODER_T = (0.1, 0.3)

# The evaluation prompts: every shape, every colour as shape and as background, and the
# closest colour pairs (yellow/orange, red/orange, blue/purple).
EVAL_PROMPTS = [
    ("red", "circle", "white"), ("yellow", "circle", "blue"), ("orange", "circle", "purple"),
    ("black", "circle", "green"), ("purple", "circle", "blue"),
    ("green", "square", "black"), ("white", "square", "red"), ("purple", "square", "yellow"),
    ("blue", "square", "orange"), ("red", "square", "purple"),
    ("blue", "triangle", "yellow"), ("white", "triangle", "black"), ("red", "triangle", "green"),
    ("orange", "triangle", "yellow"), ("black", "triangle", "orange"),
]
EVAL_SEEDS = [0, 1, 2, 3, 4]

ALL_TRIPLES = [(c, s, b) for s in sm.SHAPES for c in sm.COLOURS for b in sm.COLOURS if b != c]


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ---- data ------------------------------------------------------------------------------------


def draw(rng: np.random.Generator, n: int, res: int = RES):
    """n random pictures (uint8, n x res x res x 3) and their (colour, shape, background) triples."""
    shape = rng.integers(0, 3, n)
    fg = rng.integers(0, 8, n)
    bg = (fg + rng.integers(1, 8, n)) % 8
    d = rng.uniform(0.4, 0.7, n) * res                       # the shape's width = height
    cx = rng.uniform(0, 1, n) * (res - 2 - d) + 1 + d / 2    # kept a pixel inside the border
    cy = rng.uniform(0, 1, n) * (res - 2 - d) + 1 + d / 2
    coords = np.arange(res) + 0.5
    x = coords[None, None, :] - cx[:, None, None]
    y = coords[None, :, None] - cy[:, None, None]
    r = (d / 2)[:, None, None]
    circle = np.sqrt(x * x + y * y) - r
    square = np.maximum(np.abs(x), np.abs(y)) - r
    # Upward triangle: apex at the top middle, base along the bottom of the d x d box.
    yt = y + r
    triangle = np.maximum(np.maximum(y - r, (2 * x - yt) / math.sqrt(5)), (-2 * x - yt) / math.sqrt(5))
    sdf = np.where(shape[:, None, None] == 0, circle, np.where(shape[:, None, None] == 1, square, triangle))
    alpha = np.clip(0.5 - sdf, 0, 1)[..., None]                # one pixel of anti-aliasing
    pal = np.array(list(sm.PALETTE.values()), dtype=np.float64)
    img = pal[bg][:, None, None] * (1 - alpha) + pal[fg][:, None, None] * alpha
    labels = [(sm.COLOURS[f], sm.SHAPES[s], sm.COLOURS[b]) for f, s, b in zip(fg, shape, bg)]
    return np.round(img).astype(np.uint8), labels


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """As diffusers' postprocess: [-1, 1] -> [0, 1] -> round(255 x)."""
    x = (x / 2 + 0.5).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


# ---- models ------------------------------------------------------------------------------------


def fp16_exact(module: torch.nn.Module):
    """Rounds every weight to fp16, so that what trains on it is what the fp16 folder holds."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())
        for b in module.buffers():
            if b.is_floating_point():
                b.copy_(b.half().float())
    return module


def make_tokenizers(folder: Path):
    from transformers import CLIPTokenizer

    from make_tokenizers import write_tokenizers

    write_tokenizers(folder)
    return CLIPTokenizer.from_pretrained(folder / "tokenizer"), CLIPTokenizer.from_pretrained(folder / "tokenizer_2")


def make_text_encoders(tok, tok2, seed):
    """Two small 2-layer CLIP text encoders (unequal widths, as SD3's CLIP-L and CLIP-G) at a seeded
    random init, then shaped so that the transformer can read them and train cheaply:
      - token and position embeddings scaled to unit size, so that the words stand out;
      - the position embeddings from CONTENT_LEN on (past the prompts' 9 tokens) made one row, and
        the first layer's value projection zeroed: the penultimate states (what SD3 reads) are then
        a function of each token and its position alone, so the padding after the prompt is 68
        identical states that training runs as one (see compress());
      - the last layer's query/key/output projections x3: its attention mixes the prompt into the
        end-of-text token, so the pooled output tells prompts apart (at plain init it is ~99.9%
        the same vector for every prompt)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed + 1)
    cfg_l = CLIPTextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_attention_heads=2,
                           num_hidden_layers=2, projection_dim=64, hidden_act="quick_gelu",
                           max_position_embeddings=CLIP_LEN, bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg_g = CLIPTextConfig(vocab_size=len(tok2), hidden_size=96, intermediate_size=192, num_attention_heads=3,
                           num_hidden_layers=2, projection_dim=96, hidden_act="gelu",
                           max_position_embeddings=CLIP_LEN, bos_token_id=tok2.bos_token_id,
                           eos_token_id=tok2.eos_token_id, pad_token_id=tok2.pad_token_id)
    encoders = []
    for cfg in (cfg_l, cfg_g):
        enc = CLIPTextModelWithProjection(cfg).eval()
        with torch.no_grad():
            emb = enc.text_model.embeddings
            emb.token_embedding.weight.mul_(1.0 / emb.token_embedding.weight.std())
            pos = emb.position_embedding.weight
            pos.mul_(0.5 / pos.std())
            pos[CONTENT_LEN:] = pos[CONTENT_LEN]
            first, last = enc.text_model.encoder.layers
            first.self_attn.v_proj.weight.zero_()
            for proj in ("q_proj", "k_proj", "out_proj"):
                getattr(last.self_attn, proj).weight.mul_(3.0)
        encoders.append(fp16_exact(enc).requires_grad_(False))
    return encoders


@torch.no_grad()
def embed_prompts(prompts, tok, tok2, enc, enc2):
    """diffusers' encode_prompt for CLIP-only SD3: (N, 77, dl+dg) penultimate states and (N, pl+pg) pooled."""
    hidden, pooled = [], []
    for t, e in ((tok, enc), (tok2, enc2)):
        ids = t(prompts, padding="max_length", max_length=CLIP_LEN, truncation=True, return_tensors="pt").input_ids
        assert int((ids != ids[:, -1:]).sum(1).max()) <= CONTENT_LEN, "a prompt longer than CONTENT_LEN tokens"
        out = e(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled.append(out.text_embeds)
    return torch.cat(hidden, -1), torch.cat(pooled, -1)


def compress(hidden: torch.Tensor):
    """The 77 CLIP states -> the CONTENT_LEN distinct ones and one for the identical padding after them."""
    pad = hidden[:, CONTENT_LEN:]
    err = (pad - pad[:, :1]).abs().max().item()
    assert err < 1e-5, f"the padding states differ ({err}): cannot compress"
    return hidden[:, :CONTENT_LEN + 1].clone()


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32),
                         down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                         layers_per_block=1, norm_num_groups=8, sample_size=RES, use_quant_conv=False,
                         use_post_quant_conv=False)


def make_transformer(args, text_dim, pooled_dim):
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(sample_size=LATENT, patch_size=args.patch, in_channels=4, out_channels=4,
                                 num_layers=args.layers, attention_head_dim=32, num_attention_heads=args.heads,
                                 joint_attention_dim=text_dim, caption_projection_dim=32 * args.heads,
                                 pooled_projection_dim=pooled_dim, pos_embed_max_size=2 * LATENT // args.patch,  # up to 2x the training size
                                 qk_norm="rms_norm" if args.qk_norm else None)


class BiasedJointAttention:
    """diffusers' JointAttnProcessor2_0 plus an additive bias on the attention logits, per key.

    Training runs the context as CONTENT_LEN + 2 tokens: the prompt's CLIP states, ONE of the 68
    identical padding states and ONE of the 256 identical zero T5 tokens, whose keys get log(68) and
    log(256) added. Identical tokens stay identical through every block (each is processed on its
    own, and attends to the same keys), so that is the attention, and the output, of the pipeline's
    333-token context."""

    bias = None  # (1, 1, 1, keys) or None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        b = hidden_states.shape[0]
        n_img = hidden_states.shape[1]

        def heads(x):
            return x.view(b, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

        q, k, v = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        cq = heads(attn.add_q_proj(encoder_hidden_states))
        ck = heads(attn.add_k_proj(encoder_hidden_states))
        cv = heads(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            cq = attn.norm_added_q(cq)
        if attn.norm_added_k is not None:
            ck = attn.norm_added_k(ck)
        q, k, v = torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2)
        mask = None if self.bias is None else self.bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, -1, attn.heads * q.shape[-1]).to(q.dtype)
        out, ctx = out[:, :n_img], out[:, n_img:]
        if not attn.context_pre_only:
            ctx = attn.to_add_out(ctx)
        out = attn.to_out[1](attn.to_out[0](out))
        return out, ctx


def n_tokens(tr):
    """The image tokens of a LATENT x LATENT latent."""
    return (LATENT // tr.config.patch_size) ** 2


def prompt_ids(index, triples):
    """The rows of the prompt table for (colour, shape, background) triples."""
    return torch.tensor([index[sm.prompt(*t)] for t in triples])


def compressed_context(compact: torch.Tensor, n_img: int, processor: BiasedJointAttention):
    """compress()'s states and one zero token for the 256 zero T5 tokens; sets the processor's bias."""
    zero = compact.new_zeros(compact.shape[0], 1, compact.shape[2])
    bias = torch.zeros(n_img + compact.shape[1] + 1)
    bias[-2] = math.log(CLIP_LEN - CONTENT_LEN)
    bias[-1] = math.log(T5_LEN)
    processor.bias = bias.view(1, 1, 1, -1)
    return torch.cat([compact, zero], 1)


def full_context(hidden: torch.Tensor):
    """What the pipeline feeds the transformer: the 77 CLIP states, then 256 zero T5 tokens."""
    return torch.cat([hidden, hidden.new_zeros(hidden.shape[0], T5_LEN, hidden.shape[2])], 1)


# ---- training --------------------------------------------------------------------------------


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def reconstruction_loss(y, x, edge_weight):
    """L2 + L1/2, with pixels near an edge counting edge_weight times: the shapes' corners and
    outlines are small in area but are what makes a square a square."""
    edge = (F.max_pool2d(x, 3, 1, 1) + F.max_pool2d(-x, 3, 1, 1)).amax(1, keepdim=True) > 0.1
    w = 1 + (edge_weight - 1) * edge.float()
    return ((y - x).pow(2) * w).mean() + 0.5 * ((y - x).abs() * w).mean()


def train_vae(vae, args, rng, gen):
    opt = torch.optim.Adam(vae.parameters(), lr=args.vae_lr)
    vae.train()
    t0 = time.time()
    for step in range(args.vae_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.vae_steps, args.vae_lr, 20)
        img, _ = draw(rng, args.vae_batch)
        x = to_tensor(img)
        post = vae.encode(x).latent_dist
        z = post.sample(generator=gen)
        # Extra noise on the latents, a share of their spread: the decoder learns to draw clean
        # shapes from slightly-off latents, which is what a generated latent is. Without it the
        # transformer's small errors came out as rounded, wobbly square corners.
        z = z + args.latent_noise * post.mean.detach().std() * torch.randn(z.shape, generator=gen)
        rec = reconstruction_loss(vae.decode(z).sample, x, args.edge_weight)
        kl = 0.5 * (post.mean.pow(2) + post.var - 1 - post.logvar).mean()
        loss = rec + args.kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.vae_steps - 1:
            log(f"vae step {step}/{args.vae_steps} rec {rec.item():.4f} kl {kl.item():.3f} "
                f"({time.time() - t0:.0f} s)")
    vae.eval()
    return vae


@torch.no_grad()
def latent_stats(vae, rng, gen, n=1024):
    zs = []
    for _ in range(n // 128):
        post = vae.encode(to_tensor(draw(rng, 128)[0])).latent_dist
        zs.append(post.sample(generator=gen))
    z = torch.cat(zs)
    return float(z.mean()), float(z.std())


def train_transformer(tr, vae, table, args, rng, gen, shift_factor, scaling_factor, deadline=None, on_eval=None):
    _, compact_all, pooled_all, index = table
    proc = BiasedJointAttention()
    tr.set_attn_processor(proc)
    ema = copy.deepcopy(tr).requires_grad_(False) if args.ema else None
    opt = torch.optim.AdamW(tr.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99))
    tr.train()
    n_img = n_tokens(tr)
    t0 = time.time()
    avg = None
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, 50)
        img, labels = draw(rng, args.batch)
        with torch.no_grad():
            post = vae.encode(to_tensor(img)).latent_dist
            x0 = (post.sample(generator=gen) - shift_factor) * scaling_factor
        ids = prompt_ids(index, labels)
        drop = torch.rand(args.batch, generator=gen) < args.dropout
        ids = torch.where(drop, torch.zeros_like(ids), ids)  # index 0 is ""
        t = torch.sigmoid(torch.randn(args.batch, generator=gen))  # logit-normal(0, 1)
        noise = torch.randn(x0.shape, generator=gen)
        tt = t[:, None, None, None]
        xt = (1 - tt) * x0 + tt * noise
        ctx = compressed_context(compact_all[ids], n_img, proc)
        pred = tr(hidden_states=xt, timestep=t * 1000, encoder_hidden_states=ctx,
                  pooled_projections=pooled_all[ids], return_dict=False)[0]
        loss = F.mse_loss(pred, noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tr.parameters(), 1.0)
        opt.step()
        if ema is not None:
            d = min(args.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), tr.parameters()):
                    pe.lerp_(p, 1 - d)
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            log(f"transformer step {step}/{args.steps} loss {avg:.4f} ({time.time() - t0:.0f} s)")
        if on_eval and args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            on_eval(ema if ema is not None else tr, step + 1)
            tr.train()
        if deadline is not None and time.time() > deadline:
            log(f"--minutes reached at step {step + 1}; stopping")
            break
    final = ema if ema is not None else tr
    final.eval()
    return final


def finetune_decoder(vae, tr, table, args, rng, gen, shift_factor, scaling_factor):
    """Trains the VAE's decoder, its encoder frozen, on the latents the transformer makes.

    A drawn picture's latent is noised to a small t, as the last sampling steps see it, and the
    transformer's guided estimate of the clean latent (x_t - t v) is decoded back to the picture.
    That is close to the latent a generation ends with, errors included, so the decoder learns to
    draw sharp shapes from it. The encoder, and so the latent space the transformer learned, does
    not change."""
    _, compact_all, pooled_all, index = table
    proc = BiasedJointAttention()
    tr.set_attn_processor(proc)
    vae.decoder.requires_grad_(True)
    params = list(vae.decoder.parameters())
    opt = torch.optim.Adam(params, lr=args.decoder_lr)
    vae.decoder.train()
    n_img = n_tokens(tr)
    t0 = time.time()
    for step in range(args.decoder_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.decoder_steps, args.decoder_lr, 20)
        img, labels = draw(rng, args.vae_batch)
        x = to_tensor(img)
        with torch.no_grad():
            post = vae.encode(x).latent_dist
            x0 = (post.sample(generator=gen) - shift_factor) * scaling_factor
            t = DECODER_T[0] + (DECODER_T[1] - DECODER_T[0]) * torch.rand(len(labels), generator=gen)
            tt = t[:, None, None, None]
            xt = (1 - tt) * x0 + tt * torch.randn(x0.shape, generator=gen)
            ids = prompt_ids(index, labels)
            both = torch.cat([torch.zeros_like(ids), ids])
            ctx = compressed_context(compact_all[both], n_img, proc)
            v = guided_velocity(tr, xt, t * 1000, ctx, pooled_all[both], GUIDANCE)
            z = (xt - tt * v) / scaling_factor + shift_factor
        rec = reconstruction_loss(vae.decode(z).sample, x, args.edge_weight)
        opt.zero_grad(set_to_none=True)
        rec.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0 or step == args.decoder_steps - 1:
            log(f"decoder step {step}/{args.decoder_steps} rec {rec.item():.4f} ({time.time() - t0:.0f} s)")
    vae.eval().requires_grad_(False)
    return vae


# ---- sampling (training-time check) ----------------------------------------------------------


def guided_velocity(tr, lat, timestep, ctx, pooled, guidance):
    """The pipeline's classifier-free-guided velocity for b latents; ctx and pooled hold the b
    unconditional ("") rows first, then the b prompts', as diffusers orders them."""
    b = lat.shape[0]
    v = tr(hidden_states=torch.cat([lat, lat]), timestep=torch.cat([timestep, timestep]), encoder_hidden_states=ctx,
           pooled_projections=pooled, return_dict=False)[0]
    return v[:b] + guidance * (v[b:] - v[:b])


@torch.no_grad()
def sample(tr, vae, table, triples, seeds, shift_factor, scaling_factor, steps=STEPS, guidance=GUIDANCE,
           compressed=True):
    """The pipeline's sampling loop on precomputed embeddings; one image per (triple, seed)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    hidden_all, compact_all, pooled_all, index = table
    sched = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    sched.set_timesteps(steps)
    ids = prompt_ids(index, triples)
    b = len(triples)
    lat = torch.cat([torch.randn((1, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(s)) for s in seeds])
    both = torch.cat([torch.zeros_like(ids), ids])  # unconditional ("") first, as diffusers
    pooled = pooled_all[both]
    proc = BiasedJointAttention()
    tr.set_attn_processor(proc)
    if compressed:
        ctx = compressed_context(compact_all[both], n_tokens(tr), proc)
    else:
        ctx = full_context(hidden_all[both])
    for i, t in enumerate(sched.timesteps):
        v = guided_velocity(tr, lat, t.expand(b), ctx, pooled, guidance)
        lat = lat + (sched.sigmas[i + 1] - sched.sigmas[i]) * v
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    tr.set_attn_processor(JointAttnProcessor2_0())
    return to_uint8(vae.decode(lat / scaling_factor + shift_factor).sample)


def accuracy(images, triples):
    ok = np.zeros(3)
    for img, (c, s, b) in zip(images, triples):
        v = sm.classify(img)
        colour, shape = v.colour == c and v.background == b, v.shape == s
        ok += [colour, shape, colour and shape]
    return ok / len(triples)


def quick_check(tr, vae, table, shift_factor, scaling_factor, label):
    """All 168 prompts, one seed each, with the training-time sampler."""
    triples = ALL_TRIPLES
    seeds = [1000 + i for i in range(len(triples))]
    images = []
    for i in range(0, len(triples), 56):
        images.append(sample(tr, vae, table, triples[i:i + 56], seeds[i:i + 56], shift_factor, scaling_factor))
    acc = accuracy(np.concatenate(images), triples)
    log(f"{label}: all prompts x1 seed accuracy colour={acc[0]:.2f} shape={acc[1]:.2f} both={acc[2]:.2f}")
    return acc


# ---- saving and evaluation -------------------------------------------------------------------


def save(out: Path, tok_dir: Path, tr, vae, enc, enc2, tok, tok2):
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    tr.set_attn_processor(JointAttnProcessor2_0())
    pipe = StableDiffusion3Pipeline(transformer=tr, scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT), vae=vae,
                                    text_encoder=enc, tokenizer=tok, text_encoder_2=enc2, tokenizer_2=tok2,
                                    text_encoder_3=None, tokenizer_3=None)
    pipe = copy.deepcopy(pipe).to(torch.float16)
    if out.exists():
        shutil.rmtree(out)
    pipe.save_pretrained(out, safe_serialization=True)
    # The settings it is meant to be sampled with; twistedpic's pipeline reads them (diffusers ignores them).
    (out / "generation_defaults.json").write_text(
        json.dumps({"num_inference_steps": STEPS, "guidance_scale": GUIDANCE}, indent=2) + "\n")
    # The tokenizer source files beside transformers' tokenizer.json, as the Hub's SD3 folders have them.
    for name in ("tokenizer", "tokenizer_2"):
        shutil.copytree(tok_dir / name, out / name, dirs_exist_ok=True)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    log(f"saved {out} ({size / 1e6:.2f} MB)")
    return size


def evaluate(out: Path, eval_dir: Path, dtype=torch.float32, steps=STEPS, guidance=GUIDANCE, seeds=EVAL_SEEDS,
             prompts=EVAL_PROMPTS):
    """Loads the saved folder with diffusers, generates every (prompt, seed) into eval_dir with
    shape_meaning's naming, and scores them. Returns (colour, shape, both, n)."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(out, text_encoder_3=None, tokenizer_3=None, torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.text_encoder_3 is None and pipe.tokenizer_3 is None
    eval_dir.mkdir(parents=True, exist_ok=True)
    for f in eval_dir.glob("*.png"):
        f.unlink()
    jobs = [(p, s) for p in prompts for s in seeds]
    t0 = time.time()
    for i in range(0, len(jobs), 25):
        chunk = jobs[i:i + 25]
        images = pipe(prompt=[sm.prompt(*p) for p, _ in chunk], height=RES, width=RES, num_inference_steps=steps,
                      guidance_scale=guidance, generator=[torch.Generator().manual_seed(s) for _, s in chunk]).images
        for (p, s), im in zip(chunk, images):
            im.save(eval_dir / sm.file_name(*p, s))
    log(f"generated {len(jobs)} images with diffusers ({dtype}) in {time.time() - t0:.0f} s")
    return sm.score(eval_dir, quiet=True)


def self_test(tr, table):
    """The compressed context gives the pipeline's function: 11 context tokens, two of them with their
    multiplicity's log added to their attention logits, == the pipeline's 77 + 256."""
    hidden_all, compact_all, pooled_all, _ = table
    gen = torch.Generator().manual_seed(0)
    lat = torch.randn((3, 4, LATENT, LATENT), generator=gen)
    t = torch.tensor([900.0, 500.0, 20.0])
    ids = torch.tensor([0, 1, 2])
    proc = BiasedJointAttention()
    tr.set_attn_processor(proc)
    with torch.no_grad():
        a = tr(hidden_states=lat, timestep=t, encoder_hidden_states=compressed_context(compact_all[ids], n_tokens(tr), proc),
               pooled_projections=pooled_all[ids], return_dict=False)[0]
        from diffusers.models.attention_processor import JointAttnProcessor2_0

        tr.set_attn_processor(JointAttnProcessor2_0())
        b = tr(hidden_states=lat, timestep=t, encoder_hidden_states=full_context(hidden_all[ids]),
               pooled_projections=pooled_all[ids], return_dict=False)[0]
    err = (a - b).abs().max().item()
    log(f"self-test: compressed vs full context max |diff| = {err:.2e}")
    assert err < 1e-4, err


# ---- main ------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE.parent / "models" / "tiny-sd3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the result depends on it)")
    ap.add_argument("--quick", action="store_true", help="a ~2-minute smoke run (a model that draws nothing useful)")
    ap.add_argument("--minutes", type=float, default=None, help="cap the transformer's training time (not deterministic)")
    ap.add_argument("--eval-only", action="store_true", help="evaluate --out, do not train")
    ap.add_argument("--eval-dir", type=Path, default=None, help="where the evaluation pictures go (default: a temp dir)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--eval-every", type=int, default=0, help="check all prompts every N transformer steps")
    # The recipe.
    ap.add_argument("--vae-steps", type=int, default=3000)
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--vae-lr", type=float, default=2e-3)
    ap.add_argument("--kl", type=float, default=1e-5)
    ap.add_argument("--edge-weight", type=float, default=4.0)
    ap.add_argument("--latent-noise", type=float, default=0.3,
                    help="noise added to the VAE's latents in training, as a share of their std")
    ap.add_argument("--decoder-steps", type=int, default=1000,
                    help="then train the decoder on the transformer's latents (0: skip)")
    ap.add_argument("--decoder-lr", type=float, default=5e-4)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.995, help="EMA decay (0: none)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--qk-norm", type=int, default=1)
    ap.add_argument("--patch", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        args.vae_steps, args.steps, args.decoder_steps, args.eval_every = 20, 20, 20, 0
    torch.set_num_threads(max(1, args.threads))
    if args.eval_only:
        return report(args)

    t_start = time.time()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tokenizers"
        tok, tok2 = make_tokenizers(tok_dir)
        enc, enc2 = make_text_encoders(tok, tok2, args.seed)
        prompts = [""] + [sm.prompt(*t) for t in ALL_TRIPLES]
        hidden, pooled = embed_prompts(prompts, tok, tok2, enc, enc2)
        table = (hidden, compress(hidden), pooled, {p: i for i, p in enumerate(prompts)})
        log(f"embedded {len(prompts)} prompts: {tuple(hidden.shape)}, pooled {tuple(pooled.shape)}")

        torch.manual_seed(args.seed + 2)
        vae = train_vae(make_vae(), args, rng, gen)
        fp16_exact(vae).requires_grad_(False)
        mean, std = latent_stats(vae, rng, gen)
        shift_factor, scaling_factor = round(mean, 4), round(1 / std, 4)
        vae.register_to_config(shift_factor=shift_factor, scaling_factor=scaling_factor)
        log(f"vae done ({time.time() - t_start:.0f} s): shift_factor {shift_factor}, scaling_factor {scaling_factor}")

        torch.manual_seed(args.seed + 3)
        tr = make_transformer(args, hidden.shape[-1], pooled.shape[-1])
        log(f"transformer: {sum(p.numel() for p in tr.parameters()) / 1e6:.2f} M parameters")
        self_test(tr, table)
        deadline = time.time() + 60 * args.minutes if args.minutes else None
        on_eval = lambda m, s: quick_check(m, vae, table, shift_factor, scaling_factor, f"step {s}")  # noqa: E731
        tr = train_transformer(tr, vae, table, args, rng, gen, shift_factor, scaling_factor, deadline, on_eval)
        train_s = time.time() - t_start
        log(f"training done in {train_s:.0f} s")
        fp16_exact(tr)
        if not args.quick:
            quick_check(tr, vae, table, shift_factor, scaling_factor, "final (fp16 weights)")
        if args.decoder_steps:
            fp16_exact(finetune_decoder(vae, tr, table, args, rng, gen, shift_factor, scaling_factor))
            log(f"decoder fine-tune done ({time.time() - t_start:.0f} s)")
            if not args.quick:
                quick_check(tr, vae, table, shift_factor, scaling_factor, "after the decoder's fine-tune")
        save(args.out, tok_dir, tr, vae, enc, enc2, tok, tok2)
    recipe = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k not in ("out", "eval_dir", "eval_only", "no_eval", "eval_every")}
    log(f"recipe {json.dumps(recipe)}; wall time {time.time() - t_start:.0f} s")
    if not args.no_eval:
        return report(args)
    return 0


def report(args):
    with tempfile.TemporaryDirectory() as tmp:
        eval_dir = args.eval_dir or Path(tmp) / "eval"
        colour, shape, both, n = evaluate(args.out, eval_dir)
        print(f"accuracy colour={colour:.2f} shape={shape:.2f} both={both:.2f}  (n={n}, {RES}x{RES}, "
              f"{STEPS} steps, guidance {GUIDANCE}, shift {SHIFT})", flush=True)
    return 0 if args.quick or both >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
