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

cd "$here"
go vet ./...
go test -count=1 ./...

cd "$here/../../examples/go"
go vet ./...
go run .
