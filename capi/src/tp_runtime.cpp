// The C ABI library's runtime: registries without a simulated device get
// default_registry_options (every usable CUDA device, torch's cache
// clean-up), and tp_runtime_devices lists runtime_info()'s devices. Set
// while the library loads, before any tp_* call.
#include "tp_internal.h"
#include "twistedpic/runtime.h"

namespace {

const bool kRegistered = [] {
  tp::capi::default_options = [] { return tp::default_registry_options(); };
  tp::capi::runtime_devices = [] {
    std::vector<tp::DeviceStats> out;
    for (const tp::RuntimeDevice& d : tp::runtime_info().devices) {
      tp::DeviceStats s;
      s.name = d.name;
      s.total_bytes = d.total_bytes;
      s.free_bytes = d.free_bytes;
      out.push_back(std::move(s));
    }
    return out;
  };
  return true;
}();

}  // namespace
