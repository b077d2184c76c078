#!/usr/bin/env bash
# Package consumer tests (ctest label `package`). Installs BUILD_DIR into a
# fresh prefix, then builds and runs one tiny program per route:
#   cpp     a C++ project: find_package(twistedpic) from the prefix, twistedpic::twistedpic
#   c       a C project: cc $(pkg-config --cflags --libs twistedpic)
#   subdir  a project with add_subdirectory(<repo>), twistedpic::twistedpic_c
#
#   tests/package/run.sh BUILD_DIR WORK_DIR [cpp|c|subdir ...]   (default: all three)
#
# Dependencies come from BUILD_DIR's CMakeCache (Torch_DIR, CMAKE_PREFIX_PATH,
# the compilers), so consumers see the same LibTorch as the build. The subdir
# consumer keeps its build tree in WORK_DIR/subdir-build: after the first run
# it only rebuilds what changed.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 BUILD_DIR WORK_DIR [cpp|c|subdir ...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "$1" && pwd)
work=$2
shift 2
consumers=("$@")
((${#consumers[@]})) || consumers=(cpp c subdir)
jobs=${TP_PACKAGE_JOBS:-2}

cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -1; }
torch_dir=$(cache Torch_DIR)
prefix_path=$(cache CMAKE_PREFIX_PATH)
build_type=$(cache CMAKE_BUILD_TYPE)
common=(-G Ninja "-DCMAKE_BUILD_TYPE=${build_type:-RelWithDebInfo}"
        "-DCMAKE_C_COMPILER=$(cache CMAKE_C_COMPILER)" "-DCMAKE_CXX_COMPILER=$(cache CMAKE_CXX_COMPILER)"
        "-DTorch_DIR=$torch_dir")

mkdir -p "$work"
work=$(cd "$work" && pwd)
prefix=$work/prefix
step() { printf '\n== package: %s\n' "$*"; }

needs_prefix=0
for c in "${consumers[@]}"; do [[ $c == subdir ]] || needs_prefix=1; done
if ((needs_prefix)); then
  step "cmake --install $build --prefix $prefix"
  rm -rf "$prefix"
  cmake --install "$build" --prefix "$prefix" >/dev/null
  libdir=$(dirname "$(find "$prefix" -name twistedpic.pc -path '*/pkgconfig/*' | head -1)")
  libdir=${libdir%/pkgconfig}
  # The installed CLI runs, and generates with the installed default model.
  step "installed CLI: $prefix/bin/twistedpic"
  "$prefix/bin/twistedpic" --version
  [[ -f "$prefix/share/twistedpic/models/tiny-sd3/model_index.json" ]]
  "$prefix/bin/twistedpic" list | grep -q "^default/transformer "
  "$prefix/bin/twistedpic" -q --model-dir "$prefix/share/twistedpic/models/tiny-sd3" \
    generate "a red circle on a white background" -o "$work/installed.png"
  [[ -s "$work/installed.png" ]]
fi

for c in "${consumers[@]}"; do
  case $c in
    cpp)
      step "C++ consumer: find_package(twistedpic)"
      rm -rf "$work/cpp-build"
      cmake -S "$here/cpp" -B "$work/cpp-build" "${common[@]}" "-DCMAKE_PREFIX_PATH=$prefix;$prefix_path" >/dev/null
      cmake --build "$work/cpp-build" -j "$jobs"
      "$work/cpp-build/cpp_consumer"
      ;;
    c)
      step "C consumer: pkg-config twistedpic"
      export PKG_CONFIG_PATH=$libdir/pkgconfig
      pkg-config --exists --print-errors "twistedpic = $(sed -n 's/^#define TP_VERSION_STRING "\(.*\)"/\1/p' \
        "$prefix/include/twistedpic/version.h")"
      mkdir -p "$work/c-build"
      # shellcheck disable=SC2046
      "$(cache CMAKE_C_COMPILER)" -std=c99 -Wall -Wextra -pedantic -Werror "$here/c/main.c" \
        -o "$work/c-build/c_consumer" $(pkg-config --cflags --libs twistedpic)
      LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$work/c-build/c_consumer"
      ;;
    subdir)
      step "add_subdirectory consumer: twistedpic::twistedpic_c"
      args=("${common[@]}" "-DCMAKE_PREFIX_PATH=$prefix_path" "-DCMAKE_CUDA_COMPILER=$(cache CMAKE_CUDA_COMPILER)"
            "-DTP_SOURCE_DIR=$repo")
      # Configure once per set of arguments; after that Ninja re-runs CMake when needed.
      if [[ ! -f $work/subdir-build/build.ninja || "${args[*]}" != "$(cat "$work/subdir-args" 2>/dev/null)" ]]; then
        rm -rf "$work/subdir-build"
        cmake -S "$here/subdir" -B "$work/subdir-build" "${args[@]}" >/dev/null
        printf '%s' "${args[*]}" >"$work/subdir-args"
      fi
      cmake --build "$work/subdir-build" -j "$jobs" --target subdir_consumer
      "$work/subdir-build/subdir_consumer"
      ;;
    *) echo "unknown consumer: $c" >&2; exit 2 ;;
  esac
done
step "ok: ${consumers[*]}"
