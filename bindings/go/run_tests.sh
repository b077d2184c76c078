#!/usr/bin/env bash
# Builds, vets and tests the Go binding against a built libtwistedpic, then
# runs the Go example. Usage: run_tests.sh LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 LIB_DIR INCLUDE_DIR GENERATED_INCLUDE_DIR" >&2
  exit 2
fi
lib_dir=$(realpath "$1")
include_dir=$(realpath "$2")
generated_include_dir=$(realpath "$3")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export CGO_ENABLED=1
export CGO_CFLAGS="-I$include_dir -I$generated_include_dir"
export CGO_LDFLAGS="-L$lib_dir -Wl,-rpath,$lib_dir"
export GOFLAGS=-p=1 GOPROXY=off GOTOOLCHAIN=local
export GOCACHE=${GOCACHE:-${HOME:-/tmp}/.cache/twistedpic/go-build}
# The generation tests compare with the CLI built next to the library.
export TWISTEDPIC_LIB_DIR=$lib_dir

cd "$here"
go vet ./...
go test -count=1 ./...

cd "$here/../../examples/go"
go vet ./...
# The example also generates a PNG with the shipped default model.
model_dir=$(realpath "$here/../../models/tiny-sd3")
png_dir=$(mktemp -d)
trap 'rm -rf "$png_dir"' EXIT
png=$png_dir/example.png
out=$(go run . "$model_dir" "$png")
echo "$out"
grep -qF "wrote $png (32x32)" <<<"$out" && cmp -s -n 8 "$png" <(printf '\x89PNG\r\n\x1a\n') || {
  echo "examples/go: expected a 32x32 PNG at $png" >&2
  exit 1
}
