#!/usr/bin/env bash
# Tests the Python binding against a freshly built library:
#   run_tests.sh LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR
# Runs the pytest suite from the source tree, checks that the package pip-installs and imports, and runs
# examples/python/list_models.py and examples/python/generate.py (on the shipped models/tiny-sd3).
# tests/test_generate.py compares with the CLI LIB_DIR/twistedpic when it exists (override: TP_CLI). Python: ${TP_VENV:-$HOME/.cache/twistedpic/venv}/bin/python (with pytest).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${TP_VENV:-$HOME/.cache/twistedpic/venv}/bin/python"

lib_dir="$(cd "$1" && pwd)"
include_dir="$(cd "$2" && pwd)"
generated_include_dir="$(cd "$3" && pwd)"
export TWISTEDPIC_LIBRARY="$lib_dir/libtwistedpic.so"
export TP_INCLUDE_DIR="$include_dir" TP_GENERATED_INCLUDE_DIR="$generated_include_dir"  # read by tests/test_ffi.py
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the source tree
[[ -f "$TWISTEDPIC_LIBRARY" ]] || { echo "error: $TWISTEDPIC_LIBRARY does not exist" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== pytest"
PYTHONPATH="$here" "$python" -m pytest -q -p no:cacheprovider "$here/tests"

echo "== pip install"
cp -r "$here" "$tmp/src"  # builds in a copy: no build/ or *.egg-info in the source tree
"$python" -m pip install --quiet --no-deps --no-build-isolation --disable-pip-version-check --target "$tmp/site" "$tmp/src"
(cd "$tmp" && PYTHONPATH="$tmp/site" "$python" -c '
import os, sys, twistedpic
assert twistedpic.__file__.startswith(sys.argv[1]), twistedpic.__file__
assert os.path.isfile(os.path.join(os.path.dirname(twistedpic.__file__), "py.typed")), "py.typed is not installed"
print("installed twistedpic", twistedpic.__version__, "on library", twistedpic.library_version())
' "$tmp/site")

echo "== examples/python/list_models.py"
PYTHONPATH="$here" "$python" "$repo/examples/python/list_models.py"

echo "== examples/python/generate.py"
PYTHONPATH="$here" "$python" "$repo/examples/python/generate.py" "a red circle on a white background" --seed 5 \
  --steps 4 -o "$tmp/generate.png"
"$python" -c 'import sys; data = open(sys.argv[1], "rb").read(); assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]' \
  "$tmp/generate.png"
