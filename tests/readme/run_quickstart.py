#!/usr/bin/env python3
"""Runs one of README.md's quickstarts as written, against a build tree.

    run_quickstart.py LANG [--repo DIR] [--build DIR] [--python PYTHON] [--keep]

LANG is c, python, rust or go: the fenced block right after the line
`<!-- quickstart:LANG -->` in README.md. The program is built and run in a
fresh folder holding a link `models -> REPO/models` (the quickstarts read
`models/tiny-sd3`), and must leave `out.png` there: a 32x32 PNG.

- c:      cc -std=c11 -Wall -Wextra -Werror -I capi/include -I BUILD/generated/include -L BUILD -ltwistedpic
- python: the venv's python ($TP_VENV, else ~/.cache/twistedpic/venv) with PYTHONPATH=bindings/python
          and TWISTEDPIC_LIBRARY=BUILD/libtwistedpic.so
- rust:   a cargo project depending on bindings/rust/twistedpic by path, built offline with
          CARGO_TARGET_DIR=examples/rust/target (shared with examples/rust, so the crates build once)
- go:     a module with a replace directive to bindings/go (as examples/go), GOPROXY=off

ctest runs it as readme.quickstart_<lang> (label `readme`, tests/CMakeLists.txt).
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def extract(readme: Path, lang: str) -> str:
    """The fenced block after `<!-- quickstart:LANG -->` (blank lines may sit between)."""
    text = readme.read_text(encoding="utf-8")
    marker = f"<!-- quickstart:{lang} -->"
    if text.count(marker) != 1:
        sys.exit(f"{readme}: expected exactly one '{marker}', found {text.count(marker)}")
    after = text.split(marker, 1)[1]
    m = re.match(r"\s*\n(```+)[^\n]*\n(.*?)\n\1[ \t]*(\n|$)", after, re.S)
    if not m:
        sys.exit(f"{readme}: no fenced code block right after '{marker}'")
    return m.group(2) + "\n"


def run(cmd, cwd: Path, env=None):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, check=True)


def png_size(path: Path):
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        sys.exit(f"{path} is not a PNG (starts with {data[:16]!r})")
    return struct.unpack(">II", data[16:24])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lang", choices=["c", "python", "rust", "go"])
    ap.add_argument("--repo", type=Path, default=REPO)
    ap.add_argument("--build", type=Path, help="the build tree (default: REPO/build)")
    ap.add_argument("--python", type=Path, help="for the Python quickstart (default: the venv's, $TP_VENV)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and print its path")
    args = ap.parse_args()
    repo = args.repo.resolve()
    build = (args.build or repo / "build").resolve()
    lib = build / "libtwistedpic.so"
    if not lib.exists():
        sys.exit(f"{lib} does not exist: build the library first")
    source = extract(repo / "README.md", args.lang)
    includes = [repo / "capi" / "include", build / "generated" / "include"]

    work = Path(tempfile.mkdtemp(prefix=f"tp_quickstart_{args.lang}_"))
    try:
        (work / "models").symlink_to(repo / "models")
        env = dict(os.environ)
        if args.lang == "c":
            (work / "quickstart.c").write_text(source)
            cc = os.environ.get("CC", "cc")
            run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *(f"-I{d}" for d in includes), "quickstart.c",
                 "-o", "quickstart", f"-L{build}", "-ltwistedpic", f"-Wl,-rpath,{build}"], work)
            run(["./quickstart"], work)
        elif args.lang == "python":
            venv = Path(os.environ.get("TP_VENV", Path.home() / ".cache" / "twistedpic" / "venv"))
            python = args.python or venv / "bin" / "python"
            (work / "quickstart.py").write_text(source)
            env.update(PYTHONPATH=str(repo / "bindings" / "python"), TWISTEDPIC_LIBRARY=str(lib),
                       PYTHONDONTWRITEBYTECODE="1")
            run([python, "quickstart.py"], work, env)
        elif args.lang == "rust":
            cargo_home = Path.home() / ".cargo" / "bin"
            if cargo_home.is_dir():
                env["PATH"] = f"{cargo_home}:{env.get('PATH', '')}"
            (work / "src").mkdir()
            (work / "src" / "main.rs").write_text(source)
            (work / "Cargo.toml").write_text(
                '[package]\nname = "readme-quickstart"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n'
                f'[dependencies]\ntwistedpic = {{ path = "{repo / "bindings" / "rust" / "twistedpic"}" }}\n\n'
                "[workspace]\n")
            target = repo / "examples" / "rust" / "target"
            env.update(CARGO_TARGET_DIR=str(target), TWISTEDPIC_LIB_DIR=str(build),
                       LD_LIBRARY_PATH=f"{build}" + (f":{env['LD_LIBRARY_PATH']}" if env.get("LD_LIBRARY_PATH") else ""))
            run(["cargo", "build", "--offline", "-j", "1", "--quiet"], work, env)
            run([target / "debug" / "readme-quickstart"], work, env)
        else:
            (work / "main.go").write_text(source)
            (work / "go.mod").write_text(
                "module twistedpic.dev/twistedpic/readme/quickstart\n\ngo 1.19\n\n"
                "require twistedpic.dev/twistedpic/bindings/go v0.0.0\n\n"
                f"replace twistedpic.dev/twistedpic/bindings/go => {repo / 'bindings' / 'go'}\n")
            env.update(CGO_ENABLED="1", CGO_CFLAGS=" ".join(f"-I{d}" for d in includes),
                       CGO_LDFLAGS=f"-L{build} -Wl,-rpath,{build}", GOFLAGS="-p=1", GOPROXY="off",
                       GOTOOLCHAIN="local",
                       GOCACHE=env.get("GOCACHE", str(Path.home() / ".cache" / "twistedpic" / "go-build")))
            run(["go", "build", "-o", "quickstart", "."], work, env)
            run(["./quickstart"], work, env)

        out = work / "out.png"
        if not out.exists():
            sys.exit(f"the {args.lang} quickstart wrote no out.png")
        size = png_size(out)
        if size != (32, 32):
            sys.exit(f"the {args.lang} quickstart's out.png is {size[0]}x{size[1]}, not 32x32")
        print(f"quickstart:{args.lang}: out.png is a 32x32 PNG")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        sys.exit(f"quickstart failed: {' '.join(map(str, e.cmd))} exited with {e.returncode}")
