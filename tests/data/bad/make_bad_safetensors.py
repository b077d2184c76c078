#!/usr/bin/env python3
"""Writes the malformed safetensors corpus and the fuzzer's seed corpus.

  tests/data/bad/safetensors/<case>.<CODE>.safetensors   one malformation each;
      <CODE> is the error code read_safetensors_header must return
      (tests/unit/weights/safetensors_test.cpp checks every file).
  fuzz/corpus/safetensors_header/                         valid seeds plus the bad files.

Standard library only. Rerun after changing a case: python3 tests/data/bad/make_bad_safetensors.py
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[3]
BAD = ROOT / "tests/data/bad/safetensors"
SEEDS = ROOT / "fuzz/corpus/safetensors_header"


def frame(header, data=b""):
    """8-byte little-endian length, header (str or bytes), data."""
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<Q", len(header)) + header + data


def tensors(entries, data_len, metadata=None):
    h = dict(entries)
    if metadata is not None:
        h["__metadata__"] = metadata
    return frame(json.dumps(h, separators=(",", ":")), bytes(range(256)) * (data_len // 256) + bytes(data_len % 256))


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def one(entry_json, data_len=8):
    return frame('{"t":' + entry_json + "}", bytes(data_len))


INV, LOSS = "INVALID_ARGUMENT", "DATA_LOSS"
BAD_CASES = {
    ("empty", LOSS): b"",
    ("truncated_length", LOSS): b"\x10\x00\x00",
    ("header_length_over_limit", INV): struct.pack("<Q", 100_000_001) + b"{}",
    ("huge_header_length", INV): struct.pack("<Q", 2**64 - 1) + b"{}",
    ("header_past_end", LOSS): struct.pack("<Q", 64) + b'{"t":{}}',
    ("invalid_json", INV): frame('{"t":{"dtype":"F32",'),
    ("trailing_garbage", INV): frame("{}}"),
    ("invalid_utf8_name", INV): frame(b'{"\xc3\x28":{}}'),
    ("not_an_object", INV): frame("[1,2,3]"),
    ("too_deep", INV): frame("[" * 200 + "]" * 200),
    ("entry_not_object", INV): frame('{"t":"F32"}'),
    ("missing_dtype", INV): one('{"shape":[2],"data_offsets":[0,8]}'),
    ("unknown_dtype", INV): one('{"dtype":"F17","shape":[2],"data_offsets":[0,8]}'),
    ("lowercase_dtype", INV): one('{"dtype":"f32","shape":[2],"data_offsets":[0,8]}'),
    ("missing_shape", INV): one('{"dtype":"F32","data_offsets":[0,8]}'),
    ("negative_dim", INV): one('{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}'),
    ("fractional_dim", INV): one('{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}'),
    ("missing_offsets", INV): one('{"dtype":"F32","shape":[2]}'),
    ("offsets_three_values", INV): one('{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}'),
    ("begin_after_end", INV): one('{"dtype":"F32","shape":[0],"data_offsets":[8,0]}'),
    ("shape_bytes_mismatch", INV): one('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'),
    ("shape_overflow", INV): one('{"dtype":"F64","shape":[2305843009213693952,8],"data_offsets":[0,0]}', 0),
    ("range_past_data", LOSS): tensors({"t": t("F32", [4], 0, 16)}, 12),
    ("overlapping_ranges", INV): tensors({"a": t("U8", [8], 0, 8), "b": t("U8", [8], 4, 12)}, 12),
    ("duplicate_tensor_name", INV): frame('{"t":' + json.dumps(t("U8", [4], 0, 4)) + ',"t":'
                                          + json.dumps(t("U8", [4], 4, 8)) + "}", bytes(8)),
    ("metadata_not_strings", INV): tensors({}, 0, metadata={"step": 3}),
    ("pickle_protocol2", INV): b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u."
}

SEED_CASES = {
    "valid_two_tensors": tensors({"a.weight": t("F32", [3, 4], 0, 48), "a.bias": t("BF16", [3], 48, 54)}, 54),
    "valid_metadata_scalar": tensors({"s": t("F8_E4M3", [], 0, 1), "e": t("F16", [0, 5], 1, 1)}, 1,
                                     metadata={"format": "pt"}),
    "valid_padded_gap": frame(json.dumps({"x": t("I64", [1], 8, 16)}) + "        ", bytes(16)),
    "valid_empty": frame("{}"),
}


def main():
    for folder in (BAD, SEEDS):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    for (name, code), data in BAD_CASES.items():
        (BAD / f"{name}.{code}.safetensors").write_bytes(data)
        (SEEDS / f"bad_{name}").write_bytes(data)
    for name, data in SEED_CASES.items():
        (SEEDS / name).write_bytes(data)
    print(f"{len(BAD_CASES)} bad files in {BAD.relative_to(ROOT)}, "
          f"{len(BAD_CASES) + len(SEED_CASES)} seeds in {SEEDS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
