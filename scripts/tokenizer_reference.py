#!/usr/bin/env python3
"""transformers' token ids for a prompt corpus: the reference for the C++ tokenizers.

    tokenizer_reference.py [--build] TOKENIZERS_DIR CORPUS OUT_JSON

TOKENIZERS_DIR holds tokenizer/, tokenizer_2/ and tokenizer_3/ as
make_tokenizers.py writes them (or as a diffusers SD3 folder has them); with
--build, make_tokenizers.py writes them there first. CORPUS
is tests/data/tokenizer_corpus.txt (its header describes the format). Each
prompt is decoded from UTF-8 with errors="replace" and tokenized as diffusers'
StableDiffusion3Pipeline does:

    tokenizer(prompt, padding="max_length", max_length=N, truncation=True, add_special_tokens=True)

with CLIPTokenizer (tokenizer, tokenizer_2) and T5TokenizerFast (tokenizer_3),
for each N in MAX_LENGTHS. Each tokenizer is also saved by transformers'
save_pretrained into TOKENIZERS_DIR/saved/<name> (transformers 5 writes only
tokenizer.json and tokenizer_config.json), loaded back from there, and its
ids recorded as the runs of "saved/<name>". OUT_JSON:

    {"transformers": "5.24.0",
     "prompts": ["<hex of the prompt's bytes>", ...],
     "runs": [{"tokenizer": "tokenizer", "max_length": 77,
               "ids": [[...], ...], "length": [...], "truncated": [...]}, ...]}

length counts the tokens before padding (the attention mask's ones); truncated
says whether the untruncated encoding was longer than max_length.
"""
import json
import re
import shutil
import sys
from pathlib import Path

MAX_LENGTHS = {"tokenizer": [77, 8], "tokenizer_2": [77, 8], "tokenizer_3": [256, 77, 8]}

ESCAPE = re.compile(rb"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))")
SIMPLE = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"\\": b"\\", b"z": b""}


def read_corpus(path):
    """The corpus' prompts as bytes, escapes decoded."""
    prompts = []
    for line in Path(path).read_bytes().split(b"\n"):
        if not line or line.startswith(b"#"):
            continue

        def unescape(m):
            if m.group(1):
                return bytes([int(m.group(1), 16)])
            if m.group(2) or m.group(3):
                return chr(int(m.group(2) or m.group(3), 16)).encode("utf-8", "surrogatepass")
            if m.group(4) in SIMPLE:
                return SIMPLE[m.group(4)]
            raise ValueError(f"{path}: unknown escape \\{m.group(4).decode()} in {line!r}")

        prompts.append(ESCAPE.sub(unescape, line))
    return prompts


def main(argv):
    build = len(argv) > 1 and argv[1] == "--build"
    if build:
        argv = argv[:1] + argv[2:]
    if len(argv) != 4:
        sys.exit("usage: tokenizer_reference.py [--build] TOKENIZERS_DIR CORPUS OUT_JSON")
    if build:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from make_tokenizers import write_tokenizers

        write_tokenizers(argv[1])
    import transformers

    transformers.logging.set_verbosity_error()  # "sequence length is longer than ..." is expected here
    from transformers import CLIPTokenizer, T5TokenizerFast

    folder = Path(argv[1])
    prompts = read_corpus(argv[2])
    texts = [p.decode("utf-8", errors="replace") for p in prompts]
    runs = []
    saved = folder / "saved"
    for name in MAX_LENGTHS:
        cls = T5TokenizerFast if name == "tokenizer_3" else CLIPTokenizer
        if (saved / name).exists():
            shutil.rmtree(saved / name)
        cls.from_pretrained(str(folder / name)).save_pretrained(str(saved / name))
        legacy = {"vocab.json", "merges.txt", "spiece.model"} & {p.name for p in (saved / name).iterdir()}
        assert not legacy, f"save_pretrained wrote {legacy}: the saved folders no longer test tokenizer.json"
    for name, lengths in [*MAX_LENGTHS.items(), *((f"saved/{k}", v) for k, v in MAX_LENGTHS.items())]:
        cls = T5TokenizerFast if name.endswith("tokenizer_3") else CLIPTokenizer
        tok = cls.from_pretrained(str(folder / name))
        full = [len(ids) for ids in tok(texts, add_special_tokens=True).input_ids]
        for n in lengths:
            out = tok(texts, padding="max_length", max_length=n, truncation=True, add_special_tokens=True)
            for ids in out.input_ids:
                assert len(ids) == n, (name, n, ids)
            runs.append({"tokenizer": name, "max_length": n, "ids": out.input_ids,
                         "length": [sum(m) for m in out.attention_mask],
                         "truncated": [f > n for f in full]})
    result = {"transformers": transformers.__version__, "prompts": [p.hex() for p in prompts], "runs": runs}
    Path(argv[3]).write_text(json.dumps(result, separators=(",", ":")) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
