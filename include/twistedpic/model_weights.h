// twistedpic: how the registry reaches a model's weights without knowing
// what they are. The weights I/O layer implements this with real tensors
// (default_registry_options, runtime.h); tests use SimulatedBackend
// (twistedpic/testing/simulated_backend.h).
//
// A WeightBackend opens a configured model (cheap: it reads headers and sizes
// but moves no weights). The ModelWeights it returns moves them between tiers
// when the registry asks; the registry serializes those calls per model.
//
// Threading: WeightBackend::open may be called concurrently for different
// models. A ModelWeights object is driven by one thread at a time (the
// registry guarantees it); its accessors may be read by lease holders while
// the model is resident.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "twistedpic/config.h"
#include "twistedpic/expected.h"

namespace tp {
inline namespace v0 {

struct TransferContext {
  // Set by another thread to stop a transfer; the transfer returns kCancelled
  // and leaves nothing allocated.
  const std::atomic<bool>* cancel = nullptr;
  // Bytes done and total; may be empty.
  std::function<void(uint64_t done, uint64_t total)> progress;

  bool cancelled() const { return cancel && cancel->load(std::memory_order_relaxed); }
};

class ModelWeights {
 public:
  virtual ~ModelWeights() = default;

  // Bytes the weights take on the device (known before loading).
  virtual uint64_t device_bytes() const = 0;
  // Bytes of the pinned host copy held now (0 without one).
  virtual uint64_t host_bytes() const = 0;
  virtual bool on_device() const = 0;

  // Moves the weights to the device: from the host copy when there is one
  // (kept, since weights are immutable), else from disk. On failure nothing
  // stays allocated on the device.
  virtual Status load_to_device(const TransferContext& ctx) = 0;
  // Makes a pinned host copy if there is none (device -> host), then frees the device copy.
  virtual Status offload_to_host(const TransferContext& ctx) = 0;
  // Frees the device copy. Never fails.
  virtual void drop_device() = 0;
  // Frees the host copy. Never fails.
  virtual void drop_host() = 0;
  // Device bytes load_to_device() would allocate now beside the weights, for
  // the time of the load (the engine's conversion scratch, beyond what its
  // device's scratch pool holds idle); admission counts them. Default: 0.
  virtual uint64_t load_scratch_bytes() const { return 0; }
};

class WeightBackend {
 public:
  virtual ~WeightBackend() = default;
  virtual Expected<std::unique_ptr<ModelWeights>> open(const ModelConfig& config) = 0;
  // Device bytes the backend's scratch pool holds on its device (idle, or
  // lent to loads in flight); admission counts them as held. Safe from any
  // thread. Default: 0.
  virtual uint64_t scratch_bytes_held() const { return 0; }
};

}  // namespace v0
}  // namespace tp
