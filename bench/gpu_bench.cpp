// GPU measurements for the GPU bundle (scripts/gpu_bundle/run.sh), each a
// ratio of two things measured in the same run, printed as RESULT lines and
// written as JSON. Without a usable CUDA device every measurement prints
// "skipped: no CUDA" and the program exits 0: no number is ever made up.
//
//   gpu_bench transfer [--gib N] [--dir DIR] [--pin-gib 1,2,4,8] [--model FOLDER] [--json FILE] [--keep]
//     (the model file is DIR/gpu_bench_model.safetensors, removed at the end unless --keep)
//     host_alloc_s_<n>gib   cudaHostAlloc of n GiB (slow on some virtual machines)
//     h2d_gib_s             the pinned H2D ceiling: cudaMemcpyAsync from one pinned buffer, 1 and 4 streams, best
//     reload_vs_h2d         a reload from the pinned host tier / that ceiling (target >= 0.90)
//     read_gib_s            reading the file from the page cache with 4 threads into pinned buffers
//     cold_vs_ceiling       a load from disk (page cache) / min(read, H2D) (target >= 0.70)
//     returned_ratio        device bytes back to the driver within 100 ms of an unload / model bytes (>= 0.99)
//     idle_footprint_mib    device memory used after everything is unloaded (weights, a pipeline run on
//                           FOLDER, torch's cache emptied) minus a bare CUDA context (target <= 64)
//   gpu_bench sd3 FOLDER [--size 1024] [--steps 4] [--repeats 2] [--dtype bf16] [--seq 77] [--guidance 5]
//   gpu_bench flux FOLDER ...   the same for a Flux folder (the family is detected from model_index.json)
//   gpu_bench sdxl FOLDER ...   the same for an SDXL folder (--seq 77: its CLIPs' length)
//     one JSON line: {"step_s", "generate_s", "load_s"}: the median denoising step (the device
//     synchronized at each step callback), for scripts/gpu_bundle/measure.py against diffusers.
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "cuda/cuda_runtime.h"
#include "device/device.h"
#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"
#include "weights/tensor_weights.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Flags: --name value.
std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 0; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

bool has_flag(int argc, char** argv, const std::string& name) {
  for (int i = 0; i < argc; ++i)
    if (argv[i] == name) return true;
  return false;
}

// The results, printed as RESULT lines as they come and kept for the JSON file.
struct Results {
  std::vector<std::pair<std::string, std::string>> items;
  void add(const std::string& key, double value, const char* fmt = "%.4f", const std::string& note = "") {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, value);
    items.emplace_back(key, buf);
    std::printf("RESULT %s=%s%s%s\n", key.c_str(), buf, note.empty() ? "" : "  # ", note.c_str());
    std::fflush(stdout);
  }
  // "skipped: <what>", then the details as a note.
  void skip(const std::string& key, const std::string& what, const std::string& detail = "") {
    items.emplace_back(key, "\"skipped: " + what + "\"");
    std::printf("RESULT %s=skipped: %s%s%s\n", key.c_str(), what.c_str(), detail.empty() ? "" : "  # ", detail.c_str());
  }
  void write_json(const std::string& path) const {
    if (path.empty()) return;
    std::ofstream out(path);
    out << "{";
    for (size_t i = 0; i < items.size(); ++i) out << (i ? ", " : "") << "\"" << items[i].first << "\": " << items[i].second;
    out << "}\n";
  }
};

const char* const kTransferKeys[] = {"h2d_gib_s", "reload_vs_h2d", "read_gib_s", "cold_vs_ceiling", "returned_ratio",
                                     "idle_footprint_mib", "host_alloc_s"};

#define CHECK_CUDA(call)                                                                               \
  do {                                                                                                 \
    cudaError_t e_ = (call);                                                                           \
    if (e_ != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "gpu_bench: %s: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

template <class T>
T check(tp::Expected<T> e, const char* what) {
  if (!e) {
    std::fprintf(stderr, "gpu_bench: %s: %s\n", what, e.error().to_string().c_str());
    std::exit(1);
  }
  return std::move(*e);
}
void check(const tp::Status& s, const char* what) {
  if (!s) {
    std::fprintf(stderr, "gpu_bench: %s: %s\n", what, s.error().to_string().c_str());
    std::exit(1);
  }
}

uint64_t used_device_bytes() {
  size_t free = 0, total = 0;
  CHECK_CUDA(cudaMemGetInfo(&free, &total));
  return total - free;
}
uint64_t free_device_bytes() {
  size_t free = 0, total = 0;
  CHECK_CUDA(cudaMemGetInfo(&free, &total));
  return free;
}

// A safetensors file of `bytes` in F16 tensors of 256 MiB (the last smaller).
void write_model(const std::filesystem::path& path, uint64_t bytes) {
  const uint64_t tensor = 256ull << 20;
  std::string header = "{";
  uint64_t off = 0;
  for (int i = 0; off < bytes; ++i) {
    const uint64_t n = std::min(tensor, bytes - off);
    header += (i ? "," : "") + std::string("\"t") + std::to_string(i) + "\":{\"dtype\":\"F16\",\"shape\":[" +
              std::to_string(n / 2) + "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + n) + "]}";
    off += n;
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  std::vector<uint64_t> block((64ull << 20) / 8);
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (uint64_t done = 0; done < bytes;) {
    for (auto& w : block) x ^= x << 13, x ^= x >> 7, x ^= x << 17, w = x & 0x3bff3bff3bff3bffull;  // finite halves
    const uint64_t n = std::min<uint64_t>(block.size() * 8, bytes - done);
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    done += n;
  }
  if (!out.good()) {
    std::fprintf(stderr, "gpu_bench: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

// Reads the whole file from the page cache with `threads` threads, each into
// its own pinned 16 MiB buffer (what the engine's readers do, without copies).
double read_seconds(const std::filesystem::path& path, int threads) {
  const uint64_t size = std::filesystem::file_size(path), chunk = 16ull << 20;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) std::exit(1);
  std::vector<void*> bufs(threads);
  for (auto& b : bufs) CHECK_CUDA(cudaHostAlloc(&b, chunk, cudaHostAllocPortable));
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (uint64_t off = t * chunk; off < size; off += threads * chunk) {
        uint64_t n = std::min(chunk, size - off);
        if (::pread(fd, bufs[t], n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) std::abort();
      }
    });
  for (auto& th : pool) th.join();
  double s = seconds_since(t0);
  for (auto b : bufs) cudaFreeHost(b);
  ::close(fd);
  return s;
}

// The pinned H2D ceiling: `bytes` from one pinned buffer into one device
// buffer with cudaMemcpyAsync, split over `streams` streams.
double h2d_seconds(void* dst, const void* src, uint64_t bytes, int streams) {
  std::vector<cudaStream_t> s(streams);
  for (auto& x : s) CHECK_CUDA(cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking));
  const uint64_t part = (bytes / streams + 255) & ~255ull;
  CHECK_CUDA(cudaDeviceSynchronize());
  auto t0 = Clock::now();
  for (int i = 0; i < streams; ++i) {
    uint64_t off = i * part;
    if (off >= bytes) break;
    CHECK_CUDA(cudaMemcpyAsync(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off,
                               std::min(part, bytes - off), cudaMemcpyHostToDevice, s[i]));
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  double t = seconds_since(t0);
  for (auto x : s) cudaStreamDestroy(x);
  return t;
}

int transfer(int argc, char** argv) {
  Results r;
  const std::string json = flag(argc, argv, "--json", "");
  if (auto n = tp::cuda::device_count(); !n) {
    for (const char* k : kTransferKeys) r.skip(k, "no CUDA", n.error().message);
    r.write_json(json);
    return 0;
  }
  const double gib = std::stod(flag(argc, argv, "--gib", "4"));
  const std::filesystem::path dir = flag(argc, argv, "--dir", std::filesystem::temp_directory_path().string());
  const std::string model_dir = flag(argc, argv, "--model", "");
  const uint64_t bytes = static_cast<uint64_t>(gib * kGiB) & ~255ull;

  // A bare CUDA context: what any CUDA program on this device costs.
  CHECK_CUDA(cudaSetDevice(0));
  CHECK_CUDA(cudaFree(nullptr));
  const uint64_t bare_used = used_device_bytes();

  // cudaHostAlloc times.
  std::stringstream pin_list(flag(argc, argv, "--pin-gib", "1,2,4,8"));
  for (std::string item; std::getline(pin_list, item, ',');) {
    const uint64_t n = std::stoull(item) << 30;
    void* p = nullptr;
    auto t0 = Clock::now();
    cudaError_t e = cudaHostAlloc(&p, n, cudaHostAllocPortable);
    const double s = seconds_since(t0);
    if (e != cudaSuccess) {
      r.skip("host_alloc_s_" + item + "gib", "cudaHostAlloc failed", cudaGetErrorString(e));
      cudaGetLastError();
      continue;
    }
    auto t1 = Clock::now();
    CHECK_CUDA(cudaFreeHost(p));
    r.add("host_alloc_s_" + item + "gib", s, "%.3f", "free " + std::to_string(seconds_since(t1)).substr(0, 5) + " s");
  }

  // The model file, in the page cache once written (and read once to be sure).
  const std::filesystem::path file = dir / "gpu_bench_model.safetensors";
  write_model(file, bytes);
  read_seconds(file, 4);

  // The H2D ceiling, best of 3 for 1 and 4 streams.
  void* pinned = nullptr;
  void* dev = nullptr;
  CHECK_CUDA(cudaHostAlloc(&pinned, bytes, cudaHostAllocPortable));
  std::memset(pinned, 1, bytes);
  CHECK_CUDA(cudaMalloc(&dev, bytes));
  double h2d_s = 1e9;
  for (int streams : {1, 4})
    for (int i = 0; i < 3; ++i) h2d_s = std::min(h2d_s, h2d_seconds(dev, pinned, bytes, streams));
  CHECK_CUDA(cudaFree(dev));
  CHECK_CUDA(cudaFreeHost(pinned));
  const double h2d = bytes / kGiB / h2d_s;
  r.add("h2d_gib_s", h2d, "%.2f", "pinned cudaMemcpyAsync, best of 1 and 4 streams");

  double read_s = 1e9;
  for (int i = 0; i < 3; ++i) read_s = std::min(read_s, read_seconds(file, 4));
  const double read = bytes / kGiB / read_s;
  r.add("read_gib_s", read, "%.2f", "page cache, 4 threads, pinned 16 MiB buffers");

  {
    auto device = check(tp::make_cuda_device(0, 4), "make_cuda_device");
    auto pool = std::make_shared<tp::PinnedPool>(device, 16ull << 20, 8);
    auto weights = check(tp::TensorWeights::open({{file, ""}}, std::nullopt, device, pool), "open");
    double cold_s = 1e9;
    for (int i = 0; i < 3; ++i) {
      auto t0 = Clock::now();
      check(weights->load_to_device({}), "load from disk");
      cold_s = std::min(cold_s, seconds_since(t0));
      if (i < 2) weights->drop_device();
    }
    const double cold = bytes / kGiB / cold_s;
    r.add("cold_gib_s", cold, "%.2f", "TensorWeights from the page cache, best of 3");
    r.add("cold_vs_ceiling", cold / std::min(read, h2d), "%.3f",
          "target >= 0.70; ceiling min(read, h2d) = " + std::to_string(std::min(read, h2d)).substr(0, 5) + " GiB/s");

    check(weights->offload_to_host({}), "offload");
    double reload_s = 1e9;
    for (int i = 0; i < 3; ++i) {
      auto t0 = Clock::now();
      check(weights->load_to_device({}), "reload from the host tier");
      reload_s = std::min(reload_s, seconds_since(t0));
      if (i < 2) weights->drop_device();
    }
    const double reload = bytes / kGiB / reload_s;
    r.add("reload_gib_s", reload, "%.2f", "from the pinned host tier, best of 3");
    r.add("reload_vs_h2d", reload / h2d, "%.3f", "target >= 0.90");

    // Returned within 100 ms of the unload.
    const uint64_t model_bytes = weights->device_bytes();
    const uint64_t free0 = free_device_bytes();
    auto t0 = Clock::now();
    weights->drop_device();
    uint64_t back = 0;
    do {
      uint64_t f = free_device_bytes();
      back = f > free0 ? f - free0 : 0;
    } while (back < model_bytes && seconds_since(t0) < 0.1);
    r.add("returned_ratio", static_cast<double>(back) / static_cast<double>(model_bytes), "%.4f",
          "target >= 0.99, within 100 ms");
    weights->drop_host();
  }
  if (!has_flag(argc, argv, "--keep")) std::filesystem::remove(file);  // else for measure.py safetensors
  r.add("idle_after_weights_mib", (static_cast<double>(used_device_bytes()) - bare_used) / (1 << 20), "%.1f",
        "after the transfers, every arena freed (no torch yet)");

  // Idle footprint: a pipeline run through the registry (torch's kernels,
  // cuBLAS, the caching allocator), then everything unloaded.
  if (!model_dir.empty()) {
    tp::RegistryConfig config;
    tp::ModelConfig m;
    m.name = "m";
    m.source = model_dir;
    m.dtype = tp::DType::kBF16;
    config.models.push_back(m);
    auto expanded = check(tp::expand_pipeline_components(config), "expand");
    auto options = check(tp::default_registry_options(0), "default_registry_options");
    auto registry = check(tp::ModelRegistry::create(expanded, options), "registry");
    {
      auto pipeline = check(tp::Pipeline::create(*registry, "m"), "pipeline");
      tp::GenerateRequest request;
      request.prompts = {"a red circle on a white background"};
      check(pipeline->generate(request), "generate");
    }
    check(registry->unload_all(tp::Tier::kDisk), "unload_all");
    tp::empty_torch_cuda_cache();
    CHECK_CUDA(cudaDeviceSynchronize());
    const auto torch_stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    r.add("idle_footprint_mib", (static_cast<double>(used_device_bytes()) - bare_used) / (1 << 20), "%.1f",
          "target <= 64; registry alive, every model unloaded, torch's cache emptied; torch still reserves " +
              std::to_string(torch_stats.reserved_bytes[0].current >> 20) + " MiB (" +
              std::to_string(torch_stats.allocated_bytes[0].current >> 20) + " MiB allocated: cuBLAS workspaces?)");
  } else {
    r.add("idle_footprint_mib", (static_cast<double>(used_device_bytes()) - bare_used) / (1 << 20), "%.1f",
          "weights only (no --model): every arena freed");
  }
  r.write_json(json);
  return 0;
}

// One pipeline's step and generation on the GPU (sd3, flux, sdxl: the folder's family is detected).
int pipeline_step(int argc, char** argv) {
  const std::string family = argv[1];
  if (argc < 3) {
    std::fprintf(stderr, "usage: gpu_bench %s FOLDER [--size N] [--steps N] [--repeats N] [--dtype bf16]\n",
                 family.c_str());
    return 2;
  }
  if (auto n = tp::cuda::device_count(); !n) {
    std::printf("{\"skipped\": \"no CUDA\"}\n");
    std::printf("RESULT %s_step_s=skipped: no CUDA  # %s\n", family.c_str(), n.error().message.c_str());
    return 0;
  }
  const int size = std::stoi(flag(argc, argv, "--size", "1024"));
  const int steps = std::stoi(flag(argc, argv, "--steps", "4"));
  const int repeats = std::stoi(flag(argc, argv, "--repeats", "2"));
  const std::string dtype_name = flag(argc, argv, "--dtype", "bf16");
  const std::map<std::string, tp::DType> dtypes = {{"bf16", tp::DType::kBF16}, {"fp16", tp::DType::kF16},
                                                   {"fp32", tp::DType::kF32}};
  if (!dtypes.count(dtype_name)) return 2;
  tp::RegistryConfig config;
  tp::ModelConfig m;
  m.name = "bench";
  m.source = argv[2];
  m.dtype = dtypes.at(dtype_name);
  m.pipeline_type = tp::kDetectPipelineType;
  config.models.push_back(m);
  auto expanded = check(tp::expand_pipeline_components(config), "expand");
  auto options = check(tp::default_registry_options(0), "default_registry_options");
  auto registry = check(tp::ModelRegistry::create(expanded, options), "registry");
  auto t0 = Clock::now();
  for (const auto& info : registry->list()) check(registry->preload(info.name), "preload");
  const double load_s = seconds_since(t0);
  auto pipeline = check(tp::Pipeline::create(*registry, "bench"), "pipeline");

  tp::GenerateRequest request;
  request.prompts = {"a red circle on a white background"};
  request.width = request.height = size;
  request.steps = steps;
  request.guidance_scale = std::stod(flag(argc, argv, "--guidance", "5"));
  request.max_sequence_length = std::stoi(flag(argc, argv, "--seq", "77"));
  std::vector<double> step_times, generate_times;
  Clock::time_point last;
  request.on_step = [&](const tp::StepProgress& p) {
    cudaDeviceSynchronize();  // the step's kernels are done: time the GPU, not the launches
    auto now = Clock::now();
    if (p.step > 1) step_times.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
    return true;
  };
  for (int i = 0; i <= repeats; ++i) {
    if (i == 1) step_times.clear();  // the warm-up's
    auto g0 = Clock::now();
    check(pipeline->generate(request), "generate");
    if (i > 0) generate_times.push_back(seconds_since(g0));
  }
  std::printf("{\"step_s\": %.6f, \"generate_s\": %.6f, \"load_s\": %.3f}\n", median(step_times),
              median(generate_times), load_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "transfer") return transfer(argc, argv);
  if (cmd == "sd3" || cmd == "flux" || cmd == "sdxl") return pipeline_step(argc, argv);
  std::fprintf(stderr,
               "usage: gpu_bench transfer [--gib N] [--dir DIR] [--pin-gib 1,2,4,8] [--model FOLDER] [--json FILE] [--keep]\n"
               "       gpu_bench sd3|flux|sdxl FOLDER [--size 1024] [--steps 4] [--repeats 2] [--dtype bf16] [--seq 77]\n"
               "                              [--guidance 5]\n");
  return cmd == "--help" ? 0 : 2;
}
