// Private (weights): registry options on real weights, without LibTorch or
// CUDA. The torch layer's default_registry_options (twistedpic/runtime.h)
// builds on these and adds the CUDA devices and torch's cache clean-up; hosts
// built without the torch layer (the C ABI's fuzzer) use them as they are.
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <functional>
#include <memory>

#include "device/device.h"
#include "twistedpic/registry.h"

namespace tp {
inline namespace v0 {

// The CPU device with a budget of half the physical RAM (4 GiB when the
// system will not say).
std::shared_ptr<Device> default_cpu_device();

// One registry device over `device`: named as the device, a
// TensorWeightBackend over it (with its pinned and scratch pools), the
// device's memory monitor, and as the clean-up: `also_clean` when given (the
// torch layer empties its CUDA cache there), then trimming the backend's
// scratch pool (TensorWeightBackend::trim_scratch), so a clean-up leaves no
// idle scratch on the device.
RegistryDevice registry_device_on(std::shared_ptr<Device> device, std::function<void()> also_clean = {});

// Registry options on the devices (at least one): `devices` lists one
// RegistryDevice per device, in order, and the single-device fields backend
// and monitor repeat the first, for hosts that read them (clean_caches stays
// empty: each device has its own, and the registry refuses both).
RegistryOptions registry_options_on(std::vector<RegistryDevice> devices);
// The same for one device (registry_device_on(device)).
RegistryOptions registry_options_on(std::shared_ptr<Device> device);

}  // namespace v0
}  // namespace tp
