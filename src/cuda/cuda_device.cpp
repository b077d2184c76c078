// The CUDA Device: arenas from cudaMalloc (outside torch's caching allocator,
// so cudaFree gives them straight back to the driver), pinned memory from
// cudaHostAlloc, one non-blocking stream per lane, use fences as CUDA events
// (an arena is freed only after the kernels that read it).
#include <cuda_runtime_api.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/cuda_runtime.h"
#include "device/device.h"

namespace tp {
inline namespace v0 {
namespace {

tl::unexpected<Error> cuda_failure(const char* what, cudaError_t err, uint64_t bytes = 0) {
  cudaGetLastError();  // clear a non-sticky error
  ErrorCode code = err == cudaErrorMemoryAllocation ? ErrorCode::kResourceExhausted : ErrorCode::kInternal;
  std::string msg = std::string(what) + (bytes ? " of " + std::to_string(bytes) + " bytes" : "") + ": " +
                    cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  return make_error(code, std::move(msg));
}

class CudaDevice final : public Device {
 public:
  CudaDevice(int index, std::unique_ptr<DeviceMonitor> monitor, std::vector<cudaStream_t> streams)
      : index_(index), monitor_(std::move(monitor)), streams_(std::move(streams)) {}
  ~CudaDevice() override {
    Guard g(index_);
    for (auto& [ptr, f] : fences_)
      for (auto& [stream, e] : f.events) cudaEventDestroy(e);
    for (cudaStream_t s : streams_) cudaStreamDestroy(s);
  }

  std::string name() const override { return "cuda:" + std::to_string(index_); }
  bool is_host_memory() const override { return false; }
  DeviceMonitor& monitor() override { return *monitor_; }

  Expected<void*> allocate(uint64_t bytes) override {
    Guard g(index_);
    void* p = nullptr;
    if (cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1); e != cudaSuccess) return cuda_failure("cudaMalloc", e, bytes);
    return p;
  }
  void free(void* ptr, uint64_t) override {
    if (!ptr) return;
    wait_for_uses(ptr);  // the owner should have; cudaFree only "may" synchronize
    Guard g(index_);
    cudaFree(ptr);
  }
  Expected<void*> allocate_pinned(uint64_t bytes) override {
    void* p = nullptr;
    if (cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable); e != cudaSuccess)
      return cuda_failure("cudaHostAlloc", e, bytes);
    return p;
  }
  void free_pinned(void* ptr, uint64_t) override {
    if (ptr) cudaFreeHost(ptr);
  }

  int lanes() const override { return static_cast<int>(streams_.size()); }
  Status copy_to_device(void* dst, const void* src, uint64_t bytes, int lane) override {
    return copy(dst, src, bytes, lane, cudaMemcpyHostToDevice);
  }
  Status copy_to_host(void* dst, const void* src, uint64_t bytes, int lane) override {
    return copy(dst, src, bytes, lane, cudaMemcpyDeviceToHost);
  }
  Status convert(const void* src, DType from, void* dst, DType to, uint64_t count, int lane) override {
    Guard g(index_);
    return cuda::convert(src, from, dst, to, count, stream(lane));
  }
  Status synchronize(int lane) override {
    Guard g(index_);
    if (cudaError_t e = cudaStreamSynchronize(stream(lane)); e != cudaSuccess) return cuda_failure("cudaStreamSynchronize", e);
    return ok_status();
  }

  // One event per (allocation, stream): re-recording it on the same stream
  // covers the earlier uses, since a stream runs in order.
  void record_use(void* ptr, void* user_stream) override {
    if (!ptr) return;
    auto s = static_cast<cudaStream_t>(user_stream);
    Guard g(index_);
    std::lock_guard<std::mutex> lock(fences_mu_);
    Fences& f = fences_[ptr];
    cudaEvent_t* event = nullptr;
    for (auto& [stream, e] : f.events)
      if (stream == s) event = &e;
    if (!event) {
      cudaEvent_t e = nullptr;
      if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        f.wait_for_device = true;
        return;
      }
      f.events.emplace_back(s, e);
      event = &f.events.back().second;
    }
    if (cudaEventRecord(*event, s) != cudaSuccess) {
      cudaGetLastError();
      f.wait_for_device = true;
    }
  }

  void wait_for_uses(void* ptr) override {
    Fences f;
    {
      std::lock_guard<std::mutex> lock(fences_mu_);
      auto it = fences_.find(ptr);
      if (it == fences_.end()) return;
      f = std::move(it->second);
      fences_.erase(it);
    }
    Guard g(index_);
    for (auto& [stream, e] : f.events) {
      if (cudaEventSynchronize(e) != cudaSuccess) f.wait_for_device = true;
      cudaEventDestroy(e);
    }
    if (f.wait_for_device) cudaDeviceSynchronize();
    cudaGetLastError();
  }

 private:
  // Makes `index` current for the scope, restoring the caller's device.
  struct Guard {
    explicit Guard(int index) {
      cudaGetDevice(&previous);
      if (previous != index) cudaSetDevice(index);
    }
    ~Guard() { cudaSetDevice(previous); }
    int previous = 0;
  };

  cudaStream_t stream(int lane) const { return streams_[static_cast<size_t>(lane) % streams_.size()]; }

  Status copy(void* dst, const void* src, uint64_t bytes, int lane, cudaMemcpyKind kind) {
    Guard g(index_);
    if (cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, stream(lane)); e != cudaSuccess)
      return cuda_failure("cudaMemcpyAsync", e, bytes);
    return ok_status();
  }

  // The use fences of one allocation.
  struct Fences {
    std::vector<std::pair<cudaStream_t, cudaEvent_t>> events;
    bool wait_for_device = false;  // a fence could not be recorded: wait for everything
  };

  int index_;
  std::unique_ptr<DeviceMonitor> monitor_;
  std::vector<cudaStream_t> streams_;
  std::mutex fences_mu_;
  std::unordered_map<void*, Fences> fences_;  // guarded by fences_mu_
};

}  // namespace

Expected<std::shared_ptr<Device>> make_cuda_device(int index, int lanes) {
  if (lanes < 1) return invalid_argument("make_cuda_device: lanes must be at least 1");
  TP_ASSIGN_OR_RETURN(std::unique_ptr<DeviceMonitor> monitor, make_cuda_device_monitor(index));
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(index);
  std::vector<cudaStream_t> streams;
  for (int i = 0; i < lanes; ++i) {
    cudaStream_t s = nullptr;
    if (cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); e != cudaSuccess) {
      for (cudaStream_t made : streams) cudaStreamDestroy(made);
      cudaSetDevice(previous);
      return cuda_failure("cudaStreamCreateWithFlags", e);
    }
    streams.push_back(s);
  }
  cudaSetDevice(previous);
  return std::shared_ptr<Device>(std::make_shared<CudaDevice>(index, std::move(monitor), std::move(streams)));
}

}  // namespace v0
}  // namespace tp
