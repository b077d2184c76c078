// Private (weights): registry options on real weights, without LibTorch or
// CUDA. The torch layer's default_registry_options (twistedpic/runtime.h)
// builds on these and adds the CUDA device and torch's cache clean-up; hosts
// built without the torch layer (the C ABI's fuzzer) use them as they are.
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <memory>

#include "device/device.h"
#include "twistedpic/registry.h"

namespace tp {
inline namespace v0 {

// The CPU device with a budget of half the physical RAM (4 GiB when the
// system will not say).
std::shared_ptr<Device> default_cpu_device();

// A TensorWeightBackend over `device`, and the device's memory monitor.
RegistryOptions registry_options_on(std::shared_ptr<Device> device);

}  // namespace v0
}  // namespace tp
