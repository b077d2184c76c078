# twistedpic: the two commands a newcomer runs are `make demo` and `make test`.
# Each installs what it needs (scripts/setup.sh) and builds first.
#
#   make demo       build, then generate pictures with the default model (out/demo)
#   make test       build, run every test (ctest), the TSAN and ASAN builds of the core,
#                   then a short libFuzzer smoke pass (with clang)
#   make bench      CPU benchmarks (Google Benchmark), ending in RESULT lines
#   make gpu-bundle the GPU bundle (a tarball of at most 60 MiB) for a bare GPU machine
#   make gpu-check  runs the GPU bundle (dry mode on a machine without a GPU)
#   make fuzz       libFuzzer targets
#
# Your own LibTorch: make test Torch_DIR=/path/to/libtorch/share/cmake/Torch

SHELL := /bin/bash
BUILD ?= build
BUILD_TSAN ?= build-tsan
BUILD_TYPE ?= RelWithDebInfo
TP_VENV ?= $(HOME)/.cache/twistedpic/venv
export TP_VENV
JOBS ?= $(shell nproc)
BENCH_GIB ?= 2
CTEST_ARGS ?=

ifdef Torch_DIR
TORCH_ARGS := -DTorch_DIR=$(Torch_DIR)
SETUP_ENV := TP_SKIP_VENV=1
else
TORCH_ARGS = -DCMAKE_PREFIX_PATH="$$($(TP_VENV)/bin/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
SETUP_ENV :=
endif

CMAKE_COMMON := -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

.PHONY: setup configure build test test-tsan test-asan test-fuzz-smoke demo bench gpu-bundle gpu-check fuzz package-conan clean

setup:
	@$(SETUP_ENV) bash scripts/setup.sh

$(BUILD)/build.ninja:
	@$(MAKE) --no-print-directory setup
	cmake -S . -B $(BUILD) $(CMAKE_COMMON) $(TORCH_ARGS) $(CMAKE_ARGS)

configure: setup
	cmake -S . -B $(BUILD) $(CMAKE_COMMON) $(TORCH_ARGS) $(CMAKE_ARGS)

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The torch-free core and its tests under ThreadSanitizer.
test-tsan: setup
	@[ -f $(BUILD_TSAN)/build.ninja ] || cmake -S . -B $(BUILD_TSAN) $(CMAKE_COMMON) -DTP_WITH_TORCH=OFF -DTP_SANITIZE=thread
	cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Unit, reference (Python-backed) and C ABI tests under AddressSanitizer + UndefinedBehaviorSanitizer.
BUILD_ASAN ?= build-asan
ASAN_ENV := ASAN_OPTIONS="detect_leaks=1 protect_shadow_gap=0 abort_on_error=1" \
  LSAN_OPTIONS="suppressions=$(CURDIR)/tests/lsan.supp print_suppressions=0" UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
test-asan: setup
	@[ -f $(BUILD_ASAN)/build.ninja ] || cmake -S . -B $(BUILD_ASAN) $(CMAKE_COMMON) $(TORCH_ARGS) \
	  -DTP_SANITIZE=address,undefined -DTP_BUILD_EXAMPLES=OFF
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS) -L "unit|reference|capi" $(CTEST_ARGS)

# Every libFuzzer target (fuzz/run.sh finds them) for FUZZ_SMOKE_TIME seconds over
# the committed seeds, built in its own folder ($(BUILD_FUZZ)). Skipped, saying
# so, where clang cannot link a libFuzzer binary.
BUILD_FUZZ ?= build-fuzz
FUZZ_SMOKE_TIME ?= 5
test-fuzz-smoke: setup
	@if command -v clang++ >/dev/null 2>&1 && \
	    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' | \
	    clang++ -x c++ -fsanitize=fuzzer - -o /dev/null >/dev/null 2>&1; then \
	  BUILD=$(BUILD) BUILD_FUZZ=$(BUILD_FUZZ) JOBS=$(JOBS) bash fuzz/run.sh $(FUZZ_SMOKE_TIME); \
	else \
	  echo "test-fuzz-smoke: skipped: clang++ with libFuzzer (libclang-rt-14-dev) is not available"; \
	fi

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-fuzz-smoke

bench: setup $(BUILD)/build.ninja
	cmake -S . -B $(BUILD) -DTP_BUILD_BENCHMARKS=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target registry_bench weights_bench sd3_bench overhead_cpp
	python3 scripts/bench.py $(BUILD)
	$(TP_VENV)/bin/python scripts/bench_weights.py $(BUILD) $(BENCH_GIB)
	$(TP_VENV)/bin/python scripts/bench_pipeline.py $(BUILD)
	$(TP_VENV)/bin/python scripts/family_bench.py flux $(BUILD)
	$(TP_VENV)/bin/python scripts/family_bench.py sdxl $(BUILD)
	python3 scripts/bench_overhead.py $(BUILD) --python $(TP_VENV)/bin/python
	cmake --build $(BUILD) -j $(JOBS) --target twistedpic_cli
	python3 scripts/bench_serve.py $(BUILD)

# The GPU bundle (scripts/gpu_bundle/): stripped binaries, the libraries a bare GPU machine lacks, the tiny
# models and parity references, the diffusers wheel and run.sh, as $(GPU_BUNDLE)/ and $(GPU_BUNDLE).tar.gz
# (at most 60 MiB). Carry it to the GPU machine and run run.sh there (or make gpu-check).
GPU_BUNDLE ?= $(BUILD)/gpu-bundle/twistedpic-gpu
gpu-bundle: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target twistedpic_cli twistedpic_c gpu_tests gpu_torch_tests gpu_bench
	cd $(BUILD) && ctest -R '^pipeline\.sd3_reference$$' --output-on-failure
	bash scripts/gpu_bundle/make_bundle.sh $(BUILD) $(GPU_BUNDLE) --tar

# Runs the bundle: for real where an NVIDIA driver answers, else its dry run. Builds and installs nothing
# (no setup.sh: a GPU machine has no network). Reports in OUT (default out/gpu-check).
# The python with torch: the venv's where there is one (the build machine), else python3 (a GPU machine).
OUT ?= out/gpu-check
GPU_PYTHON ?= $(if $(wildcard $(TP_VENV)/bin/python),$(TP_VENV)/bin/python,python3)
gpu-check:
	PYTHON=$(GPU_PYTHON) bash scripts/gpu_check.sh $(GPU_BUNDLE) $(OUT)

# The default model (models/tiny-sd3) through the CLI: lazy loads, the text
# encoders unloaded to pinned host memory after encoding, the transformer and VAE
# sent home by a 2 s idle timeout; --watch prints every transition and the bytes
# returned. Then a contact sheet and a memory timeline from the --timeline JSON.
DEMO_OUT ?= out/demo
DEMO_PROMPTS := "a red circle on a white background" "a blue square on a yellow background" \
  "a green triangle on a black background" "an orange circle on a purple background"
demo: build
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	./$(BUILD)/twistedpic --watch --preset balanced --idle-timeout 2 --linger 3 \
	  --timeline $(DEMO_OUT)/timeline.json generate $(DEMO_PROMPTS) --count 2 --seed 1 -o $(DEMO_OUT)
	$(TP_VENV)/bin/python scripts/demo_pictures.py $(DEMO_OUT)/timeline.json $(DEMO_OUT)

# libFuzzer on the torch-free core and the C ABI (clang, ASan + UBSan), FUZZ_TIME seconds per
# target over the committed seeds in fuzz/corpus; prints each target's execution count.
FUZZ_TIME ?= 60
fuzz: setup
	BUILD=$(BUILD) BUILD_FUZZ=$(BUILD_FUZZ) JOBS=$(JOBS) bash fuzz/run.sh $(FUZZ_TIME)

# Conan 2: conan create against this machine's packages (a full rebuild, ~2.5 min).
package-conan: setup
	bash packaging/conan/create.sh

clean:
	rm -rf $(BUILD) $(BUILD_TSAN) $(BUILD_ASAN) $(BUILD_FUZZ)
