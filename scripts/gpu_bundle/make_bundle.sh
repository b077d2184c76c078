#!/usr/bin/env bash
# Makes the GPU bundle: everything a bare GPU machine (python3 with torch 2.11.0+cu130, no network, none of
# our Debian libraries) needs to run the gpu-labelled tests and the GPU measurements (run.sh).
#
#   make_bundle.sh BUILD_DIR OUT_DIR [--tar] [--max-mib 60]
#
# OUT_DIR/ (emptied first) holds:
#   run.sh                     the entry point (scripts/gpu_bundle/run.sh)
#   bin/                       twistedpic (the CLI), gpu_tests, gpu_torch_tests, gpu_bench: stripped, RUNPATH $ORIGIN/../lib
#   lib/                       libtwistedpic.so.0 and the shared libraries the machine lacks (spdlog, fmt,
#                              sentencepiece, utf8proc, png, ...: every library ldd resolves outside torch's
#                              folders and the base-system list, found by following ldd to a closure)
#   data/models/tiny-sd3       the default model
#   data/sd3_reference/        scripts/sd3_reference.py's folders and diffusers' outputs (parity)
#   wheels/                    diffusers (py3-none-any; the machine has its other dependencies)
#   python/measure.py          the Python side of the measurements
#   BUILD_INFO, MANIFEST.sha256
# With --tar also OUT_DIR.tar.gz. Fails when the folder (or the tarball) is over --max-mib MiB.
# Environment: TP_VENV (the venv whose torch the build used), TP_SD3_REFERENCE_DIR, TP_GPU_WHEELS (the
# wheel cache, filled by pip download when empty: the only step that needs the network).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,20p' "$0"; exit 2; }
build=$(cd "$1" && pwd)
out=$(realpath -m "$2")
shift 2
tar=0 max_mib=60
while [ $# -gt 0 ]; do
  case $1 in
    --tar) tar=1 ;;
    --max-mib) max_mib=$2; shift ;;
    *) echo "make_bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${TP_VENV:-$HOME/.cache/twistedpic/venv}
py=$venv/bin/python
ref=${TP_SD3_REFERENCE_DIR:-$(sed -n 's/^TP_SD3_REFERENCE_DIR:PATH=//p' "$build/CMakeCache.txt" 2>/dev/null)}
ref=${ref:-$HOME/.cache/twistedpic/sd3_reference}
wheels=${TP_GPU_WHEELS:-$HOME/.cache/twistedpic/gpu-wheels}
case $out in "$build"|"$repo"|/) echo "make_bundle.sh: refusing to empty $out" >&2; exit 2 ;; esac

for f in twistedpic libtwistedpic.so tests/gpu_tests tests/gpu_torch_tests tests/gpu_bench; do
  [ -e "$build/$f" ] || { echo "make_bundle.sh: $build/$f is missing: build the targets twistedpic_cli twistedpic_c gpu_tests gpu_torch_tests gpu_bench" >&2; exit 1; }
done
for f in plain.reference.safetensors sd35.reference.safetensors plain/model_index.json sd35/model_index.json; do
  [ -e "$ref/$f" ] || { echo "make_bundle.sh: $ref/$f is missing: run $py scripts/sd3_reference.py $ref" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out"/{bin,lib,data/models,data/sd3_reference,wheels,python}

# Binaries: stripped, and run paths that name nothing of this machine.
cp "$build/twistedpic" "$build/tests/gpu_tests" "$build/tests/gpu_torch_tests" "$build/tests/gpu_bench" "$out/bin/"
soname=$(readelf -d "$build/libtwistedpic.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
cp -L "$build/libtwistedpic.so" "$out/lib/$soname"
ln -s "$soname" "$out/lib/libtwistedpic.so"
strip --strip-unneeded "$out"/bin/* "$out/lib/$soname"
python3 "$here/set_runpath.py" '$ORIGIN/../lib' "$out"/bin/*
python3 "$here/set_runpath.py" '$ORIGIN' "$out/lib/$soname"

# The libraries the GPU machine lacks: whatever ldd resolves outside torch's folders (torch/lib and the NVIDIA
# wheels beside it, which hold the CUDA runtime torch itself uses) and the base system, to a closure.
torch_dirs=$("$py" -c 'import glob, os, torch; s = os.path.dirname(os.path.dirname(torch.__file__)); print(" ".join([os.path.join(os.path.dirname(torch.__file__), "lib")] + sorted(glob.glob(os.path.join(s, "nvidia", "*", "lib")))))')
torch_version=$("$py" -c 'import torch; print(torch.__version__)')
base_re='^(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64|libpthread|libdl|librt|libutil|linux-vdso)\.so'
in_torch() { for d in $torch_dirs; do [ -e "$d/$1" ] && return 0; done; return 1; }
changed=1
while [ $changed = 1 ]; do
  changed=0
  for f in "$out"/bin/* "$out"/lib/*; do
    [ -L "$f" ] && continue
    while read -r name _ path _; do
      [[ $name =~ $base_re ]] && continue
      [ -e "$out/lib/$name" ] && continue
      in_torch "$name" && continue
      [ "${path:0:1}" = / ] || { echo "make_bundle.sh: $(basename "$f") needs $name, not found here" >&2; exit 1; }
      cp -L "$path" "$out/lib/$name"
      chmod u+w "$out/lib/$name"
      echo "make_bundle.sh: lib/$name (from $path, for $(basename "$f"))"
      changed=1
    done < <(LD_LIBRARY_PATH="$out/lib" ldd "$f" | grep '=>')
  done
done

# Data: the default model and the parity references.
cp -r "$repo/models/tiny-sd3" "$out/data/models/"
cp -r "$ref/plain" "$ref/sd35" "$ref"/plain.reference.* "$ref"/sd35.reference.* "$out/data/sd3_reference/"

# The diffusers wheel the comparison needs (the machine has numpy, transformers, safetensors, Pillow, ...).
diffusers_version=$("$py" -c 'import diffusers; print(diffusers.__version__)')
if ! ls "$wheels"/diffusers-"$diffusers_version"-*.whl >/dev/null 2>&1; then
  mkdir -p "$wheels"
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 -d "$wheels" "diffusers==$diffusers_version"
fi
cp "$wheels"/diffusers-"$diffusers_version"-*.whl "$out/wheels/"

cp "$here/run.sh" "$out/run.sh"
cp "$here/measure.py" "$out/python/measure.py"
chmod +x "$out/run.sh" "$out/python/measure.py"
{
  echo "commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo +dirty)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "torch=$torch_version"
  echo "diffusers=$diffusers_version"
  echo "nvcc=$( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version) | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "glibc=$(ldd --version | head -1 | awk '{print $NF}')"
} >"$out/BUILD_INFO"
(cd "$out" && find . -type f ! -name MANIFEST.sha256 -print0 | sort -z | xargs -0 sha256sum >MANIFEST.sha256)

size=$(du -sb "$out" | cut -f1)
echo "make_bundle.sh: $out: $((size / 1024)) KiB ($(find "$out" -type f | wc -l) files)"
[ "$size" -le $((max_mib * 1024 * 1024)) ] || { echo "make_bundle.sh: the bundle is over $max_mib MiB" >&2; exit 1; }
if [ $tar = 1 ]; then
  tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
  size=$(stat -c %s "$out.tar.gz")
  echo "make_bundle.sh: $out.tar.gz: $((size / 1024)) KiB"
  [ "$size" -le $((max_mib * 1024 * 1024)) ] || { echo "make_bundle.sh: the tarball is over $max_mib MiB" >&2; exit 1; }
fi
