#include "weights/default_options.h"

#include "util/system.h"
#include "weights/tensor_weights.h"

namespace tp {
inline namespace v0 {

std::shared_ptr<Device> default_cpu_device() {
  const uint64_t known = detail::physical_ram_bytes();
  return std::make_shared<CpuDevice>(known ? known / 2 : 4ull << 30);
}

RegistryOptions registry_options_on(std::shared_ptr<Device> device) {
  RegistryOptions options;
  options.backend = std::make_shared<TensorWeightBackend>(device);
  options.monitor = std::shared_ptr<DeviceMonitor>(device, &device->monitor());
  return options;
}

}  // namespace v0
}  // namespace tp
