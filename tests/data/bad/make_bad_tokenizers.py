#!/usr/bin/env python3
"""Writes the malformed tokenizer-folder corpus.

  tests/data/bad/tokenizer/<case>.<CODE>/...   one malformation each; <CODE> is the
      error code that tp::ClipTokenizer::load(folder) (cases named clip_*) or
      tp::T5Tokenizer::load(folder) (cases named t5_*) returns
      (tests/unit/reliability/bad_inputs_test.cpp checks every folder, and the
      specific message of each in tokenizer_messages()).

Each case starts from a tiny valid folder: a CLIP vocabulary of a few tokens
with two merges, or a hand-encoded sentencepiece unigram model of five pieces
(no normalization map), so the corpus stays a few kilobytes. A folder that must
hold a directory where a file belongs keeps a .gitkeep in it.

Standard library only. Rerun after changing a case: python3 tests/data/bad/make_bad_tokenizers.py
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUT = ROOT / "tests/data/bad/tokenizer"

# ---- CLIP -------------------------------------------------------------------------------

CLIP_VOCAB = {"a": 0, "b": 1, "a</w>": 2, "b</w>": 3, "ab</w>": 4, "ab": 5, "<|startoftext|>": 6, "<|endoftext|>": 7}
CLIP_MERGES = "#version: 0.2\na b</w>\na b\n"
CLIP_CONFIG = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}


def clip(vocab=CLIP_VOCAB, merges=CLIP_MERGES, config=CLIP_CONFIG):
    files = {}
    if vocab is not None:
        files["vocab.json"] = vocab if isinstance(vocab, (str, bytes)) else json.dumps(vocab)
    if merges is not None:
        files["merges.txt"] = merges
    if config is not None:
        files["tokenizer_config.json"] = config if isinstance(config, str) else json.dumps(config)
    return files


# ---- sentencepiece (protobuf wire format by hand) -------------------------------------------


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number, v):
    return varint(number << 3) + varint(v)


def piece(text, score, kind=1):
    """ModelProto.SentencePiece: kind 1 normal, 2 unknown, 3 control."""
    return field_bytes(1, field_bytes(1, text.encode()) + varint(2 << 3 | 5) + struct.pack("<f", score)
                       + field_varint(3, kind))


PIECES = [("<pad>", 0.0, 3), ("</s>", 0.0, 3), ("<unk>", 0.0, 2), ("\u2581a", -1.0, 1), ("a", -2.0, 1)]


def spiece(pieces=PIECES, trainer=b"", normalizer=None):
    """A ModelProto: pieces, a trainer_spec (model_type unigram unless `trainer` says more), a normalizer_spec."""
    data = b"".join(piece(*p) for p in pieces)
    data += field_bytes(2, field_varint(3, 1) + trainer)
    data += field_bytes(3, normalizer if normalizer is not None else field_bytes(1, b"identity"))
    return data


def t5(model=None, config=None):
    files = {}
    if model is not None:
        files["spiece.model"] = model
    files["tokenizer_config.json"] = json.dumps(config or {"eos_token": "</s>", "pad_token": "<pad>",
                                                          "unk_token": "<unk>", "extra_ids": 2})
    return files


CASES = {
    # CLIP
    "clip_missing_vocab.NOT_FOUND": clip(vocab=None),
    "clip_missing_merges.NOT_FOUND": clip(merges=None),
    "clip_vocab_is_directory.INVALID_ARGUMENT": {**clip(vocab=None), "vocab.json/.gitkeep": ""},
    "clip_vocab_not_json.INVALID_ARGUMENT": clip(vocab='{"a": 0, "b": 1,'),
    "clip_vocab_is_array.INVALID_ARGUMENT": clip(vocab='["a", "b"]'),
    "clip_vocab_empty.INVALID_ARGUMENT": clip(vocab={}),
    "clip_vocab_negative_id.INVALID_ARGUMENT": clip(vocab={**CLIP_VOCAB, "b": -1}),
    "clip_vocab_string_id.INVALID_ARGUMENT": clip(vocab={**CLIP_VOCAB, "b": "1"}),
    "clip_vocab_fractional_id.INVALID_ARGUMENT": clip(vocab={**CLIP_VOCAB, "b": 1.5}),
    "clip_vocab_duplicate_token.INVALID_ARGUMENT": clip(vocab='{"a": 0, "a": 1}'),
    "clip_vocab_invalid_utf8.INVALID_ARGUMENT": clip(vocab=b'{"a\xff": 0}'),
    "clip_merges_three_tokens.INVALID_ARGUMENT": clip(merges="#version: 0.2\na b</w>\na b c\n"),
    "clip_merges_two_spaces.INVALID_ARGUMENT": clip(merges="#version: 0.2\na  b\n"),
    "clip_merges_blank_line.INVALID_ARGUMENT": clip(merges="#version: 0.2\na b</w>\n\na b\n"),
    "clip_merges_unknown_token.INVALID_ARGUMENT": clip(merges="#version: 0.2\na c\n"),
    "clip_merges_result_not_in_vocab.INVALID_ARGUMENT": clip(merges="#version: 0.2\nb a\n"),
    "clip_config_not_json.INVALID_ARGUMENT": clip(config="{bos_token: <|startoftext|>}"),
    "clip_pad_token_is_number.INVALID_ARGUMENT": clip(config={**CLIP_CONFIG, "pad_token": 7}),
    "clip_pad_token_not_in_vocab.INVALID_ARGUMENT": clip(config={**CLIP_CONFIG, "pad_token": "<pad>"}),
    "clip_added_token_bad_id.INVALID_ARGUMENT": clip(config={
        **CLIP_CONFIG, "added_tokens_decoder": {"seven": {"content": "<|endoftext|>", "special": True}}}),
    "clip_added_token_single_word.UNIMPLEMENTED": clip(config={
        **CLIP_CONFIG, "added_tokens_decoder": {"7": {"content": "<|endoftext|>", "single_word": True}}}),
    # T5
    "t5_missing_spiece.NOT_FOUND": t5(),
    "t5_spiece_empty.INVALID_ARGUMENT": t5(b""),
    "t5_spiece_not_protobuf.INVALID_ARGUMENT": t5(b"this is not a sentencepiece model\n"),
    "t5_spiece_truncated.INVALID_ARGUMENT": t5(spiece()[:30]),
    "t5_spiece_no_unknown_piece.INVALID_ARGUMENT": t5(spiece([p for p in PIECES if p[2] != 2] + [("b", -3.0, 1)])),
    "t5_spiece_duplicate_piece.INVALID_ARGUMENT": t5(spiece(PIECES + [("a", -3.0, 1)])),
    "t5_spiece_bad_charsmap.INVALID_ARGUMENT": t5(spiece(normalizer=field_bytes(1, b"nmt_nfkc")
                                                         + field_bytes(2, struct.pack("<I", 1000) + b"\0" * 8))),
    "t5_spiece_bpe.UNIMPLEMENTED": t5(spiece(trainer=field_varint(3, 2))),
    "t5_spiece_byte_fallback.UNIMPLEMENTED": t5(spiece(trainer=field_varint(35, 1))),
    "t5_extra_ids_negative.INVALID_ARGUMENT": t5(spiece(), {"extra_ids": -1}),
    "t5_eos_not_a_piece.INVALID_ARGUMENT": t5(spiece(), {"eos_token": "<eos>"}),
}


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    for case, files in CASES.items():
        folder = OUT / case
        folder.mkdir(parents=True)
        for name, content in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    print(f"wrote {len(CASES)} cases to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
