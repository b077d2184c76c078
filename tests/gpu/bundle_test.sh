#!/usr/bin/env bash
# The GPU bundle without a GPU (ctest package.gpu_bundle; label package): makes the bundle from this build
# as a tarball outside the clone, unpacks it elsewhere, and runs its run.sh --dry-run there in a bare
# environment (env -i: no LD_LIBRARY_PATH, a minimal PATH; run.sh sets the loader path to the bundle and
# torch's folders only, and fails on any library that ldd resolves elsewhere than the bundle, torch's folders
# or the base-system list). Then proves the check has teeth: the same bundle without lib/libfmt.so.9 must
# abort, naming the library found outside it.
#
#   bundle_test.sh BUILD_DIR PYTHON     (PYTHON: a python3 with torch, standing in for the GPU machine's)
set -euo pipefail
build=$(cd "$1" && pwd)
python=$2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tp-gpu-bundle-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
case $tmp in "$repo"/*) echo "bundle_test: $tmp is inside the clone" >&2; exit 1 ;; esac

bash "$repo/scripts/gpu_bundle/make_bundle.sh" "$build" "$tmp/made/twistedpic-gpu" --tar --max-mib 60
mkdir "$tmp/unpacked"
tar -xzf "$tmp/made/twistedpic-gpu.tar.gz" -C "$tmp/unpacked"
rm -rf "$tmp/made"
bundle=$tmp/unpacked/twistedpic-gpu

cd "$tmp"
env -i PATH=/usr/bin:/bin HOME="$HOME" TMPDIR="$tmp" bash "$bundle/run.sh" --dry-run --python "$python" --out "$tmp/out"
echo "bundle_test: the dry run passed outside the clone ($bundle)"

# Teeth: a library removed from the bundle is found on the build machine, and the check must say so.
rm "$bundle/lib/libfmt.so.9" "$bundle/MANIFEST.sha256"
set +e
log=$(env -i PATH=/usr/bin:/bin HOME="$HOME" TMPDIR="$tmp" bash "$bundle/run.sh" --dry-run --python "$python" --out "$tmp/out2" 2>&1)
rc=$?
set -e
if [ $rc = 2 ] && grep -q "needs libfmt.so.9 from .*: not in the bundle" <<<"$log"; then
  echo "bundle_test: without lib/libfmt.so.9 the dry run aborts, naming it"
else
  echo "$log" | tail -20
  echo "bundle_test: FAILED: a bundle without libfmt.so.9 passed the dry run (rc $rc)" >&2
  exit 1
fi
