// Shared by the GPU tests (label gpu, tests/gpu/): the skip rule, GPU mode,
// safetensors fixtures with known contents, and reading an arena back.
//
// Without a usable CUDA device every test that needs one skips
// (GTEST_SKIP). In GPU mode, TP_GPU_REQUIRED=1 in the environment (the GPU
// bundle's run.sh and `make gpu-check` on a GPU machine set it), a missing
// device is a failure instead, and the device in use must be cuda:0.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_runtime.h"
#include "device/device.h"
#include "support/weights_test_util.h"
#include "weights/tensor_weights.h"

namespace tp::gpu_test {

// True in GPU mode (TP_GPU_REQUIRED set to anything but "" or "0").
inline bool gpu_required() {
  const char* v = std::getenv("TP_GPU_REQUIRED");
  return v && *v && std::string(v) != "0";
}

// An environment variable, or `fallback` when unset or empty.
inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// Skips the test without a usable CUDA device; fails it in GPU mode.
#define TP_REQUIRE_GPU()                                                                            \
  do {                                                                                              \
    auto tp_n_ = ::tp::cuda::device_count();                                                        \
    if (!tp_n_) {                                                                                   \
      if (::tp::gpu_test::gpu_required()) FAIL() << "GPU mode, but no usable CUDA device: " << tp_n_.error().message; \
      GTEST_SKIP() << "no usable CUDA device: " << tp_n_.error().message;                           \
    }                                                                                               \
  } while (0)

// One tensor of a fixture file.
struct Spec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// Writes a safetensors file of `specs` in order, packed (so tensors start at
// odd offsets when their predecessors' sizes are odd), with random but finite
// floating values; returns each tensor's bytes as written.
inline std::map<std::string, std::string> write_safetensors(const std::filesystem::path& path,
                                                            const std::vector<Spec>& specs, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-4, 4);
  std::map<std::string, std::string> written;
  std::string header = "{", data;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    const uint64_t bytes = static_cast<uint64_t>(numel(s.shape)) * dtype_size(s.dtype);
    std::string t(bytes, '\0');
    if (s.dtype == DType::kF32) {
      for (uint64_t k = 0; k < bytes / 4; ++k) {
        float f = uniform(rng);
        std::memcpy(&t[k * 4], &f, 4);
      }
    } else if (s.dtype == DType::kF16) {
      for (uint64_t k = 0; k < bytes / 2; ++k) {  // finite halves (subnormals included): exponent below 0x1f
        uint16_t h = static_cast<uint16_t>(rng() & 0xfbff);
        std::memcpy(&t[k * 2], &h, 2);
      }
    } else if (s.dtype == DType::kBF16) {
      for (uint64_t k = 0; k < bytes / 2; ++k) {  // the top half of a float in [-4, 4)
        float f = uniform(rng);
        uint32_t u;
        std::memcpy(&u, &f, 4);
        uint16_t h = static_cast<uint16_t>(u >> 16);
        std::memcpy(&t[k * 2], &h, 2);
      }
    } else {
      for (auto& c : t) c = static_cast<char>(rng());
    }
    std::string shape;
    for (size_t d = 0; d < s.shape.size(); ++d) shape += (d ? "," : "") + std::to_string(s.shape[d]);
    header += (i ? "," : "") + std::string("\"") + s.name + "\":{\"dtype\":\"" +
              std::string(dtype_safetensors_name(s.dtype)) + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + bytes) + "]}";
    data += t;
    written[s.name] = std::move(t);
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  testing_util::write_file(path, testing_util::le64(header.size()) + header + data);
  return written;
}

// The repository's mixed fixture (tests/unit/weights/tensor_weights_test.cpp,
// kMixed): every dtype, and "g.scalar" (F32) at data offset 6039, which a
// conversion must stage aligned.
inline const std::vector<Spec>& mixed_specs() {
  static const std::vector<Spec> kMixed = {
      {"a.f32", DType::kF32, {3, 5, 7}}, {"b.f16", DType::kF16, {129}}, {"c.bf16", DType::kBF16, {64, 33}},
      {"d.fp8", DType::kF8E4M3, {1000}}, {"e.i64", DType::kI64, {17}},  {"f.u8", DType::kU8, {1}},
      {"g.scalar", DType::kF32, {}},     {"h.empty", DType::kF16, {0, 4}}};
  return kMixed;
}

// The whole device arena, copied back with a plain synchronous cudaMemcpy.
inline std::string read_arena(const TensorWeights& w) {
  std::string out(w.device_bytes(), '\0');
  if (!out.empty()) {
    cudaError_t e = cudaMemcpy(out.data(), w.device_data(), out.size(), cudaMemcpyDeviceToHost);
    EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  }
  return out;
}

// What tensor `t` must hold in the arena: its file bytes, converted on the
// host (round to nearest even, as the kernels do) when its dtype changed.
inline std::string expected_bytes(const WeightTensor& t, const std::string& file_bytes) {
  if (t.dtype == t.file_dtype) return file_bytes;
  std::string out(t.bytes, '\0');
  Status st = convert_on_host(file_bytes.data(), t.file_dtype, out.data(), t.dtype,
                              file_bytes.size() / dtype_size(t.file_dtype));
  EXPECT_TRUE(st) << st.error().message;
  return out;
}

// Counts the tensors of `w` whose arena bytes differ from `written` (converted
// as needed), naming the first few; `arena` is read_arena(w).
inline int mismatched_tensors(const TensorWeights& w, const std::string& arena,
                              const std::map<std::string, std::string>& written, const std::string& what) {
  int bad = 0;
  for (const WeightTensor& t : w.tensors()) {
    auto it = written.find(t.name);
    if (it == written.end()) {
      ADD_FAILURE() << what << ": unexpected tensor " << t.name;
      ++bad;
      continue;
    }
    const std::string want = expected_bytes(t, it->second);
    if (t.offset + t.bytes > arena.size() || arena.compare(t.offset, t.bytes, want) != 0) {
      if (++bad <= 3) ADD_FAILURE() << what << ": tensor " << t.name << " differs from the host's bytes";
    }
  }
  return bad;
}

// Device free bytes (cudaMemGetInfo on the current device).
inline uint64_t free_device_bytes() {
  size_t free = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free, &total), cudaSuccess);
  return free;
}

}  // namespace tp::gpu_test
