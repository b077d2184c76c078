#!/usr/bin/env bash
# twistedpic's GPU bundle (made by `make gpu-bundle`, scripts/gpu_bundle/make_bundle.sh): proves the CUDA
# path on a bare GPU machine in under 8 minutes, with no network and none of the build machine's libraries.
#
#   run.sh [--dry-run] [--out DIR] [--python PY] [--quick] [--sd3-layers N]
#
# 1. Environment: the bundle's files; the machine's torch (asked of its python3), which sets the loader path
#    (the bundle's lib/, torch's lib/ and the NVIDIA wheels beside it, nothing else); every library of every
#    binary found (ldd) in the bundle, in torch's folders or on the short base-system list; each binary starts;
#    the diffusers wheel installs. Then, unless --dry-run: the driver (nvidia-smi), torch.cuda.is_available(),
#    the device cuda:0. Any failure aborts with a clear message (exit 2).
# 2. The gpu-labelled tests in GPU mode (TP_GPU_REQUIRED=1: a skip is a failure).
# 3. The measurements (gpu_bench, measure.py), RESULT lines.
# 4. OUT/report.md, to append to docs/gpu-results.md; OUT/results.txt holds every RESULT line.
# --dry-run stops before the first CUDA call, and exits 0 when everything up to there holds.
set -uo pipefail

B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dry=0 quick=0 out="" py=${PYTHON:-python3} layers=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --python) py=$2; shift ;;
    --sd3-layers) layers=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || out=$PWD/gpu-run-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out" && out=$(cd "$out" && pwd)
[ -n "$layers" ] || { [ $quick = 1 ] && layers=4 || layers=38; }
start=$SECONDS
say() { printf 'run.sh: %s\n' "$*"; }
abort() { printf 'run.sh: ABORT: %s\n' "$*" >&2; exit 2; }

# ---- 1. environment ---------------------------------------------------------
say "bundle $B ($(cat "$B/BUILD_INFO" 2>/dev/null | tr '\n' ' '))"
for f in bin/twistedpic bin/gpu_tests bin/gpu_torch_tests bin/gpu_bench lib/libtwistedpic.so.0 \
         data/models/tiny-sd3/model_index.json data/sd3_reference/plain.reference.safetensors \
         data/sd3_reference/sd35.reference.safetensors python/measure.py; do
  [ -e "$B/$f" ] || abort "the bundle lacks $f: remake it with make gpu-bundle"
done
ls "$B"/wheels/diffusers-*.whl >/dev/null 2>&1 || abort "the bundle lacks its diffusers wheel (wheels/)"
if [ -f "$B/MANIFEST.sha256" ]; then
  (cd "$B" && sha256sum --quiet -c MANIFEST.sha256) || abort "bundle files differ from MANIFEST.sha256"
fi

command -v "$py" >/dev/null 2>&1 || abort "no $py: the machine's python with torch is needed (--python PY)"
torch_info=$("$py" - <<'PY' 2>&1
import glob, os, torch
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
site = os.path.dirname(os.path.dirname(torch.__file__))
nv = sorted(d for d in glob.glob(os.path.join(site, "nvidia", "*", "lib")) if os.path.isdir(d))
print(torch.__version__)
print(torch.version.cuda or "")
print(":".join([lib] + nv))
PY
) || abort "$py cannot import torch: $torch_info"
torch_version=$(sed -n 1p <<<"$torch_info")
torch_cuda=$(sed -n 2p <<<"$torch_info")
torch_dirs=$(sed -n 3p <<<"$torch_info")
built_torch=$(sed -n 's/^torch=//p' "$B/BUILD_INFO" 2>/dev/null)
say "torch $torch_version (CUDA ${torch_cuda:-none}) at ${torch_dirs%%:*}"
[ -n "$torch_cuda" ] || abort "torch $torch_version has no CUDA: the bundle needs torch built for CUDA 13"
[ "${torch_cuda%%.*}" = 13 ] || abort "torch is built for CUDA $torch_cuda; the bundle was built with CUDA 13"
if [ -n "$built_torch" ] && [ "${torch_version%%+*}" != "${built_torch%%+*}" ]; then
  abort "torch $torch_version here, but the bundle was built against torch $built_torch (LibTorch's C++ ABI)"
fi

# The loader path: the bundle, then torch's folders. Nothing of the caller's.
export LD_LIBRARY_PATH="$B/lib:$torch_dirs"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

# Every library of every binary: found, and in the bundle, torch's folders or the base system.
base_re='^(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64|libpthread|libdl|librt|libutil|linux-vdso)\.so'
bad=0
for f in "$B"/bin/* "$B"/lib/*.so*; do
  [ -L "$f" ] && continue
  deps=$(ldd "$f" 2>&1) || { say "ldd $f failed: $deps"; bad=1; continue; }
  if grep -q "not found" <<<"$deps"; then
    say "$(basename "$f"): missing: $(grep "not found" <<<"$deps" | tr -s ' \t' ' ' | tr '\n' ';')"
    bad=1
  fi
  while read -r name _ path _; do
    [ -n "$path" ] && [ "${path:0:1}" = / ] || continue
    real=$(realpath "$path")
    case $real in "$B"/*) continue ;; esac
    ok=0
    IFS=: read -ra dirs <<<"$torch_dirs"
    for d in "${dirs[@]}"; do case $real in "$(realpath "$d")"/*) ok=1 ;; esac; done
    [[ $name =~ $base_re ]] && ok=1
    [ $ok = 1 ] || { say "$(basename "$f") needs $name from $real: not in the bundle, torch's folders or the base system"; bad=1; }
  done < <(grep '=>' <<<"$deps")
done
[ $bad = 0 ] || abort "libraries are missing or come from outside the bundle (above)"
say "ldd: every library resolves in the bundle, torch's folders or the base system"

# Each binary starts (the loader, static constructors, libtorch): no CUDA call is made here.
for t in gpu_tests gpu_torch_tests; do
  n=$("$B/bin/$t" --gtest_list_tests 2>&1 | grep -c '^  ') || abort "bin/$t does not start: $("$B/bin/$t" --gtest_list_tests 2>&1 | tail -3)"
  [ "$n" -gt 0 ] || abort "bin/$t lists no tests"
  say "bin/$t starts: $n tests"
done
"$B/bin/gpu_bench" --help >/dev/null 2>&1 || abort "bin/gpu_bench does not start: $("$B/bin/gpu_bench" --help 2>&1 | tail -3)"
"$B/bin/twistedpic" --help >/dev/null 2>&1 || abort "bin/twistedpic does not start: $("$B/bin/twistedpic" --help 2>&1 | tail -3)"
say "bin/gpu_bench and bin/twistedpic start"

# The diffusers wheel, over the machine's own numpy, transformers, safetensors, Pillow.
site=$(mktemp -d "${TMPDIR:-/tmp}/tp-gpu-site.XXXXXX")
trap 'rm -rf "$site"' EXIT
"$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$B"/wheels/*.whl >"$out/pip.log" 2>&1 ||
  abort "installing the wheelhouse failed: $(tail -3 "$out/pip.log")"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
py_deps=$("$py" -c 'import diffusers, transformers, safetensors, numpy, PIL; print(diffusers.__version__, transformers.__version__, safetensors.__version__)' 2>&1) ||
  abort "diffusers cannot be imported (a dependency the machine lacks?): $(tail -2 <<<"$py_deps")"
say "python: diffusers transformers safetensors = $py_deps"

smi=""
if command -v nvidia-smi >/dev/null 2>&1; then
  smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1) || smi=""
fi
if [ $dry = 1 ]; then
  say "driver: ${smi:-no nvidia-smi / no driver} (not required in a dry run)"
  say "dry run: OK, everything up to the first CUDA call holds ($((SECONDS - start)) s)"
  exit 0
fi
[ -n "$smi" ] || abort "nvidia-smi is missing or fails: no NVIDIA driver"
say "device: $smi"
cuda_line=$("$py" -c '
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
assert torch.cuda.current_device() == 0, "current device %d, not cuda:0" % torch.cuda.current_device()
p = torch.cuda.get_device_properties(0)
print("cuda:0 = %s, sm_%d%d, %.1f GiB, torch CUDA %s" % (p.name, p.major, p.minor, p.total_memory / 2**30, torch.version.cuda))
' 2>&1) || abort "CUDA is not usable from torch: $(tail -1 <<<"$cuda_line")"
say "$cuda_line"

# ---- 2. tests (GPU mode) -----------------------------------------------------
export TP_GPU_REQUIRED=1 CUDA_DEVICE_ORDER=PCI_BUS_ID
export TP_TINY_SD3_DIR="$B/data/models/tiny-sd3" TP_SD3_REFERENCE_DIR="$B/data/sd3_reference"
export TP_GPU_BIG_MIB=$([ $quick = 1 ] && echo 1024 || echo 2048)
tests_ok=1
declare -A summary
for t in gpu_tests gpu_torch_tests; do
  say "tests: $t"
  timeout 240 "$B/bin/$t" --gtest_output="xml:$out/$t.xml" >"$out/$t.log" 2>&1
  rc=$?
  grep -E '^\[ +(OK|FAILED|SKIPPED) +\]|^RESULT ' "$out/$t.log" | sed 's/^/  /'
  passed=$(grep -cE '^\[ +OK +\]' "$out/$t.log")
  failed=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$out/$t.log" | sed -E 's/ \([0-9]+ ms\)$//; s/, where .*//' | sort -u | wc -l)
  skipped=$(grep -E '^\[  SKIPPED \] [A-Za-z]' "$out/$t.log" | sed -E 's/ \([0-9]+ ms\)$//' | sort -u | wc -l)
  summary[$t]="rc $rc, $passed passed, $failed failed, $skipped skipped"
  say "$t: ${summary[$t]}"
  if [ $rc != 0 ] || [ "$skipped" != 0 ] || [ "$passed" = 0 ]; then tests_ok=0; fi
done
# The command line on the GPU: the default model, lazy loads, an idle timeout, the bytes returned.
say "tests: the CLI"
cli_dir=$(mktemp -d "${TMPDIR:-/tmp}/tp-gpu-cli.XXXXXX")
if timeout 120 "$B/bin/twistedpic" --model-dir "$TP_TINY_SD3_DIR" --watch --preset balanced --idle-timeout 1 --linger 2 \
     generate "a red circle on a white background" "a blue square on a yellow background" --count 2 --seed 1 \
     -o "$cli_dir" >"$out/cli.log" 2>&1 && [ "$(ls "$cli_dir"/*.png 2>/dev/null | wc -l)" = 4 ] &&
   grep -q 'cuda:0 used' "$out/cli.log" && ! grep -q '\] .*cpu used' "$out/cli.log"; then  # on cuda:0, never the CPU
  summary[cli]="4 images"
else
  summary[cli]="FAILED (cli.log)"
  tests_ok=0
fi
tail -3 "$out/cli.log" | sed 's/^/  /'
rm -rf "$cli_dir"
grep -h '^RESULT ' "$out"/gpu_tests.log "$out"/gpu_torch_tests.log >"$out/results.txt"

# ---- 3. measurements ---------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/var/tmp}/tp-gpu-work.XXXXXX")
trap 'rm -rf "$site" "$work"' EXIT
gib=$([ $quick = 1 ] && echo 2 || echo 4)
pins=$([ $quick = 1 ] && echo 1,2 || echo 1,2,4,8)
say "measure: transfers ($gib GiB model, pinning $pins GiB)"
timeout 180 "$B/bin/gpu_bench" transfer --gib "$gib" --pin-gib "$pins" --dir "$work" --model "$TP_TINY_SD3_DIR" \
  --json "$out/transfer.json" --keep 2>&1 | tee "$out/transfer.log" | grep '^RESULT' | tee -a "$out/results.txt"
[ -f "$work/gpu_bench_model.safetensors" ] && [ -f "$out/transfer.json" ] &&
  timeout 120 "$py" "$B/python/measure.py" safetensors "$work/gpu_bench_model.safetensors" "$out/transfer.json" 2>&1 |
  tee "$out/safetensors.log" | grep '^RESULT' | tee -a "$out/results.txt"
rm -f "$work/gpu_bench_model.safetensors"
say "measure: SD3 step at 1024x1024 against diffusers ($layers of 38 SD3.5-Large blocks)"
timeout 300 "$py" "$B/python/measure.py" sd3 "$B/bin/gpu_bench" "$work" "$TP_TINY_SD3_DIR" --layers "$layers" 2>&1 |
  tee "$out/sd3.log" | grep '^RESULT' | tee -a "$out/results.txt"
[ ${PIPESTATUS[0]} = 0 ] || say "the SD3 measurement failed or ran out of time (sd3.log)"
# FLUX.1 [dev] at full width, fewer blocks than its 19 + 38 (a step's time is linear in them; the ratio is not):
# the whole model (24 GB in bf16) would not be saved, loaded and timed within the run's 8 minutes.
flux_blocks=$([ $quick = 1 ] && echo "1 2" || echo "5 10")
say "measure: Flux step at 1024x1024 against diffusers (${flux_blocks% *} + ${flux_blocks#* } of FLUX.1's 19 + 38 blocks)"
timeout 300 "$py" "$B/python/measure.py" flux "$B/bin/gpu_bench" "$work" "$TP_TINY_SD3_DIR/tokenizer" \
  "$TP_SD3_REFERENCE_DIR/sd35/tokenizer_3" --double "${flux_blocks% *}" --single "${flux_blocks#* }" 2>&1 |
  tee "$out/flux.log" | grep '^RESULT' | tee -a "$out/results.txt"
[ ${PIPESTATUS[0]} = 0 ] || say "the Flux measurement failed or ran out of time (flux.log)"
# SDXL's whole UNet (2.6 B parameters, 5 GB in bf16) fits the run's time, unlike FLUX.1's transformer.
say "measure: SDXL step at 1024x1024 against diffusers (stable-diffusion-xl-base-1.0's UNet)"
timeout 300 "$py" "$B/python/measure.py" sdxl "$B/bin/gpu_bench" "$work" "$TP_TINY_SD3_DIR/tokenizer" 2>&1 |
  tee "$out/sdxl.log" | grep '^RESULT' | tee -a "$out/results.txt"
[ ${PIPESTATUS[0]} = 0 ] || say "the SDXL measurement failed or ran out of time (sdxl.log)"

# ---- 4. report -----------------------------------------------------------------
elapsed=$((SECONDS - start))
{
  echo "## GPU run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- commit: $(sed -n 's/^commit=//p' "$B/BUILD_INFO")"
  echo "- device: $smi"
  echo "- $cuda_line; torch $torch_version"
  echo "- tests (GPU mode, a skip fails): gpu_tests ${summary[gpu_tests]}; gpu_torch_tests ${summary[gpu_torch_tests]}; CLI ${summary[cli]}"
  echo "- wall time: ${elapsed} s$([ $quick = 1 ] && echo ' (--quick)')"
  echo
  echo "| result | value | note |"
  echo "| --- | --- | --- |"
  sed -E 's/^RESULT ([^=]+)=([^#]*)(# (.*))?$/| \1 | \2 | \4 |/' "$out/results.txt"
  echo
  echo "Failures, if any:"
  echo
  grep -h -B2 -A6 'Failure$' "$out"/gpu_tests.log "$out"/gpu_torch_tests.log | head -80 | sed 's/^/    /'
} >"$out/report.md"
say "report: $out/report.md (append it to docs/gpu-results.md)"
cat "$out/results.txt"
say "done in ${elapsed} s: tests $([ $tests_ok = 1 ] && echo passed || echo FAILED)"
[ $tests_ok = 1 ]
