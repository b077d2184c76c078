// twistedpic testing: SimulatedBackend, a WeightBackend
// (twistedpic/model_weights.h) whose weights are byte counts on a
// SimulatedDevice (twistedpic/testing/simulated_device.h), for tests,
// benchmarks and demos without a GPU or weight files. A model's size is its
// config's size_bytes. Loads can be slowed down, blocked and failed.
//
// Installed for users' own tests; not for production use.
//
// Threading: SimulatedBackend is safe from any thread; each ModelWeights it
// makes is driven by one thread at a time (the registry guarantees it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "twistedpic/config.h"
#include "twistedpic/expected.h"
#include "twistedpic/export.h"
#include "twistedpic/model_weights.h"
#include "twistedpic/residency.h"
#include "twistedpic/testing/simulated_device.h"

namespace tp {
inline namespace v0 {

// Opens every configured model as simulated weights of its size_bytes.
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
  // The scratch pool it holds on the device (set_scratch_pool_bytes).
  uint64_t scratch_bytes_held() const override;

  // Every load from now on borrows `bytes` of device scratch beside the
  // weights for its duration (allocated on the device, freed when the load
  // ends; a load fails with kResourceExhausted when they are not free), as
  // ModelWeights::load_scratch_bytes() reports. Default: 0.
  void set_load_scratch_bytes(uint64_t bytes);
  // Holds a scratch pool of `bytes` on the device between loads (allocated or
  // released to reach it); kResourceExhausted when they are not free.
  Status set_scratch_pool_bytes(uint64_t bytes);

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
