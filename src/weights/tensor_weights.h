// Private (weights): real weights. TensorWeights holds one model's safetensors
// tensors in a single device arena (one allocation outside any caching
// allocator, so an unload gives every byte back to the driver) and moves
// them between tiers with the transfer engine:
//
//   disk -> pinned staging -> device: chunked reads by several threads into
//     pooled pinned buffers, each thread double-buffering its copies on its
//     own lane (CUDA stream), converting dtypes on the device when asked (a
//     piece to convert is staged 16-byte aligned, as typed GPU loads need,
//     in device scratch borrowed from the device's ScratchPool, buffer_pool.h);
//   device -> host: one pinned host arena, the host tier;
//   host -> device: a straight copy of that arena, split across lanes.
//
// TensorWeightBackend opens configured models (a diffusers folder, a folder
// of safetensors files, one file, or a Hugging Face id in the local cache)
// for the registry. It owns its device's two pools: pinned staging buffers
// and device scratch (weights/buffer_pool.h), shared by every model it opens.
//
// Threading: a TensorWeights is driven by one thread at a time (the registry
// guarantees it); its accessors may be read concurrently while it is
// resident. TensorWeightBackend, PinnedPool and ScratchPool are thread-safe.
#pragma once

#include <functional>
#include <map>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "device/device.h"
#include "weights/buffer_pool.h"
#include "weights/tensor_selection.h"
#include "twistedpic/model_weights.h"

namespace tp {
inline namespace v0 {

struct TransferOptions {
  // Bytes per read and copy. Default: 16 MiB.
  uint64_t chunk_bytes = 16ull << 20;
  // Reading threads, each double-buffered on its own lane. Default: 4.
  int readers = 4;
};

// A safetensors file, and the prefix its tensor names get in the model
// ("text_encoder/" for a diffusers component; "" otherwise).
struct WeightFile {
  WeightFile() = default;
  WeightFile(std::filesystem::path p, std::string pre, std::shared_ptr<const TensorSelection> sel = nullptr)
      : path(std::move(p)), prefix(std::move(pre)), selection(std::move(sel)) {}

  std::filesystem::path path;
  std::string prefix;
  // Only these of the file's tensors, renamed (weights/tensor_selection.h;
  // the prefix still applies). Default (null): every tensor, as named.
  std::shared_ptr<const TensorSelection> selection;
};

// One tensor's place in the arena.
struct WeightTensor {
  std::string name;                // prefix + the name in the file
  DType dtype = DType::kF32;       // in the arena
  DType file_dtype = DType::kF32;  // in the file
  std::vector<int64_t> shape;
  uint64_t offset = 0;             // in the arena, 256-byte aligned
  uint64_t bytes = 0;              // in the arena
  size_t file = 0;                 // index into files()
  uint64_t file_offset = 0;        // absolute, in the file
  // 2-D only: the bytes hold the tensor's transpose, row-major shape[1] x
  // shape[0], as the file stores it (a TensorSelection's transposed pick);
  // a view of it is a transposed, non-contiguous view (torch/tensors.h).
  bool transposed = false;
};

class TP_EXPORT TensorWeights final : public ModelWeights {
 public:
  // Reads the files' headers and plans the arena; moves no weights. Floating
  // tensors (F32, F16, BF16) become `dtype` when given. Tensor names must be
  // unique across the files. Device scratch for conversions comes from
  // `scratch` (buffers of at least options.chunk_bytes); default (null): a
  // pool of this model's own, kept until it is destroyed.
  static Expected<std::unique_ptr<TensorWeights>> open(std::vector<WeightFile> files,
                                                       std::optional<DType> dtype, std::shared_ptr<Device> device,
                                                       std::shared_ptr<PinnedPool> pool, TransferOptions options = {},
                                                       std::shared_ptr<ScratchPool> scratch = nullptr);
  ~TensorWeights() override;

  uint64_t device_bytes() const override { return arena_bytes_; }
  uint64_t host_bytes() const override { return host_ ? arena_bytes_ : 0; }
  bool on_device() const override { return arena_ != nullptr; }
  Status load_to_device(const TransferContext& ctx) override;
  Status offload_to_host(const TransferContext& ctx) override;
  // Waits for the uses noted with note_use, then frees the arena.
  void drop_device() override;
  void drop_host() override;
  // What a load from disk would allocate in device scratch beyond the idle
  // buffers of its ScratchPool now (2 buffers per reader; only a load that
  // converts dtypes on a device that is not host memory borrows any). 0 when
  // the weights are on the device or come back from the host copy.
  // REQUIRES: no transfer of these weights runs (the registry asks while it
  // admits their load).
  uint64_t load_scratch_bytes() const override;
  // The device scratch a load from disk borrows, whatever the pool holds.
  uint64_t scratch_bytes_borrowed() const;

  const std::vector<WeightTensor>& tensors() const { return tensors_; }
  // The dtype the floating tensors were converted to (ModelConfig::dtype);
  // nullopt when they keep their files' dtypes.
  std::optional<DType> converted_dtype() const { return dtype_; }
  // The floating-point dtype the weights compute in: converted_dtype() when
  // set, else that of the first floating tensor (F32, F16, BF16, F64) in file
  // order; nullopt when no tensor is floating. Integer tensors never decide it.
  std::optional<DType> compute_dtype() const;
  const WeightTensor* find(std::string_view name) const;
  const std::vector<WeightFile>& files() const { return files_; }
  Device& device() const { return *device_; }
  // The arena on the device / the host copy; nullptr when absent.
  void* device_data() const { return arena_; }
  const void* host_data() const { return host_; }

  // What an upper layer derives from the device copy and that points into it
  // (the pipeline's networks, bound to tensor views): made by `make` at most
  // once per `key` and per load, kept while the weights stay on the device,
  // and dropped with the device copy. An error from `make` is returned and
  // nothing is kept. Safe from several lease holders at once.
  // REQUIRES: on_device() (a lease is held).
  using Binding = std::shared_ptr<const void>;
  Expected<Binding> device_binding(const std::string& key, const std::function<Expected<Binding>()>& make) const;

  // A lease holder's user is done with the device copy: the work queued so
  // far on `stream` (opaque here: torch's current cudaStream_t, from the
  // torch layer) is the last that reads it. The arena is freed only after
  // that work (Device::record_use; drop_device waits for every use). Call it
  // after queueing the last kernel that reads the weights and before the
  // lease ends. A no-op when the weights are not on the device. Safe from
  // several lease holders at once; never fails.
  void note_use(void* stream) const;

 private:
  TensorWeights() = default;
  Status load_from_disk(const TransferContext& ctx);
  Status copy_arena(void* dst, const void* src, bool to_device);

  std::vector<WeightFile> files_;
  std::vector<uint64_t> file_sizes_;   // as the headers were read
  std::vector<WeightTensor> tensors_;  // sorted by file, then file offset
  std::shared_ptr<Device> device_;
  std::shared_ptr<PinnedPool> pool_;
  std::shared_ptr<ScratchPool> scratch_;
  TransferOptions options_;
  std::optional<DType> dtype_;         // the conversion target, if any
  uint64_t arena_bytes_ = 0;
  void* arena_ = nullptr;
  mutable std::mutex bindings_mu_;
  mutable std::map<std::string, Binding, std::less<>> bindings_;  // guarded by bindings_mu_
  void* host_ = nullptr;
};

// The safetensors files of a model source: a diffusers folder (every
// component's weights), a folder of *.safetensors (or one sharded index), a
// single file, or a Hugging Face model id resolved in the local cache.
// Pickle checkpoints are refused.
TP_EXPORT Expected<std::vector<WeightFile>> model_weight_files(std::string_view source);

class TP_EXPORT TensorWeightBackend final : public WeightBackend {
 public:
  explicit TensorWeightBackend(std::shared_ptr<Device> device, TransferOptions options = {});
  Expected<std::unique_ptr<ModelWeights>> open(const ModelConfig& config) override;
  // The device scratch pool's bytes on the device (ScratchPool::held_bytes).
  uint64_t scratch_bytes_held() const override { return scratch_->held_bytes(); }
  // Hands the idle device scratch back to the driver; returns the bytes.
  // The registry's cache clean-up calls it (registry_options_on).
  uint64_t trim_scratch() { return scratch_->trim(); }
  const std::shared_ptr<PinnedPool>& pool() const { return pool_; }
  const std::shared_ptr<ScratchPool>& scratch_pool() const { return scratch_; }
  const std::shared_ptr<Device>& device() const { return device_; }

 private:
  std::shared_ptr<Device> device_;
  TransferOptions options_;
  std::shared_ptr<PinnedPool> pool_;
  std::shared_ptr<ScratchPool> scratch_;
};

}  // namespace v0
}  // namespace tp
