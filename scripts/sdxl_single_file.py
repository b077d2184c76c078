#!/usr/bin/env python3
"""A diffusers SDXL folder saved as one single-file checkpoint in the original Stability layout.

    sdxl_single_file.py FOLDER OUT.safetensors      convert, then verify with diffusers
    sdxl_single_file.py --fixture DIR               the test fixture, beside scripts/sdxl_reference.py's
                                                    tiny folders DIR/base and DIR/vpred:
                                                    DIR/<variant>.single_file.safetensors, and
                                                    DIR/base.single_file_no_vae.safetensors (without
                                                    first_stage_model.*) for the error test

The Stability layout (sgm's StableDiffusionXL checkpoints, as ComfyUI, stable-diffusion.cpp and
diffusers' from_single_file read them) keeps each network under its own prefix:

    model.diffusion_model.*                 the UNet   (input_blocks / middle_block / output_blocks)
    conditioner.embedders.0.transformer.*   CLIP-L     (transformers' names under text_model.)
    conditioner.embedders.1.model.*         OpenCLIP-G (fused attention in_proj, text_projection
                                                        stored transposed)
    first_stage_model.*                     the VAE    (encoder.down.N.block.M, attention as 1x1 convs)

The mapping here is the reverse of twistedpic's (src/pipeline/sdxl/sdxl_checkpoint.cpp), written from
the layouts, not from diffusers' converter. The conversion is checked against diffusers itself:
StableDiffusionXLPipeline.from_single_file(OUT, config=FOLDER, local_files_only=True) must give back
every tensor of the folder's four networks, bit for bit; the script fails otherwise.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NETWORKS = ("unet", "text_encoder", "text_encoder_2", "vae")
FIXTURE_VARIANTS = ("base", "vpred")
UNET, CLIP_L, CLIP_G, VAE = "model.diffusion_model.", "conditioner.embedders.0.transformer.", \
    "conditioner.embedders.1.model.", "first_stage_model."


def _per_block(value, n):
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _rename(name, pairs):
    for old, new in pairs:
        name = name.replace(old, new)
    return name


RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
          ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def unet_names(config):
    """diffusers name prefix -> LDM name prefix (each ends with '.'), from the UNet's config."""
    n = len(config["block_out_channels"])
    lpb = _per_block(config["layers_per_block"], n)
    out = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
           "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
           "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
           "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
           "mid_block.resnets.1.": "middle_block.2."}
    k = 1
    for level in range(n):
        for j in range(lpb[level]):
            out[f"down_blocks.{level}.resnets.{j}."] = f"input_blocks.{k}.0."
            out[f"down_blocks.{level}.attentions.{j}."] = f"input_blocks.{k}.1."
            k += 1
        if level + 1 < n:
            out[f"down_blocks.{level}.downsamplers.0.conv."] = f"input_blocks.{k}.0.op."
            k += 1
    k = 0
    up_lpb = list(reversed(lpb))
    for i, kind in enumerate(config["up_block_types"]):
        attention = "CrossAttn" in kind
        for j in range(up_lpb[i] + 1):
            out[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{k}.0."
            out[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{k}.1."
            if j == up_lpb[i] and i + 1 < n:
                out[f"up_blocks.{i}.upsamplers.0.conv."] = f"output_blocks.{k}.{2 if attention else 1}.conv."
            k += 1
    return out


def unet_to_ldm(state, config):
    table = unet_names(config)
    out = {}
    for name, t in state.items():
        prefix = max((p for p in table if name.startswith(p)), key=len, default=None)
        if prefix is None:
            raise SystemExit(f"unet: no Stability name for '{name}'")
        rest = name[len(prefix):]
        if ".resnets." in prefix or prefix.startswith("mid_block.resnets"):
            rest = _rename(rest, RESNET)
        out[UNET + table[prefix] + rest] = t
    return out


def clip_l_to_ldm(state):
    # transformers >= 5.6 saves CLIPTextModel without the text_model. wrapper; the layout keeps it.
    return {CLIP_L + (n if n.startswith("text_model.") else "text_model." + n): t for n, t in state.items()}


def clip_g_to_ldm(state, layers):
    import torch
    top = {"text_model.embeddings.token_embedding.weight": "token_embedding.weight",
           "text_model.embeddings.position_embedding.weight": "positional_embedding",
           "text_model.final_layer_norm.weight": "ln_final.weight",
           "text_model.final_layer_norm.bias": "ln_final.bias"}
    out = {}
    for name, to in top.items():
        out[CLIP_G + to] = state[name]
    out[CLIP_G + "text_projection"] = state["text_projection.weight"].t().contiguous()  # OpenCLIP: x @ P
    layer = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("self_attn.out_proj", "attn.out_proj"),
             ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]
    used = set(top) | {"text_projection.weight"}
    for i in range(layers):
        d, o = f"text_model.encoder.layers.{i}.", f"{CLIP_G}transformer.resblocks.{i}."
        for a, b in layer:
            for s in ("weight", "bias"):
                out[f"{o}{b}.{s}"] = state[f"{d}{a}.{s}"]
                used.add(f"{d}{a}.{s}")
        for s in ("weight", "bias"):
            parts = [f"{d}self_attn.{p}_proj.{s}" for p in "qkv"]
            out[f"{o}attn.in_proj_{s}"] = torch.cat([state[p] for p in parts], 0)
            used.update(parts)
    if set(state) - used:
        raise SystemExit(f"text_encoder_2: no Stability name for {sorted(set(state) - used)[:5]}")
    return out


def vae_to_ldm(state, config):
    n = len(config["block_out_channels"])
    pairs = [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out.")]
    for i in range(n):
        pairs += [(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."),
                  (f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."),
                  (f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."),
                  (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample.")]
    for side in ("encoder", "decoder"):
        pairs += [(f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1."),
                  (f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2."),
                  (f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1.")]
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for name, t in state.items():
        new = name
        for old, to in pairs:
            if name.startswith(old):
                new = to + name[len(old):]
                break
        if ".mid.attn_1." in new:
            head, layer, suffix = new.split(".mid.attn_1.")[0], *new.split(".mid.attn_1.")[1].rsplit(".", 1)
            new = f"{head}.mid.attn_1.{attn[layer]}.{suffix}"
            if t.dim() == 2:
                t = t[:, :, None, None]  # the layout's 1x1 convolution
        new = new.replace("conv_shortcut", "nin_shortcut")
        out[VAE + new] = t
    return out


def load_folder(folder):
    from safetensors.torch import load_file
    states, configs = {}, {}
    for name in NETWORKS:
        sub = Path(folder) / name
        files = sorted(sub.glob("*.safetensors"))
        if not files:
            raise SystemExit(f"{sub}: no *.safetensors")
        states[name] = {}
        for f in files:
            states[name].update(load_file(f))
        configs[name] = json.loads((sub / "config.json").read_text())
    return states, configs


def convert(folder, out):
    from safetensors.torch import save_file
    states, configs = load_folder(folder)
    ldm = {}
    ldm.update(unet_to_ldm(states["unet"], configs["unet"]))
    ldm.update(clip_l_to_ldm(states["text_encoder"]))
    ldm.update(clip_g_to_ldm(states["text_encoder_2"], configs["text_encoder_2"]["num_hidden_layers"]))
    ldm.update(vae_to_ldm(states["vae"], configs["vae"]))
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(out), metadata={"format": "pt"})
    return ldm


def verify(folder, out):
    """diffusers' from_single_file on OUT (configs from FOLDER, offline) gives back the folder's tensors."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    states, _ = load_folder(folder)
    dtype = next(iter(states["unet"].values())).dtype
    pipe = StableDiffusionXLPipeline.from_single_file(str(out), config=str(folder), local_files_only=True,
                                                      torch_dtype=dtype)
    for name in NETWORKS:
        got = getattr(pipe, name).state_dict()
        got = {k.removeprefix("text_model.") if name == "text_encoder" else k: v for k, v in got.items()}
        want = {k.removeprefix("text_model.") if name == "text_encoder" else k: v for k, v in states[name].items()}
        missing = sorted(set(want) - set(got))
        if missing:
            raise SystemExit(f"verify: diffusers' {name} has no {missing[:5]}")
        bad = [k for k in want if got[k].shape != want[k].shape or not torch.equal(got[k].to(want[k].dtype), want[k])]
        if bad:
            raise SystemExit(f"verify: diffusers' {name} reads {len(bad)} tensor(s) differently: {bad[:5]}")
    print(f"verified with diffusers: {out} gives back the four networks of {folder}")


def fixture(root):
    """The test fixture, beside scripts/sdxl_reference.py's folders in ROOT: each variant converted, and the base
    one without its VAE. Remade when this script or a folder's files change."""
    import hashlib
    root = Path(root)
    for variant in FIXTURE_VARIANTS:
        folder = root / variant
        if not (folder / "model_index.json").exists():
            raise SystemExit(f"{folder}: no SDXL folder (run scripts/sdxl_reference.py {root} first)")
        stamp = hashlib.sha256(Path(__file__).read_bytes())
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                stamp.update(f"{f.relative_to(folder)}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
        out = root / f"{variant}.single_file.safetensors"
        stamp_file = root / f"{variant}.single_file.stamp"
        if stamp_file.exists() and stamp_file.read_text() == stamp.hexdigest() and out.exists():
            print(f"{out}: up to date")
            continue
        from safetensors.torch import save_file
        ldm = convert(folder, out)
        if variant == "base":
            verify(folder, out)
            save_file({k: v.contiguous() for k, v in ldm.items() if not k.startswith(VAE)},
                      str(root / "base.single_file_no_vae.safetensors"))
        # vpred's per-block layers_per_block (1, 2) is past diffusers' converter (an int there): the C++ test
        # compares it with the folder instead.
        stamp_file.write_text(stamp.hexdigest())


def main(argv):
    if len(argv) == 3 and argv[1] == "--fixture":
        fixture(argv[2])
    elif len(argv) == 3:
        convert(Path(argv[1]), Path(argv[2]))
        verify(Path(argv[1]), Path(argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
