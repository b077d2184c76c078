// The C ABI library's runtime: registries without a simulated device get
// default_registry_options (the CUDA device when usable, torch's cache
// clean-up). Set while the library loads, before any tp_* call.
#include "tp_internal.h"
#include "twistedpic/runtime.h"

namespace {

const bool kRegistered = [] {
  tp::capi::default_options = [] { return tp::default_registry_options(); };
  return true;
}();

}  // namespace
