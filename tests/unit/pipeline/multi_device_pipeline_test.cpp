// One pipeline across two devices (issue #23, item 6): the text encoders on
// one device and the transformer and VAE on another, by the config's
// "component_devices". Two CPU devices stand in for two GPUs: each has its
// own budget and books, and the registry places each network on the device
// its config names. The image must be the one a single device gives, each
// network must be loaded on its device (list() and the load events say
// where), and each device's stats must hold exactly its own networks.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "device/device.h"
#include "support/pipeline_registry.h"
#include "twistedpic/pipeline.h"
#include "weights/default_options.h"

namespace tp {
namespace {

constexpr uint64_t kBudget = 1ull << 30;

// The tiny SD3 under max_speed (every network stays where it was loaded), with `extra` fields.
std::string config_json(const std::string& extra) {
  std::string json = testing::one_pipeline_json("tiny", TP_DEFAULT_MODEL_DIR, "sd3", extra);
  return json.insert(1, R"("preset": "max_speed", )");
}

Expected<std::unique_ptr<ModelRegistry>> registry_on(const std::string& json, RegistryOptions options) {
  options.background_thread = false;
  return testing::pipeline_registry(json, std::move(options));
}

Expected<std::vector<uint8_t>> pixels(ModelRegistry& registry) {
  TP_ASSIGN_OR_RETURN(auto pipeline, Pipeline::create(registry, "tiny"));
  GenerateRequest r;
  r.prompts = {"a red circle on a white background"};
  r.steps = 2;
  r.seed = 11;
  TP_ASSIGN_OR_RETURN(GenerateResult result, pipeline->generate(r));
  return std::move(result.images.at(0).rgb);
}

RegistryOptions two_cpu_devices() {
  return registry_options_on({registry_device_on(std::make_shared<CpuDevice>(kBudget, "cpu")),
                              registry_device_on(std::make_shared<CpuDevice>(kBudget, "cpu:1"))});
}

TEST(MultiDevicePipeline, TextEncodersOnOneDeviceTransformerOnAnotherGiveTheSameImage) {
  auto single = registry_on(config_json(""), registry_options_on(std::make_shared<CpuDevice>(kBudget)));
  ASSERT_TRUE(single) << single.error().to_string();
  auto want = pixels(**single);
  ASSERT_TRUE(want) << want.error().to_string();

  auto registry = registry_on(
      config_json(R"(, "device": "cpu", "component_devices": {"text_encoder": "cpu:1", "text_encoder_2": "cpu:1"})"),
      two_cpu_devices());
  ASSERT_TRUE(registry) << registry.error().to_string();
  ModelRegistry& reg = **registry;
  std::mutex mu;
  std::map<std::string, std::string> loaded_on;  // network -> device of its load event
  reg.subscribe([&](const ResidencyEvent& e) {
    std::lock_guard g(mu);
    if (e.to == Tier::kDevice && !e.failed) loaded_on[e.model] = e.device;
  });

  auto got = pixels(reg);
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_EQ(*got, *want) << "the image changed when the networks were split across two devices";

  std::map<std::string, uint64_t> held;  // device -> the device bytes of its networks
  for (const ModelInfo& m : reg.list()) {
    const bool encoder = m.name.find("/text_encoder") != std::string::npos;
    EXPECT_EQ(m.device, encoder ? "cpu:1" : "cpu") << m.name;
    EXPECT_EQ(m.tier, Tier::kDevice) << m.name << " (max_speed keeps every network)";
    std::lock_guard g(mu);
    EXPECT_EQ(loaded_on[m.name], m.device) << m.name << ": its load event names another device";
    held[m.device] += m.device_bytes;
  }
  const RegistryStats st = reg.stats();
  ASSERT_EQ(st.devices.size(), 2u);
  EXPECT_EQ(st.devices[0].name, "cpu");
  EXPECT_EQ(st.devices[1].name, "cpu:1");
  for (const DeviceStats& d : st.devices) {
    EXPECT_GT(d.held_bytes, 0u) << d.name;
    EXPECT_EQ(d.held_bytes, held[d.name]) << d.name;
    EXPECT_EQ(d.resident_models, 2u) << d.name;  // the two encoders; the transformer and the VAE
  }
  EXPECT_EQ(st.device_bytes, held["cpu"] + held["cpu:1"]);

  // The next request on the split pipeline works and gives the same image.
  auto again = pixels(reg);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(*again, *want);
}

// A network that does not fit on its named device fails with the device's
// numbers; nothing moves to the other device behind the user's back.
TEST(MultiDevicePipeline, ANetworkThatDoesNotFitItsDeviceFailsNamingIt) {
  auto registry = registry_on(config_json(R"(, "device": "cpu", "component_devices": {"transformer": "cpu:1"})"),
                              registry_options_on({registry_device_on(std::make_shared<CpuDevice>(kBudget, "cpu")),
                                                   registry_device_on(std::make_shared<CpuDevice>(1 << 20, "cpu:1"))}));
  ASSERT_TRUE(registry) << registry.error().to_string();
  auto got = pixels(**registry);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kResourceExhausted) << got.error().to_string();
  EXPECT_NE(got.error().message.find("tiny/transformer"), std::string::npos) << got.error().message;
  for (const ModelInfo& m : (*registry)->list())
    if (m.name == "tiny/transformer") {
      EXPECT_NE(m.tier, Tier::kDevice);
    }
}

TEST(MultiDevicePipeline, ComponentDevicesNamingAMissingNetworkIsRefused) {
  auto registry = registry_on(config_json(R"(, "component_devices": {"unet": "cpu:1"})"), two_cpu_devices());
  ASSERT_FALSE(registry);
  EXPECT_EQ(registry.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(registry.error().message.find("component_devices.unet"), std::string::npos) << registry.error().message;
  EXPECT_NE(registry.error().message.find("its networks: "), std::string::npos) << registry.error().message;
}

TEST(MultiDevicePipeline, ComponentDevicesMustBeDeviceNames) {
  for (const char* bad : {R"({"vae": ""})", R"({"vae": 3})", R"(["vae"])", R"({"vae": "cuda 1"})"}) {
    auto config = parse_registry_config(config_json(std::string(R"(, "component_devices": )") + bad));
    ASSERT_FALSE(config) << bad;
    EXPECT_NE(config.error().message.find("component_devices"), std::string::npos) << config.error().message;
  }
}

}  // namespace
}  // namespace tp
