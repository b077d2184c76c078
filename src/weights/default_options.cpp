#include "weights/default_options.h"

#include <utility>

#include "util/system.h"
#include "weights/tensor_weights.h"

namespace tp {
inline namespace v0 {

std::shared_ptr<Device> default_cpu_device() {
  const uint64_t known = detail::physical_ram_bytes();
  return std::make_shared<CpuDevice>(known ? known / 2 : 4ull << 30);
}

RegistryDevice registry_device_on(std::shared_ptr<Device> device, std::function<void()> also_clean) {
  RegistryDevice d;
  d.name = device->name();
  auto backend = std::make_shared<TensorWeightBackend>(device);
  d.monitor = std::shared_ptr<DeviceMonitor>(device, &device->monitor());
  d.clean_caches = [backend, also = std::move(also_clean)] {
    if (also) also();
    backend->trim_scratch();
  };
  d.backend = std::move(backend);
  return d;
}

RegistryOptions registry_options_on(std::vector<RegistryDevice> devices) {
  RegistryOptions options;
  TP_ASSERT(!devices.empty());
  options.backend = devices.front().backend;
  options.monitor = devices.front().monitor;  // clean_caches stays per device: the registry refuses both
  options.devices = std::move(devices);
  return options;
}

RegistryOptions registry_options_on(std::shared_ptr<Device> device) {
  std::vector<RegistryDevice> devices;
  devices.push_back(registry_device_on(std::move(device)));
  return registry_options_on(std::move(devices));
}

}  // namespace v0
}  // namespace tp
