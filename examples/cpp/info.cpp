// Prints what twistedpic was built with and which devices it can use.
#include <cstdio>

#include "twistedpic/runtime.h"

int main() {
  tp::RuntimeInfo info = tp::runtime_info();
  std::printf("twistedpic %s\n", info.version.c_str());
  std::printf("  torch       %s (CUDA %s)\n", info.torch_version.c_str(),
              info.torch_cuda_compiled ? info.torch_cuda_version.c_str() : "none");
  if (info.cuda_available)
    std::printf("  cuda        %d device(s)\n", info.cuda_device_count);
  else
    std::printf("  cuda        unavailable: %s (the CPU device is used)\n", info.cuda_unavailable_reason.c_str());
  return 0;
}
