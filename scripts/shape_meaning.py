#!/usr/bin/env python3
"""What a generated shape picture shows: its shape, its colour and its background colour.

    shape_meaning.py DIR [--min 0.9] [--per-prompt-min P] [--quiet]
    shape_meaning.py IMAGE.png ...

The project's default model (models/tiny-sd3, trained by scripts/train_default_model.py)
draws one flat shape on a flat background for the prompt
"a <colour> <shape> on a <bgcolour> background" ("an" before orange). This module reads such a
picture back:

  background  the palette colour that most pixels of the 1-pixel border are nearest to
              (their median RGB is the background's measured colour);
  foreground  the pixels far from the background (distance > 60 in RGB), then, with their
              median RGB as the foreground's colour, every pixel nearer to that colour than
              to the background's; the largest 8-connected part of those is the shape;
  colour      the palette colour nearest to the median RGB of the shape's pixels;
  shape       by the part of its bounding box the shape fills: an ideal square fills 1.0,
              a circle pi/4 = 0.785 and the upward triangle the model draws 0.5, so
              >= 0.89 is a square, >= 0.64 a circle and anything less a triangle.

File names: a picture generated for the prompt "a <colour> <shape> on a <bgcolour> background"
with seed N (torch.Generator().manual_seed(N) in diffusers, GenerateRequest::seed in C++) is
named

    <colour>_<shape>_on_<bgcolour>__seed<N>.png        e.g. red_circle_on_white__seed3.png

The CLI reads DIR/*.png, prints one verdict per picture and then

    accuracy colour=0.xx shape=0.xx both=0.xx  (n=K)

(colour: the shape's and the background's colour right; shape: the shape right; both: all
three right), and exits 1 when `both` is under --min (default 0.9) or, with --per-prompt-min,
when any one prompt's share of right pictures is under P; 2 on a bad argument.
Given PNG paths instead of a directory it prints what each one shows.

Importable: classify(image) takes an HxWx3 uint8 numpy array or a PNG path and returns a
Verdict; expected_from_name(name) parses a file name; PALETTE, SHAPES and prompt() are the
shared vocabulary of the training script.
"""
import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The eight colours, as RGB. Pairwise at least ~100 apart, so a slightly-off colour is still
# nearest to the right name.
PALETTE = {
    "red": (215, 25, 35),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (250, 225, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "orange": (245, 125, 10),
    "purple": (130, 40, 170),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle"]

SQUARE_MIN_FILL = 0.89
CIRCLE_MIN_FILL = 0.64
FAR_FROM_BACKGROUND = 60.0  # RGB distance that certainly is not background
MIN_AREA_FRACTION = 0.02    # a "shape" smaller than this part of the image is no shape

NAME_RE = re.compile(r"^(?P<colour>[a-z]+)_(?P<shape>[a-z]+)_on_(?P<background>[a-z]+)__seed(?P<seed>\d+)\.png$")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def prompt(colour: str, shape: str, background: str) -> str:
    """"a red circle on an orange background"."""
    return f"{article(colour)} {colour} {shape} on {article(background)} {background} background"


def file_name(colour: str, shape: str, background: str, seed: int) -> str:
    return f"{colour}_{shape}_on_{background}__seed{seed}.png"


@dataclass
class Verdict:
    colour: str       # the shape's palette colour ("none" when no shape was found)
    shape: str        # circle / square / triangle / none
    background: str   # the background's palette colour
    fill: float       # the shape's area / its bounding box's area
    area: float       # the shape's area / the image's area

    def __str__(self):
        return f"{self.colour} {self.shape} on {self.background} (fill {self.fill:.2f}, area {self.area:.2f})"


_PALETTE_RGB = np.array(list(PALETTE.values()), dtype=np.float32)


def nearest_colour(rgb) -> str:
    d = np.linalg.norm(_PALETTE_RGB - np.asarray(rgb, dtype=np.float32), axis=-1)
    return COLOURS[int(d.argmin())]


def load_png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected part of a boolean mask (a flood fill; images are small)."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    best, best_size, current = 0, 0, 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        stack, size = [(y0, x0)], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not labels[yy, xx]:
                        labels[yy, xx] = current
                        stack.append((yy, xx))
        if size > best_size:
            best, best_size = current, size
    return labels == best if best else np.zeros_like(mask)


def classify(image) -> Verdict:
    """What an HxWx3 uint8 image (or a PNG path) shows."""
    img = load_png(image) if isinstance(image, (str, Path)) else np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 image, got shape {img.shape}")
    img = img[:, :, :3].astype(np.float32)
    h, w, _ = img.shape
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    names = [nearest_colour(p) for p in border]
    background = max(COLOURS, key=names.count)
    bg_rgb = np.median(border[np.array(names) == background], axis=0)

    d_bg = np.linalg.norm(img - bg_rgb, axis=-1)
    far = d_bg > FAR_FROM_BACKGROUND
    if far.sum() < MIN_AREA_FRACTION * h * w:
        return Verdict("none", "none", background, 0.0, float(far.mean()))
    fg_rgb = np.median(img[far], axis=0)
    d_fg = np.linalg.norm(img - fg_rgb, axis=-1)
    part = largest_component((d_fg < d_bg) & (d_bg > 0.25 * FAR_FROM_BACKGROUND))
    area = int(part.sum())
    if area < MIN_AREA_FRACTION * h * w:
        return Verdict("none", "none", background, 0.0, area / (h * w))
    ys, xs = np.nonzero(part)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    fill = area / box
    shape = "square" if fill >= SQUARE_MIN_FILL else "circle" if fill >= CIRCLE_MIN_FILL else "triangle"
    colour = nearest_colour(np.median(img[part], axis=0))
    return Verdict(colour, shape, background, float(fill), area / (h * w))


def expected_from_name(name: str):
    """(colour, shape, background, seed) from a file name, or None if it does not follow the naming."""
    m = NAME_RE.match(Path(name).name)
    if not m or m["colour"] not in PALETTE or m["background"] not in PALETTE or m["shape"] not in SHAPES:
        return None
    return m["colour"], m["shape"], m["background"], int(m["seed"])


def score(directory, quiet=False, out=sys.stdout, per_prompt=None):
    """Classifies DIR/*.png against their names; returns (colour, shape, both) accuracies and the count.
    per_prompt, a dict, receives {(colour, shape, background): [both right, pictures]}."""
    files = sorted(Path(directory).glob("*.png"))
    n = colour_ok = shape_ok = both_ok = 0
    per_prompt = {} if per_prompt is None else per_prompt
    for f in files:
        expected = expected_from_name(f.name)
        if expected is None:
            print(f"skip {f.name}: not <colour>_<shape>_on_<bgcolour>__seed<N>.png", file=out)
            continue
        colour, shape, background, _ = expected
        v = classify(f)
        c = v.colour == colour and v.background == background
        s = v.shape == shape
        n += 1
        colour_ok += c
        shape_ok += s
        both_ok += c and s
        tally = per_prompt.setdefault((colour, shape, background), [0, 0])
        tally[0] += c and s
        tally[1] += 1
        if not quiet or not (c and s):
            print(f"{'ok  ' if c and s else 'FAIL'} {f.name}: {v}", file=out)
    if n == 0:
        return 0.0, 0.0, 0.0, 0
    return colour_ok / n, shape_ok / n, both_ok / n, n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path, help="a directory of named PNGs, or PNG files")
    ap.add_argument("--min", type=float, default=0.9, help="the least `both` accuracy that passes (default 0.9)")
    ap.add_argument("--quiet", action="store_true", help="print only the failures and the accuracy line")
    ap.add_argument("--per-prompt-min", type=float, default=None,
                    help="also require this share of right pictures for every prompt on its own")
    args = ap.parse_args(argv)
    if len(args.paths) == 1 and args.paths[0].is_dir():
        prompts = {}
        colour, shape, both, n = score(args.paths[0], args.quiet, per_prompt=prompts)
        if n == 0:
            print(f"no <colour>_<shape>_on_<bgcolour>__seed<N>.png files in {args.paths[0]}", file=sys.stderr)
            return 2
        ok = both >= args.min
        if args.per_prompt_min is not None:
            for (c, s, b), (right, count) in sorted(prompts.items()):
                passed = right / count >= args.per_prompt_min
                ok = ok and passed
                print(f"{'ok  ' if passed else 'FAIL'} {prompt(c, s, b)}: {right}/{count} seeds")
        print(f"accuracy colour={colour:.2f} shape={shape:.2f} both={both:.2f}  (n={n})")
        return 0 if ok else 1
    for p in args.paths:
        if not p.is_file():
            print(f"not a file: {p}", file=sys.stderr)
            return 2
        print(f"{p}: {classify(p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
