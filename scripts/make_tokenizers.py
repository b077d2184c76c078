#!/usr/bin/env python3
"""Tiny tokenizers in the formats of Stable Diffusion 3's three text encoders.

    make_tokenizers.py OUT_DIR

writes, from a built-in corpus and with no network:
  OUT_DIR/tokenizer/     CLIP BPE (vocab.json, merges.txt), pad "<|endoftext|>" (SD3's CLIP-L)
  OUT_DIR/tokenizer_2/   the same vocabulary, pad "!"                         (SD3's CLIP-G)
  OUT_DIR/tokenizer_3/   a T5 sentencepiece unigram model (spiece.model)       (SD3's T5-XXL)
each with the tokenizer_config.json / special_tokens_map.json that
transformers' CLIPTokenizer / T5TokenizerFast.from_pretrained(folder) need.

The CLIP vocabulary follows CLIP's layout: the 256 byte characters of
bytes_to_unicode(), the same with the "</w>" end-of-word suffix, one entry per
merge in merge order, then <|startoftext|> and <|endoftext|>. The BPE trainer
is a plain greedy one (most frequent pair, ties broken by the pair's text), so
the output is the same bytes on every run. The T5 model is trained by the
sentencepiece library with one thread (T5 conventions: pad=0, eos=1, unk=2, no
bos; the 100 <extra_id_N> sentinels come from tokenizer_config.json).

Importable: write_tokenizers(out_dir) does the same.
"""
import collections
import io
import json
import sys
import unicodedata
from pathlib import Path

import regex

CLIP_VOCAB_TARGET = 1500  # entries, specials included
T5_VOCAB_SIZE = 1000

COLOURS = ["red", "green", "blue", "yellow", "white", "black", "orange", "purple"]
SHAPES = ["circle", "square", "triangle"]

SENTENCES = [
    "A photograph of an astronaut riding a horse on the moon.",
    "An oil painting of a lighthouse at sunset, dramatic clouds, 4k.",
    "A cat sitting on a windowsill, watching the rain.",
    "The quick brown fox jumps over the lazy dog!",
    "A watercolour sketch of a mountain village in winter.",
    "Close-up portrait of an old man with a white beard, studio lighting.",
    "A bowl of fruit: apples, pears, grapes and a banana.",
    "Isometric view of a tiny city block, low-poly, pastel colours.",
    "A dragon made of glass, flying over a frozen lake.",
    "Two robots playing chess in a park; autumn leaves everywhere.",
    "It's a sunny day, isn't it? We're going to the beach.",
    "They'll paint the fence; I'd rather read a book.",
    "You've got mail! I'm on my way...",
    "A red circle, a green square, and a blue triangle (in that order).",
    "Minimalist poster: 'less is more' in bold letters.",
    "Pixel art of a spaceship, 16-bit style, 8 colours.",
    "A steaming cup of coffee next to a laptop, 3 a.m.",
    "Highly detailed, sharp focus, trending on artstation.",
    "A map of an imaginary island with rivers, forests and castles.",
    "Children flying kites on a windy hill in spring.",
    "A neon sign that says \"open 24/7\" in a dark alley.",
    "An old wooden boat on a calm lake at dawn, mist over the water.",
    "A bookshelf full of colourful books & a sleeping dog.",
    "Abstract shapes in primary colours, Bauhaus style, 1925.",
    "A close-up of a bee on a sunflower; macro photography.",
    "The skyline of a futuristic city at night, flying cars #cyberpunk.",
    "A plate of sushi with chopsticks on a black slate.",
    "Snow-covered pine trees under a starry sky, long exposure.",
    "A vintage car parked in front of a diner, 1950s, film grain.",
    "Cute cartoon penguin wearing a scarf and a hat.",
    "A café in Paris with a crème brûlée on the table.",
    "Un garçon mange une pomme près de la fenêtre.",
    "Ein Mädchen läuft über die Straße.",
    "El niño juega con el perro en el jardín.",
    "Łódź, Kraków and Gdańsk on a map of Poland.",
    "Ελληνικά γράμματα: άλφα, βήτα, γάμμα.",
    "Русский текст: красный круг на белом фоне.",
    "一只猫坐在窗台上。",
    "富士山と桜の風景、浮世絵風。",
    "빨간 원과 파란 사각형",
    "A smiling sun 😀 over green hills 🌄 and a rainbow 🌈.",
    "Price: $20, 50% off, 3 x 4 = 12, a+b=c; ~approx~ [draft] {v2} <tag> |pipe| ^caret^ `code`.",
    "email@example.com, https://example.com/path?q=1&r=2",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and 1234567890 and 3.14159.",
    "A sign reading “welcome” — with curly quotes… and an ellipsis.",
    "A fox curled up asleep in the snow beside a frozen stream.",
    "Macro shot of dew drops on a spider web at sunrise.",
    "A crowded night market with lanterns, food stalls and smoke.",
    "An astronaut floating inside a space station, looking at Earth.",
    "A medieval knight in shining armour, holding a sword and shield.",
    "A cozy kitchen with copper pots hanging above a wooden table.",
    "Aerial photograph of a winding river through a green valley.",
    "A jellyfish glowing in the deep ocean, bioluminescent.",
    "A hand-drawn diagram of a steam engine with labels.",
    "A portrait of a woman wearing a pearl earring, baroque style.",
    "A desert landscape with cactus plants and a purple sky.",
    "A herd of elephants walking across the savanna at dusk.",
    "A small wooden cabin surrounded by tall birch trees.",
    "Stained glass window showing a phoenix rising from flames.",
    "A cup of tea, a slice of lemon cake and an open newspaper.",
    "A tiger resting in tall grass, photographed with a telephoto lens.",
    "A busy train station in the early morning, motion blur.",
    "An underwater coral reef with clownfish and sea turtles.",
    "A surreal melting clock draped over a tree branch.",
    "A paper boat floating in a puddle after the storm.",
    "A violin lying on sheet music next to a candle.",
    "A snowy owl perched on a fence post at twilight.",
    "A basket of freshly baked bread, croissants and muffins.",
    "The interior of a grand library with spiral staircases.",
    "A hot air balloon drifting above a patchwork of fields.",
    "A detailed pencil drawing of a human skull, anatomical study.",
    "A robot gardener watering tomatoes in a greenhouse.",
    "Fireworks exploding over a harbour, reflected in the water.",
    "A bicycle leaning against a brick wall covered in ivy.",
    "A chameleon changing colours on a tropical leaf.",
    "A lonely astronaut walking through a field of giant mushrooms.",
    "A ceramic vase with blue floral patterns, museum photograph.",
    "A thunderstorm over the prairie, lightning striking the ground.",
    "A pair of red sneakers on a skateboard ramp.",
    "An ancient temple overgrown with jungle vines.",
    "A polar bear swimming under arctic ice, sunlight from above.",
    "A chef tossing vegetables in a flaming wok.",
    "A quiet street in Kyoto during cherry blossom season.",
    "A mechanical owl made of brass gears and springs.",
    "Volcanic eruption at night, lava flowing into the sea.",
    "A child's drawing of a house with a smiling family.",
    "A marble statue of a horse in a sunlit courtyard.",
    "A lighthouse keeper reading by an oil lamp.",
    "Glowing mushrooms in an enchanted forest, fantasy concept art.",
    "A vintage typewriter with a half-written letter.",
    "Sailboats racing on a bright blue bay, wind and spray.",
    "A giant tortoise walking slowly along a sandy beach.",
    "An infographic about recycling with simple flat icons.",
    "A frosted window with patterns of ice crystals.",
    "A busy beehive, honeycomb dripping with golden honey.",
    "A steampunk airship docked at a floating island.",
    "Rows of lavender fields in Provence under a summer sky.",
    "A hummingbird hovering next to a red hibiscus flower.",
    "Graffiti on a concrete wall, vibrant spray paint letters.",
    "A wolf howling at the full moon on a rocky ridge.",
    "An elegant ballroom with crystal chandeliers and dancers.",
    "A pile of autumn pumpkins at a farmers market.",
    "A submarine exploring a shipwreck covered in barnacles.",
    "Blueprint of a futuristic motorcycle, technical drawing.",
    "A koala sleeping in a eucalyptus tree.",
    "A glass of orange juice on a breakfast table by the window.",
    "Northern lights dancing over a snowy mountain lake.",
    "A black and white photograph of a jazz band in a smoky club.",
    "A goldfish bowl on a desk cluttered with pencils and notes.",
    "Origami cranes hanging from the ceiling on thin threads.",
    "A waterfall cascading into a turquoise pool in the jungle.",
    "A scarecrow standing in a wheat field before harvest.",
]


def corpus():
    """The training corpus: the colour/shape grammar and the sentences above."""
    lines = []
    for shape in SHAPES:
        for colour in COLOURS:
            for background in COLOURS:
                lines.append(f"a {colour} {shape} on a {background} background")
    lines += SENTENCES
    return lines


# ---- CLIP BPE ---------------------------------------------------------------------------

CLIP_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")


def bytes_to_unicode():
    """CLIP's (and GPT-2's) reversible map from bytes to printable characters, in CLIP's order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clip_words(lines):
    """Word frequencies after CLIP's normalization and split, as tuples of byte characters + "</w>"."""
    enc = bytes_to_unicode()
    counts = collections.Counter()
    for line in lines:
        text = regex.sub(r"\s+", " ", unicodedata.normalize("NFC", line)).strip().lower()
        for piece in CLIP_PATTERN.findall(text):
            chars = [enc[b] for b in piece.encode("utf-8")]
            chars[-1] += "</w>"
            counts[tuple(chars)] += 1
    return counts


def train_bpe(words, num_merges):
    """Greedy BPE: merge the most frequent adjacent pair (ties: the smaller pair text) until num_merges
    or until every word is one symbol."""
    words = dict(words)
    merges = []
    while len(merges) < num_merges:
        pairs = collections.Counter()
        for word, freq in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = {}
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + freq
        words = merged
    return merges


def clip_vocab_and_merges():
    base = list(bytes_to_unicode().values())
    vocab_list = base + [c + "</w>" for c in base]
    merges = train_bpe(clip_words(corpus()), CLIP_VOCAB_TARGET - len(vocab_list) - 2)
    vocab_list += [a + b for a, b in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab_list)) == len(vocab_list), "a merge produced an existing token"
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def added_token(content, normalized):
    return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False,
            "single_word": False, "special": True}


def write_clip(folder, vocab, merges, pad):
    """One CLIP tokenizer folder as SD3's diffusers folders have it (tokenizer/ or tokenizer_2/)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "vocab.json", vocab, compact=True)
    with open(folder / "merges.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    decoder = {str(vocab["<|startoftext|>"]): added_token("<|startoftext|>", True),
               str(vocab["<|endoftext|>"]): added_token("<|endoftext|>", False)}
    if pad != "<|endoftext|>":
        decoder = {str(vocab[pad]): added_token(pad, False), **decoder}
    write_json(folder / "tokenizer_config.json", {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    })
    write_json(folder / "special_tokens_map.json", {
        "bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                      "single_word": False},
        "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
        "pad_token": pad,
        "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
    })


# ---- T5 sentencepiece ----------------------------------------------------------------------


def train_spiece():
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=model, vocab_size=T5_VOCAB_SIZE, hard_vocab_limit=False,
        model_type="unigram", character_coverage=1.0, num_threads=1, normalization_rule_name="nmt_nfkc",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        minloglevel=2)
    return model.getvalue()


def write_t5(folder, model_bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model_bytes)
    write_json(folder / "tokenizer_config.json", {
        "eos_token": "</s>",
        "extra_ids": 100,
        "model_max_length": 512,
        "pad_token": "<pad>",
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    })
    write_json(folder / "special_tokens_map.json", {
        "additional_special_tokens": [f"<extra_id_{i}>" for i in range(100)],
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
    })


# ---- output ----------------------------------------------------------------------------------


def write_json(path, value, compact=False):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        if compact:
            json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(value, f, ensure_ascii=False, indent=2)
        f.write("\n")


def write_tokenizers(out_dir):
    out = Path(out_dir)
    vocab, merges = clip_vocab_and_merges()
    write_clip(out / "tokenizer", vocab, merges, "<|endoftext|>")
    write_clip(out / "tokenizer_2", vocab, merges, "!")
    write_t5(out / "tokenizer_3", train_spiece())


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: make_tokenizers.py OUT_DIR")
    write_tokenizers(argv[1])


if __name__ == "__main__":
    main(sys.argv)
