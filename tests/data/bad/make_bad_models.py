#!/usr/bin/env python3
"""Writes the malformed model-folder corpus.

  tests/data/bad/models/<case>.<CODE>/...   one malformation each; <CODE> is the
      error code that tp::model_weight_files(folder) returns or, when that
      succeeds, tp::TensorWeights::open(...) on its files
      (tests/unit/reliability/bad_inputs_test.cpp checks every folder).

A folder holding only .gitkeep stands for an empty folder (git keeps no empty
folders): the test recreates it empty in a scratch folder.

Standard library only. Rerun after changing a case: python3 tests/data/bad/make_bad_models.py
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODELS = ROOT / "tests/data/bad/models"


def frame(header, data=b""):
    """8-byte little-endian length, header (str or bytes), data."""
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<Q", len(header)) + header + data


def st(tensors):
    """A valid safetensors file: {name: (dtype, shape)} with 4-byte F32 / 2-byte F16 elements."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1}
    header, data = {}, b""
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes(i & 0xFF for i in range(n))
    return frame(json.dumps(header, separators=(",", ":")), data)


VALID = st({"weight": ("F32", [2, 2])})
PICKLE = b"\x80\x02}q\x00(X\x06\x00\x00\x00weightq\x01e."  # protocol 2 pickle
ZIP = b"PK\x03\x04" + bytes(26)  # torch.save's zip container
INDEX_OF = lambda weight_map: json.dumps({"metadata": {"total_size": 16}, "weight_map": weight_map})
SD3_INDEX = lambda components: json.dumps({"_class_name": "StableDiffusion3Pipeline", "_diffusers_version": "0.31.0",
                                          **components})

CASES = {
    # An empty folder (recreated empty by the test).
    "empty.NOT_FOUND": {".gitkeep": b""},
    # A folder with only notes, no weights.
    "no_weights.NOT_FOUND": {"README.md": b"# weights go here\n", "config.json": b"{}"},
    # Notes and a subfolder (of sample images, say), but no weights.
    "no_weights_with_subfolder.NOT_FOUND": {"README.md": b"# samples only\n", "samples/cat.txt": b"meow\n"},
    # Only pickle checkpoints, by extension and by content.
    "only_pickle.INVALID_ARGUMENT": {"pytorch_model.bin": PICKLE},
    "only_zip_checkpoint.INVALID_ARGUMENT": {"model.pt": ZIP},
    # A pickle renamed to .safetensors: listed, then refused by its bytes.
    "renamed_pickle.INVALID_ARGUMENT": {"model.safetensors": PICKLE},
    # Sharded indexes.
    "index_shard_outside_folder.INVALID_ARGUMENT": {
        "model.safetensors.index.json": INDEX_OF({"weight": "../outside.safetensors"})},
    "index_shard_absolute_path.INVALID_ARGUMENT": {
        "model.safetensors.index.json": INDEX_OF({"weight": "/etc/passwd"})},
    "index_shard_missing.NOT_FOUND": {
        "model.safetensors.index.json": INDEX_OF({"a": "model-00001-of-00002.safetensors",
                                                  "b": "model-00002-of-00002.safetensors"}),
        "model-00001-of-00002.safetensors": st({"a": ("F32", [2, 2])})},
    "index_shard_is_pickle.INVALID_ARGUMENT": {
        "model.safetensors.index.json": INDEX_OF({"weight": "model-00001-of-00001.bin"}),
        "model-00001-of-00001.bin": PICKLE},
    "index_not_json.INVALID_ARGUMENT": {"model.safetensors.index.json": b'{"weight_map": {"a": '},
    "index_empty_weight_map.INVALID_ARGUMENT": {"model.safetensors.index.json": INDEX_OF({})},
    "two_indexes.INVALID_ARGUMENT": {
        "a.safetensors.index.json": INDEX_OF({"weight": "a.safetensors"}),
        "b.safetensors.index.json": INDEX_OF({"weight": "a.safetensors"}),
        "a.safetensors": VALID},
    # Weights whose headers are broken (found by TensorWeights::open).
    "truncated_weights.DATA_LOSS": {"model.safetensors": VALID[:-5]},
    "header_not_json.INVALID_ARGUMENT": {"model.safetensors": frame("{not json}", bytes(8))},
    "duplicate_tensor_across_files.INVALID_ARGUMENT": {
        "a.safetensors": st({"weight": ("F32", [2, 2])}),
        "b.safetensors": st({"weight": ("F16", [4])})},
    # Diffusers folders.
    "diffusers_index_not_json.INVALID_ARGUMENT": {
        "model_index.json": b'{"_class_name": "StableDiffusion3Pipeline", "vae": ["diffusers", ',
        "vae/config.json": b"{}", "vae/diffusion_pytorch_model.safetensors": VALID},
    "diffusers_index_is_array.INVALID_ARGUMENT": {"model_index.json": b'["vae"]'},
    "diffusers_no_class_name.INVALID_ARGUMENT": {
        "model_index.json": json.dumps({"vae": ["diffusers", "AutoencoderKL"]}).encode(),
        "vae/config.json": b"{}", "vae/diffusion_pytorch_model.safetensors": VALID},
    "diffusers_missing_component.NOT_FOUND": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers", "AutoencoderKL"],
                                       "transformer": ["diffusers", "SD3Transformer2DModel"]}).encode(),
        "vae/config.json": b"{}", "vae/diffusion_pytorch_model.safetensors": VALID},
    "diffusers_component_escapes.INVALID_ARGUMENT": {
        "model_index.json": SD3_INDEX({"..": ["diffusers", "AutoencoderKL"]}).encode()},
    "diffusers_bad_entry.INVALID_ARGUMENT": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers"]}).encode(),
        "vae/config.json": b"{}", "vae/diffusion_pytorch_model.safetensors": VALID},
    "diffusers_only_pickle.INVALID_ARGUMENT": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers", "AutoencoderKL"]}).encode(),
        "vae/config.json": b"{}", "vae/diffusion_pytorch_model.bin": PICKLE},
    "diffusers_component_without_weights.NOT_FOUND": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers", "AutoencoderKL"]}).encode(),
        "vae/config.json": b"{}"},
    "diffusers_ambiguous_weights.INVALID_ARGUMENT": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers", "AutoencoderKL"]}).encode(),
        "vae/config.json": b"{}", "vae/a.safetensors": VALID, "vae/b.safetensors": VALID},
    "diffusers_config_not_object.INVALID_ARGUMENT": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers", "AutoencoderKL"]}).encode(),
        "vae/config.json": b"[1, 2]", "vae/diffusion_pytorch_model.safetensors": VALID},
    "diffusers_no_weight_components.NOT_FOUND": {
        "model_index.json": SD3_INDEX({"scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}).encode(),
        "scheduler/scheduler_config.json": b"{}"},
    "diffusers_truncated_component.DATA_LOSS": {
        "model_index.json": SD3_INDEX({"vae": ["diffusers", "AutoencoderKL"]}).encode(),
        "vae/config.json": b"{}", "vae/diffusion_pytorch_model.safetensors": VALID[:20]},
}


def main():
    shutil.rmtree(MODELS, ignore_errors=True)
    for case, files in CASES.items():
        for rel, data in files.items():
            path = MODELS / case / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data if isinstance(data, bytes) else data.encode())
    print(f"{len(CASES)} model folders in {MODELS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
