// SimulatedBackend: weights that are byte counts on a SimulatedDevice.
#include <mutex>
#include <set>

#include "twistedpic/testing/simulated_backend.h"

namespace tp {
inline namespace v0 {

struct SimulatedBackend::State {
  std::shared_ptr<SimulatedDevice> device;
  Hooks hooks;
  mutable std::mutex mu;
  std::set<std::string> fail_next_load;  // guarded by mu
  int fail_host = 0;                     // guarded by mu
  uint64_t host_bytes = 0;               // guarded by mu
  uint64_t loads = 0;                    // guarded by mu
  uint64_t disk_loads = 0;               // guarded by mu
  uint64_t load_scratch = 0;             // guarded by mu
  uint64_t scratch_pool = 0;             // guarded by mu

  Status take_host(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    if (fail_host > 0) {
      --fail_host;
      return resource_exhausted("simulated host: injected pinned allocation failure of " + std::to_string(bytes) + " bytes");
    }
    if (hooks.host_capacity_bytes && host_bytes + bytes > hooks.host_capacity_bytes)
      return resource_exhausted("simulated host: pinned memory exhausted");
    host_bytes += bytes;
    return ok_status();
  }
  void give_host(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    host_bytes -= bytes;
  }
};

namespace {

class SimulatedWeights final : public ModelWeights {
 public:
  SimulatedWeights(std::shared_ptr<SimulatedBackend::State> state, std::string name, uint64_t bytes)
      : state_(std::move(state)), name_(std::move(name)), bytes_(bytes) {}
  ~SimulatedWeights() override {
    drop_device();
    drop_host();
  }

  uint64_t device_bytes() const override { return bytes_; }
  uint64_t load_scratch_bytes() const override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->load_scratch;
  }
  uint64_t host_bytes() const override { return on_host_ ? bytes_ : 0; }
  bool on_device() const override { return on_device_; }

  Status load_to_device(const TransferContext& ctx) override {
    if (on_device_) return ok_status();
    Tier from = on_host_ ? Tier::kHost : Tier::kDisk;
    if (state_->hooks.on_load) state_->hooks.on_load(name_, from);
    if (ctx.cancelled()) return cancelled("loading '" + name_ + "' was cancelled");
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      if (from == Tier::kDisk && state_->fail_next_load.erase(name_))
        return data_loss("simulated read error while loading '" + name_ + "' from disk");
    }
    const uint64_t scratch = load_scratch_bytes();
    if (scratch) TP_TRY(state_->device->allocate(scratch));
    if (Status st = state_->device->allocate(bytes_); !st) {
      if (scratch) state_->device->release(scratch);
      return st;
    }
    if (scratch) state_->device->release(scratch);
    if (ctx.progress) ctx.progress(bytes_, bytes_);
    on_device_ = true;
    std::lock_guard<std::mutex> lock(state_->mu);
    ++state_->loads;
    if (from == Tier::kDisk) ++state_->disk_loads;
    return ok_status();
  }

  Status offload_to_host(const TransferContext& ctx) override {
    if (!on_host_) {
      if (ctx.cancelled()) return cancelled("offloading '" + name_ + "' was cancelled");
      TP_TRY(state_->take_host(bytes_));
      on_host_ = true;
    }
    drop_device();
    return ok_status();
  }

  void drop_device() override {
    if (!on_device_) return;
    state_->device->release(bytes_);
    on_device_ = false;
  }

  void drop_host() override {
    if (!on_host_) return;
    state_->give_host(bytes_);
    on_host_ = false;
  }

 private:
  std::shared_ptr<SimulatedBackend::State> state_;
  std::string name_;
  uint64_t bytes_;
  bool on_device_ = false;
  bool on_host_ = false;
};

}  // namespace

SimulatedBackend::SimulatedBackend(std::shared_ptr<SimulatedDevice> device)
    : SimulatedBackend(std::move(device), Hooks{}) {}

SimulatedBackend::SimulatedBackend(std::shared_ptr<SimulatedDevice> device, Hooks hooks)
    : state_(std::make_shared<State>()) {
  state_->device = std::move(device);
  state_->hooks = std::move(hooks);
}

Expected<std::unique_ptr<ModelWeights>> SimulatedBackend::open(const ModelConfig& config) {
  if (config.size_bytes == 0)
    return invalid_argument("models." + config.name + ".size_bytes: the simulated backend needs the model's size");
  return std::unique_ptr<ModelWeights>(std::make_unique<SimulatedWeights>(state_, config.name, config.size_bytes));
}

uint64_t SimulatedBackend::scratch_bytes_held() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->scratch_pool;
}

void SimulatedBackend::set_load_scratch_bytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->load_scratch = bytes;
}

Status SimulatedBackend::set_scratch_pool_bytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (bytes > state_->scratch_pool) {
    TP_TRY(state_->device->allocate(bytes - state_->scratch_pool));
  } else if (bytes < state_->scratch_pool) {
    state_->device->release(state_->scratch_pool - bytes);
  }
  state_->scratch_pool = bytes;
  return ok_status();
}

void SimulatedBackend::fail_next_load(const std::string& model) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_next_load.insert(model);
}

void SimulatedBackend::fail_next_host_allocations(int count) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->fail_host = count;
}

uint64_t SimulatedBackend::host_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->host_bytes;
}

uint64_t SimulatedBackend::loads() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->loads;
}

uint64_t SimulatedBackend::disk_loads() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->disk_loads;
}

}  // namespace v0
}  // namespace tp
