#!/usr/bin/env python3
"""Checks the layering of docs/architecture.md from the #include lines of
every source file: an include may point to the file's own layer or to a
lower one, never up and never sideways to a peer. LibTorch headers (ATen,
c10, torch) may appear only from the torch layer up, spdlog only in the
logging facade, and the bindings may reach the library only through tp.h.

usage: check_layers.py ROOT [ARCHITECTURE_MD]
  ROOT holds the sources; the layers come from ARCHITECTURE_MD (default
  ROOT/docs/architecture.md).
Exit status 1, with one line per violation, when the layering is broken.
"""
import pathlib
import re
import sys

SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".c", ".cu", ".cuh"}
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include\s*([<"])([^>"]+)[>"]', re.M)
TORCH_HEADERS = re.compile(r"^(ATen|c10|torch|caffe2)/")


def read_layers(doc: pathlib.Path):
    """The ```layers block of docs/architecture.md: name, rank, path prefixes."""
    text = doc.read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    if not block:
        sys.exit("check_layers: docs/architecture.md has no ```layers block")
    layers = []
    for line in block.group(1).splitlines():
        fields = line.split()
        if not fields or fields[0] == "layer":
            continue
        name, rank, paths = fields[0], int(fields[1]), fields[2:]
        layers.append((name, rank, paths))
    return layers


def layer_of(rel: str, layers):
    best = None
    for name, rank, paths in layers:
        for p in paths:
            if rel == p or rel.startswith(p.rstrip("/") + "/"):
                if best is None or len(p) > len(best[2]):
                    best = (name, rank, p)
    return best


def resolve(root: pathlib.Path, including: pathlib.Path, target: str):
    for base in (including.parent, root / "src", root / "include", root / "capi" / "include", root / "capi" / "src"):
        candidate = base / target
        if candidate.is_file():
            return candidate.resolve().relative_to(root.resolve()).as_posix()
    return None


def main() -> int:
    root = pathlib.Path(sys.argv[1]).resolve()
    doc = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else root / "docs" / "architecture.md"
    layers = read_layers(doc)
    torch_rank = next(rank for name, rank, _ in layers if name == "torch")
    errors, files = [], 0
    for top in ("src", "include", "capi"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            own = layer_of(rel, layers)
            if own is None:
                errors.append(f"{rel}: in no layer of docs/architecture.md")
                continue
            files += 1
            for m in INCLUDE.finditer(path.read_text(errors="replace")):
                kind, target = m.groups()
                line = path.read_text(errors="replace")[: m.start()].count("\n") + 1
                where = f"{rel}:{line}"
                if kind == "<":
                    if TORCH_HEADERS.match(target) and own[1] < torch_rank:
                        errors.append(f"{where}: {own[0]} includes LibTorch's <{target}> (only torch and above may)")
                    if target.startswith("spdlog/") and not rel.startswith("src/log/"):
                        errors.append(f"{where}: <{target}>: only src/log sees spdlog")
                    continue
                resolved = resolve(root, path, target)
                if resolved is None:
                    continue  # generated (version.h) or outside the tree
                theirs = layer_of(resolved, layers)
                if theirs is None or theirs[0] == own[0]:
                    continue
                if theirs[1] > own[1]:
                    errors.append(f"{where}: {own[0]} (rank {own[1]}) includes \"{target}\" of {theirs[0]} (rank {theirs[1]}): upward")
                elif theirs[1] == own[1]:
                    errors.append(f"{where}: {own[0]} includes \"{target}\" of its peer {theirs[0]}")
    # The bindings speak C through tp.h only.
    bindings = root / "bindings"
    if bindings.is_dir():
        for path in sorted(bindings.rglob("*")):
            if not path.is_file() or path.suffix not in {".go", ".rs", ".py", ".h", ".c"}:
                continue
            for m in re.finditer(r"twistedpic/([A-Za-z_/]+\.h)", path.read_text(errors="replace")):
                if m.group(1) not in ("tp.h", "version.h"):
                    errors.append(f"{path.relative_to(root)}: names twistedpic/{m.group(1)}; bindings use tp.h only")
    for e in errors:
        print(e)
    print(f"check_layers: {files} files, {len(errors)} violation(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
