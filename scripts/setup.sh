#!/usr/bin/env bash
# Installs everything twistedpic needs on a fresh Debian machine, and nothing
# on a machine that already has it. Idempotent: a second run downloads nothing.
#
#   scripts/setup.sh            apt packages + the Python venv with torch
#   TP_SKIP_VENV=1 ...          only apt packages (a user's own LibTorch via Torch_DIR)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
venv=${TP_VENV:-$HOME/.cache/twistedpic/venv}

# --- Debian packages ------------------------------------------------------
apt_pkgs=(cmake ninja-build g++ clang pkg-config ccache libexpected-dev libspdlog-dev nlohmann-json3-dev libpng-dev
          libsentencepiece-dev libutf8proc-dev libcli11-dev libcpp-httplib-dev libxxhash-dev
          libgtest-dev libgmock-dev libbenchmark-dev binutils python3-venv golang-go libclang-rt-14-dev)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Rust for the Rust binding's tests: rustup's toolchain when present, else Debian's.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "setup: installing Debian's cargo"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cargo >/dev/null
fi

if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: the CUDA Toolkit 13 (nvcc) is required; install it from NVIDIA's packages" >&2
  exit 1
fi

[ "${TP_SKIP_VENV:-0}" = 1 ] && exit 0

# --- Python venv with the CUDA 13.0 torch wheel ----------------------------
stamp="$venv/.twistedpic-requirements"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
fi
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  echo "setup: installing $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv (first run only)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
"$venv/bin/python" - <<'PY'
import sys, torch
cuda = torch.version.cuda or ""
if not cuda.startswith("13.0"):
    sys.exit(f"setup: torch {torch.__version__} is built for CUDA '{cuda}', twistedpic needs a CUDA 13.0 build")
PY
