#!/usr/bin/env bash
# Tests the Rust binding against a freshly built libtwistedpic, then builds and
# runs examples/rust. Called by ctest (bindings.rust) from any directory:
#   run_tests.sh LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR" >&2
  exit 2
fi
lib_dir=$(cd "$1" && pwd)
include_dir=$(cd "$2" && pwd)
generated_include_dir=$(cd "$3" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
example=$(cd "$here/../../examples/rust" && pwd)

[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"  # rustup's toolchain, if any
export TWISTEDPIC_LIB_DIR=$lib_dir
# The ABI test also compiles its layout table against the real header.
export TWISTEDPIC_INCLUDE_DIRS=$include_dir:$generated_include_dir

echo "== cargo test (bindings/rust)"
(cd "$here" && CARGO_TARGET_DIR="$here/target" cargo test --offline -j 1)

echo "== cargo run (examples/rust)"
# The example links like a user's program: the loader finds the library
# through LD_LIBRARY_PATH, not an rpath. It also generates a PNG with the
# shipped default model.
model_dir=$(cd "$here/../../models/tiny-sd3" && pwd)
png_dir=$(mktemp -d)
trap 'rm -rf "$png_dir"' EXIT
png=$png_dir/example.png
out=$(cd "$example" && CARGO_TARGET_DIR="$example/target" \
  LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" cargo run --offline -j 1 -- "$model_dir" "$png")
echo "$out"
grep -q "event: sd35_large device -> host (unload-after)" <<<"$out" || {
  echo "examples/rust: expected an unload-after event" >&2
  exit 1
}
grep -qF "wrote $png (32x32" <<<"$out" && cmp -s -n 8 "$png" <(printf '\x89PNG\r\n\x1a\n') || {
  echo "examples/rust: expected a 32x32 PNG at $png" >&2
  exit 1
}
