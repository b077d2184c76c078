// twistedpic: how the registry reaches a model's weights without knowing
// what they are. The weights I/O layer implements this with real tensors;
// tests use SimulatedBackend.
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
#include <mutex>
#include <set>
#include <string>

#include "twistedpic/config.h"
#include "twistedpic/device_monitor.h"
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
};

class WeightBackend {
 public:
  virtual ~WeightBackend() = default;
  virtual Expected<std::unique_ptr<ModelWeights>> open(const ModelConfig& config) = 0;
};

// A backend whose weights are byte counts on a SimulatedDevice, for tests,
// benchmarks and the CPU-only demo. A model's size is its config's
// size_bytes. Loads can be slowed down, blocked and failed.
class TP_EXPORT SimulatedBackend final : public WeightBackend {
 public:
  struct Hooks {
    // Called inside every load_to_device, before the device allocation, with
    // the model name and the tier it loads from; may block (a test latch).
    std::function<void(const std::string& model, Tier from)> on_load;
    // Bytes of host memory the backend may pin; further host copies fail
    // with kResourceExhausted. 0: unlimited.
    uint64_t host_capacity_bytes = 0;
  };

  explicit SimulatedBackend(std::shared_ptr<SimulatedDevice> device);
  SimulatedBackend(std::shared_ptr<SimulatedDevice> device, Hooks hooks);

  Expected<std::unique_ptr<ModelWeights>> open(const ModelConfig& config) override;

  // The next load of `model` fails with kDataLoss (a read error).
  void fail_next_load(const std::string& model);
  // The next `count` host-copy allocations fail (pinned allocation failure).
  void fail_next_host_allocations(int count);

  uint64_t host_bytes() const;    // pinned host bytes held by all models
  uint64_t loads() const;         // completed load_to_device calls
  uint64_t disk_loads() const;    // of which read from disk

  struct State;  // shared with the ModelWeights it creates

 private:
  std::shared_ptr<State> state_;
};

}  // namespace v0
}  // namespace tp
