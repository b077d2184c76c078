#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for SECONDS.
#
#   fuzz/run.sh [SECONDS] [FUZZER...]     SECONDS per fuzzer, default 60; all fuzzers by default
#   fuzz/run.sh 5                         the short smoke pass `make test` runs (make test-fuzz-smoke)
#
# "All fuzzers" are the executables fuzz/CMakeLists.txt defines (every
# tp_add_fuzzer(<name>_fuzz ...)), read from the configured build, so a new
# target is picked up without editing this script. A FUZZER is that name
# without "_fuzz" (config, capi, ...).
#
# Environment: BUILD_FUZZ (build folder, default build-fuzz), BUILD (the main build, default build: its
# libtwistedpic.so, when there is one, gives the generation fuzzer), JOBS (build jobs,
# default nproc), FUZZ_ARGS (extra libFuzzer flags).
#
# Each fuzzer starts from its committed seeds (fuzz/corpus/<name>, read-only
# here) and a scratch corpus ($BUILD_FUZZ/corpus/<name>, kept between runs) that
# receives the new inputs; a crash, leak, UB report, timeout or OOM leaves its
# input in $BUILD_FUZZ/artifacts/<name>/ and makes the script fail. The last
# lines give each fuzzer's execution count ("#N DONE ..." and "Done N runs").
# To grow the committed corpus from a long run:
#   ./$BUILD_FUZZ/fuzz/<name>_fuzz -merge=1 fuzz/corpus/<name> $BUILD_FUZZ/corpus/<name>
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_FUZZER=${1:-60}
shift || true
BUILD_FUZZ=${BUILD_FUZZ:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
FUZZERS=("$@")

if ! [[ "$SECONDS_PER_FUZZER" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_FUZZER" -lt 1 ]; then
  echo "usage: fuzz/run.sh [SECONDS] [FUZZER...]   (SECONDS a positive integer)" >&2
  exit 2
fi

# The generation fuzzer drives the main build's libtwistedpic.so ($BUILD, default build) when there is one.
library=$(realpath -q "${BUILD:-build}/libtwistedpic.so" || true)
if [ ! -f "$BUILD_FUZZ/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_FUZZ" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTP_WITH_TORCH=OFF -DTP_BUILD_TESTS=OFF -DTP_BUILD_EXAMPLES=OFF -DTP_BUILD_FUZZERS=ON \
    -DTP_FUZZ_TWISTEDPIC_LIBRARY="$library"
else
  # Regenerates build.ninja (a fuzz target added, the library appeared), so the list below is current.
  cmake -S . -B "$BUILD_FUZZ" -DTP_FUZZ_TWISTEDPIC_LIBRARY="$library" >/dev/null
fi
if [ ${#FUZZERS[@]} -eq 0 ]; then
  # Every fuzz executable the build defines: "fuzz/<name>_fuzz: CXX_EXECUTABLE_LINKER__...".
  mapfile -t FUZZERS < <(ninja -C "$BUILD_FUZZ" -t targets all |
                         sed -nE 's|^fuzz/([A-Za-z0-9_]+)_fuzz: CXX_EXECUTABLE_LINKER.*|\1|p' | sort -u)
  if [ ${#FUZZERS[@]} -eq 0 ]; then
    echo "fuzz/run.sh: no fuzz targets found in $BUILD_FUZZ" >&2
    exit 1
  fi
fi
echo "== fuzzers: ${FUZZERS[*]}"
targets=()
for f in "${FUZZERS[@]}"; do targets+=("${f}_fuzz"); done
cmake --build "$BUILD_FUZZ" -j "$JOBS" --target "${targets[@]}"

summary=()
failed=()
for name in "${FUZZERS[@]}"; do
  exe="$BUILD_FUZZ/fuzz/${name}_fuzz"
  seeds="fuzz/corpus/$name"
  scratch="$BUILD_FUZZ/corpus/$name"
  artifacts="$BUILD_FUZZ/artifacts/$name"
  log="$BUILD_FUZZ/fuzz-$name.log"
  mkdir -p "$scratch" "$artifacts"
  args=(-max_total_time="$SECONDS_PER_FUZZER" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="$artifacts/")
  [ -f "fuzz/$name.dict" ] && args+=(-dict="fuzz/$name.dict")
  # LibTorch's lazily made caches look like leaks to the per-input check; ctest capi.generate_fuzz checks leaks.
  [ "$name" = capi_generate ] && args+=(-detect_leaks=0)
  # shellcheck disable=SC2206
  [ -n "${FUZZ_ARGS:-}" ] && args+=($FUZZ_ARGS)
  dirs=("$scratch")
  [ -d "$seeds" ] && dirs+=("$seeds")
  echo "== $name: ${SECONDS_PER_FUZZER}s, seeds $seeds, scratch corpus $scratch"
  rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-protect_shadow_gap=0}" "$exe" "${args[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  runs_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1 || true)
  if [ "$rc" -ne 0 ]; then
    echo "!! $name FAILED (exit $rc); the end of $log:"
    tail -40 "$log"
    ls -1 "$artifacts" | sed "s|^|   artifact: $artifacts/|"
    failed+=("$name")
    summary+=("$name: FAILED (exit $rc) ${runs_line:-}")
  else
    echo "$done_line"
    echo "$runs_line"
    summary+=("$name: ${done_line:-?} | ${runs_line:-?}")
  fi
done

echo "== fuzz summary (${SECONDS_PER_FUZZER}s per fuzzer)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
