#!/usr/bin/env bash
# Tests the Python package as a user gets it:
#   run_tests.sh LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR
# 1. A fresh venv that has the torch wheel and nothing else (fresh_venv.py links torch and what it requires from
#    the project's venv: no copy, no download).
# 2. `pip install` of the repository's root in it: scikit-build-core (from PyPI, in pip's isolated build
#    environment) builds libtwistedpic.so in build-pip/ (kept; ccache serves what `make` already compiled) and
#    installs it with the default model inside the package. No environment variable is set.
# 3. The pytest suite against the installed package (pytest, numpy and Pillow linked in for the tests only), from
#    outside the source tree; conftest.py checks where twistedpic was imported from. test_generate.py compares
#    with the CLI LIB_DIR/twistedpic (TP_CLI) and test_ffi.py with the headers in INCLUDE_DIR.
# 4. examples/python/list_models.py and generate.py with the installed package.
# Python: ${TP_VENV:-$HOME/.cache/twistedpic/venv}/bin/python.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${TP_VENV:-$HOME/.cache/twistedpic/venv}/bin/python"

lib_dir="$(cd "$1" && pwd)"
export TP_INCLUDE_DIR="$(cd "$2" && pwd)" TP_GENERATED_INCLUDE_DIR="$(cd "$3" && pwd)"  # read by tests/test_ffi.py
export TP_CLI="$lib_dir/twistedpic"                                                     # read by test_generate.py
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the source tree
unset TWISTEDPIC_LIBRARY PYTHONPATH

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
venv="$tmp/venv"

echo "== a fresh venv with the torch wheel"
"$python" "$here/fresh_venv.py" "$venv" torch

echo "== pip install $repo"
start=$SECONDS
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$repo"
echo "built and installed in $((SECONDS - start)) s"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export TP_EXPECT_PACKAGE_IN="$site/twistedpic"  # read by tests/conftest.py
(cd "$tmp" && "$venv/bin/python" -c '
import os, sys, twistedpic
here = os.path.dirname(twistedpic.__file__)
assert here == sys.argv[1], (here, sys.argv[1])
for name in ("py.typed", "libtwistedpic.so", "models/tiny-sd3/model_index.json"):
    assert os.path.isfile(os.path.join(here, name)), name + " is not installed"
assert twistedpic.default_model_dir() == os.path.join(here, "models", "tiny-sd3"), twistedpic.default_model_dir()
print("installed twistedpic", twistedpic.__version__, "on library", twistedpic.library_version())
' "$TP_EXPECT_PACKAGE_IN")

echo "== pytest, against the installed package"
"$python" "$here/fresh_venv.py" --add "$venv" pytest numpy pillow
(cd "$tmp" && "$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$here/tests" "$here/tests")

echo "== examples/python/list_models.py"
(cd "$tmp" && "$venv/bin/python" "$repo/examples/python/list_models.py")

echo "== examples/python/generate.py"
(cd "$tmp" && "$venv/bin/python" "$repo/examples/python/generate.py" "a red circle on a white background" --seed 5 \
  --steps 4 -o "$tmp/generate.png")
"$venv/bin/python" -c 'import sys; data = open(sys.argv[1], "rb").read(); assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]' \
  "$tmp/generate.png"
