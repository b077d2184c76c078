#!/usr/bin/env bash
# `conan create` against this machine's packages (no ConanCenter): builds the
# package in the Conan cache (a full rebuild of the library, no remotes) and runs
# test_package. Extra arguments go to conan create.
#
#   packaging/conan/create.sh            conan from PATH, else from $TP_VENV
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${TP_VENV:-$HOME/.cache/twistedpic/venv}
conan=${CONAN:-$(command -v conan || echo "$venv/bin/conan")}
[[ -x $conan ]] || { echo "conan not found: pip install conan (into $venv)" >&2; exit 1; }

if [[ -z ${TP_TORCH_CMAKE_PREFIX_PATH:-} ]]; then
  TP_TORCH_CMAKE_PREFIX_PATH=$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
fi
export TP_TORCH_CMAKE_PREFIX_PATH

"$conan" profile detect --exist-ok >/dev/null 2>&1  # the profile includes `default`
exec "$conan" create "$repo" -pr:a "$repo/packaging/conan/profile" --build=missing --no-remote "$@"
