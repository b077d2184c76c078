// The C ABI's devices (issue #23, several devices): a registry's device list
// and a model's device, on several simulated devices; the runtime's devices;
// and the bad input of each new function. Compiled as C++ against tp.h only.
//
// Until the registry fills RegistryStats::devices and ModelInfo::device
// (helper H2's half), SeveralSimulatedDevicesAreListedInOrder and
// OneSimulatedDeviceIsListed fail: they state the final behaviour.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "support/capi_error.h"
#include "twistedpic/tp.h"

namespace {

constexpr uint64_t kGiB = 1ull << 30;
using Error = CapiError;

// Three models on two named simulated devices, one placed by the registry.
const char* kTwoDevices = R"({
  "models": {
    "a": {"path": "/models/a", "size_bytes": "4GiB", "device": "sim:1"},
    "b": {"path": "/models/b", "size_bytes": "2GiB", "device": "sim:0"},
    "c": {"path": "/models/c", "size_bytes": "1GiB", "device": "sim:1"}
  },
  "admission_timeout_ms": 0
})";

struct Device {
  std::string name;
  tp_device_info info{};
};

// The registry's (or, with reg NULL, the runtime's) devices, copied out of the list.
std::vector<Device> devices(const tp_registry* reg) {
  tp_device_list* list = nullptr;
  Error err;
  tp_code code = reg ? tp_registry_devices(&list, reg, err.out()) : tp_runtime_devices(&list, err.out());
  EXPECT_EQ(code, TP_OK) << err.message();
  std::vector<Device> out;
  for (uint32_t i = 0; i < tp_device_list_count(list); ++i) {
    Device d;
    d.info.struct_size = sizeof d.info;
    EXPECT_EQ(tp_device_list_get(&d.info, list, i, err.out()), TP_OK) << err.message();
    d.name = d.info.name;
    d.info.name = nullptr;  // the list is freed below
    out.push_back(d);
  }
  tp_device_list_free(list);
  return out;
}

std::string model_device(const tp_registry* reg, const char* model) {
  tp_model_list* list = nullptr;
  EXPECT_EQ(tp_registry_info(&list, reg, model, nullptr), TP_OK);
  tp_model_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(tp_model_list_get(&info, list, 0, nullptr), TP_OK);
  std::string device = info.device ? info.device : "(null)";
  tp_model_list_free(list);
  return device;
}

tp_registry* two_device_registry() {
  tp_registry_options* opts = nullptr;
  EXPECT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  Error err;
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, "sim:0", 8 * kGiB, err.out()), TP_OK) << err.message();
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, "sim:1", 16 * kGiB, err.out()), TP_OK) << err.message();
  EXPECT_EQ(tp_registry_options_set_background_thread(opts, 0, nullptr), TP_OK);
  tp_registry* reg = nullptr;
  EXPECT_EQ(tp_registry_create_from_string(&reg, kTwoDevices, opts, err.out()), TP_OK) << err.message();
  tp_registry_options_destroy(opts);
  return reg;
}

TEST(DevicesCapiTest, SeveralSimulatedDevicesAreListedInOrder) {
  tp_registry* reg = two_device_registry();
  ASSERT_NE(reg, nullptr);
  std::vector<Device> d = devices(reg);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].name, "sim:0");
  EXPECT_EQ(d[1].name, "sim:1");
  EXPECT_EQ(d[0].info.total_bytes, 8 * kGiB);
  EXPECT_EQ(d[1].info.total_bytes, 16 * kGiB);
  EXPECT_EQ(d[0].info.held_bytes + d[1].info.held_bytes, 0u);
  EXPECT_EQ(model_device(reg, "a"), "sim:1");
  EXPECT_EQ(model_device(reg, "b"), "sim:0");

  tp_model* a = nullptr;
  tp_model* b = nullptr;
  ASSERT_EQ(tp_model_acquire(&a, reg, "a", nullptr), TP_OK);
  ASSERT_EQ(tp_model_acquire(&b, reg, "b", nullptr), TP_OK);
  d = devices(reg);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].info.held_bytes, 2 * kGiB);
  EXPECT_EQ(d[0].info.resident_models, 1u);
  EXPECT_EQ(d[0].info.free_bytes, 6 * kGiB);
  EXPECT_EQ(d[1].info.held_bytes, 4 * kGiB);
  EXPECT_EQ(d[1].info.resident_models, 1u);
  EXPECT_EQ(d[1].info.free_bytes, 12 * kGiB);
  tp_model_release(a);
  tp_model_release(b);
  tp_registry_destroy(reg);
}

TEST(DevicesCapiTest, OneSimulatedDeviceIsListed) {
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  ASSERT_EQ(tp_registry_options_use_simulated_device(opts, 4 * kGiB, nullptr), TP_OK);
  tp_registry* reg = nullptr;
  Error err;
  ASSERT_EQ(tp_registry_create_from_string(&reg, R"({"models": {"m": {"path": "/m", "size_bytes": "1GiB"}}})", opts,
                                           err.out()),
            TP_OK)
      << err.message();
  tp_registry_options_destroy(opts);
  std::vector<Device> d = devices(reg);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].info.total_bytes, 4 * kGiB);
  EXPECT_FALSE(d[0].name.empty());
  EXPECT_EQ(model_device(reg, "m"), d[0].name);
  tp_registry_destroy(reg);
}

// Out-structs get the caller's prefix only: a v0.1 tp_model_info (120 bytes)
// has no device field, and a longer tp_device_info keeps its tail.
TEST(DevicesCapiTest, OlderAndNewerStructsGetTheirPrefix) {
  tp_registry* reg = two_device_registry();
  ASSERT_NE(reg, nullptr);
  constexpr uint64_t kCanary = 0x5a5a5a5a5a5a5a5aull;
  tp_model_list* list = nullptr;
  ASSERT_EQ(tp_registry_list(&list, reg, nullptr), TP_OK);
  tp_model_info v01{};
  std::memset(&v01, 0x5a, sizeof v01);
  v01.struct_size = 120;
  ASSERT_EQ(tp_model_list_get(&v01, list, 0, nullptr), TP_OK);
  uint64_t tail = 0;
  std::memcpy(&tail, reinterpret_cast<const char*>(&v01) + 120, sizeof tail);
  EXPECT_EQ(tail, kCanary) << "a v0.1 caller's struct ends before the device field";
  tp_model_list_free(list);

  tp_device_list* devs = nullptr;
  ASSERT_EQ(tp_registry_devices(&devs, reg, nullptr), TP_OK);
  struct {
    tp_device_info info;
    uint64_t future;
  } longer{};
  longer.info.struct_size = sizeof longer;
  longer.future = kCanary;
  if (tp_device_list_count(devs) > 0) {
    ASSERT_EQ(tp_device_list_get(&longer.info, devs, 0, nullptr), TP_OK);
    EXPECT_EQ(longer.info.struct_size, sizeof longer);
    EXPECT_EQ(longer.future, kCanary);
  }
  tp_device_info small{};
  small.struct_size = 111;
  Error err;
  EXPECT_EQ(tp_device_list_get(&small, devs, 0, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("struct_size 111 is below v0.2's 112"), std::string::npos) << err.message();
  tp_device_list_free(devs);
  tp_registry_destroy(reg);
}

// The runtime's devices: every visible CUDA device in index order, or the
// CPU device alone, each with its memory.
TEST(DevicesCapiTest, RuntimeDevicesAreTheCudaDevicesOrTheCpu) {
  std::vector<Device> d = devices(nullptr);
  ASSERT_FALSE(d.empty());
  if (d[0].name == "cpu") {
    EXPECT_EQ(d.size(), 1u);
  } else {
    for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i].name, "cuda:" + std::to_string(i));
  }
  for (const Device& x : d) {
    EXPECT_GT(x.info.total_bytes, 0u) << x.name;
    EXPECT_LE(x.info.free_bytes, x.info.total_bytes) << x.name;
    EXPECT_EQ(x.info.held_bytes, 0u) << "the runtime's list has no registry figures";
  }
}

TEST(DevicesCapiBadInputTest, NullsNamesAndMixing) {
  Error err;
  tp_registry_options* opts = nullptr;
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  EXPECT_EQ(tp_registry_options_add_simulated_device(nullptr, "x", kGiB, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, nullptr, kGiB, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("name must not be NULL"), std::string::npos) << err.message();
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, "", kGiB, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, "x", 0, err.out()), TP_INVALID_ARGUMENT);
  ASSERT_EQ(tp_registry_options_add_simulated_device(opts, "x", kGiB, nullptr), TP_OK);
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, "x", kGiB, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("'x' was already added"), std::string::npos) << err.message();
  EXPECT_EQ(tp_registry_options_use_simulated_device(opts, kGiB, err.out()), TP_FAILED_PRECONDITION);
  tp_registry_options_destroy(opts);
  ASSERT_EQ(tp_registry_options_create(&opts, nullptr), TP_OK);
  ASSERT_EQ(tp_registry_options_use_simulated_device(opts, kGiB, nullptr), TP_OK);
  EXPECT_EQ(tp_registry_options_add_simulated_device(opts, "y", kGiB, err.out()), TP_FAILED_PRECONDITION);
  EXPECT_NE(err.message().find("not both"), std::string::npos) << err.message();
  tp_registry_options_destroy(opts);

  tp_device_list* list = nullptr;
  EXPECT_EQ(tp_registry_devices(nullptr, nullptr, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_registry_devices(&list, nullptr, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_EQ(list, nullptr);
  EXPECT_EQ(tp_runtime_devices(nullptr, nullptr), TP_INVALID_ARGUMENT);
  ASSERT_EQ(tp_runtime_devices(&list, nullptr), TP_OK);
  tp_device_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(tp_device_list_get(nullptr, list, 0, nullptr), TP_INVALID_ARGUMENT);
  EXPECT_EQ(tp_device_list_get(&info, nullptr, 0, nullptr), TP_INVALID_ARGUMENT);
  const uint32_t n = tp_device_list_count(list);
  EXPECT_EQ(tp_device_list_get(&info, list, n, err.out()), TP_INVALID_ARGUMENT);
  EXPECT_NE(err.message().find("out of range"), std::string::npos) << err.message();
  tp_device_list_free(list);
  tp_device_list_free(nullptr);
  EXPECT_EQ(tp_device_list_count(nullptr), 0u);
}

}  // namespace
