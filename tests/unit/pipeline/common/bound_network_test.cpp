// Networks are bound once per load of their component and dropped with its
// device copy (src/pipeline/common/bound_network.h). Uses the VAE of the tiny
// pipeline of the ctest fixture pipeline.sd3_reference.
#include "pipeline/common/bound_network.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pipeline/common/vae.h"
#include "twistedpic/runtime.h"
#include "twistedpic/testing/simulated_backend.h"
#include "twistedpic/testing/simulated_device.h"
#include "weights/diffusers_folder.h"

namespace tp {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kVae = std::filesystem::path(TP_SD3_REFERENCE_DIR) / "plain" / "vae";

struct Fixture {
  std::unique_ptr<ModelRegistry> registry;
  nn::VaeConfig config;
};

Fixture make() {
  Fixture f;
  auto folder = read_diffusers_folder(kVae.parent_path());
  EXPECT_TRUE(folder) << folder.error().message;
  auto config = nn::parse_vae_config(folder->find("vae")->config, "vae/config.json");
  EXPECT_TRUE(config) << config.error().message;
  f.config = *config;
  auto rc = parse_registry_config(
      nlohmann::json{{"models", {{"vae", {{"path", kVae.string()}, {"dtype", "fp32"}}}}}}.dump());
  EXPECT_TRUE(rc) << rc.error().message;
  auto options = default_registry_options();
  EXPECT_TRUE(options) << options.error().message;
  auto registry = ModelRegistry::create(*rc, *options);
  EXPECT_TRUE(registry) << registry.error().message;
  f.registry = std::move(*registry);
  return f;
}

TEST(BoundNetworkTest, BindsOncePerLoadAndDropsWithTheDeviceCopy) {
  Fixture f = make();
  std::weak_ptr<const nn::VaeDecoder> first;
  {
    auto lease = f.registry->acquire("vae");
    ASSERT_TRUE(lease) << lease.error().message;
    auto a = nn::bind_lease<nn::VaeDecoder>(*lease, f.config, "k");
    ASSERT_TRUE(a) << a.error().message;
    auto again = nn::bind_lease<nn::VaeDecoder>(*lease, f.config, "k");
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(a->net.get(), again->net.get()) << "bound twice in one load";
    EXPECT_EQ(a->device, at::Device(at::kCPU));
    EXPECT_EQ(a->dtype, at::kFloat);
    auto other_key = nn::bind_lease<nn::VaeDecoder>(*lease, f.config, "another folder");
    ASSERT_TRUE(other_key);
    EXPECT_NE(a->net.get(), other_key->net.get());
    first = a->net;
  }
  {
    auto lease = f.registry->acquire("vae");  // still resident: the same binding
    ASSERT_TRUE(lease);
    auto b = nn::bind_lease<nn::VaeDecoder>(*lease, f.config, "k");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->net.get(), first.lock().get());
  }
  ASSERT_TRUE(f.registry->unload("vae", Tier::kHost));
  EXPECT_TRUE(first.expired()) << "the binding outlived the device copy";
  auto lease = f.registry->acquire("vae");  // back from the host tier: bound anew
  ASSERT_TRUE(lease);
  auto c = nn::bind_lease<nn::VaeDecoder>(*lease, f.config, "k");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->net);
}

TEST(BoundNetworkTest, ABindErrorIsReturnedAndNothingIsKept) {
  Fixture f = make();
  nn::VaeConfig wrong = f.config;
  wrong.latent_channels += 1;  // disagrees with the weights
  auto lease = f.registry->acquire("vae");
  ASSERT_TRUE(lease);
  auto bad = nn::bind_lease<nn::VaeDecoder>(*lease, wrong, "k");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message, HasSubstr("model 'vae': "));
  EXPECT_THAT(bad.error().message, HasSubstr("has shape"));
  EXPECT_TRUE(nn::bind_lease<nn::VaeDecoder>(*lease, f.config, "k")) << "a failed bind must not poison the key";
}

TEST(BoundNetworkTest, SimulatedWeightsAreRefused) {
  auto device = std::make_shared<SimulatedDevice>(1 << 20);
  RegistryOptions options;
  options.backend = std::make_shared<SimulatedBackend>(device);
  options.monitor = device;
  auto rc = parse_registry_config(R"({"models": {"m": {"path": "/nowhere", "size_bytes": 1024}}})");
  ASSERT_TRUE(rc) << rc.error().message;
  auto registry = ModelRegistry::create(*rc, options);
  ASSERT_TRUE(registry) << registry.error().message;
  auto lease = (*registry)->acquire("m");
  ASSERT_TRUE(lease) << lease.error().message;
  auto net = nn::bind_lease<nn::VaeDecoder>(*lease, nn::VaeConfig{}, "k");
  ASSERT_FALSE(net);
  EXPECT_EQ(net.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(net.error().message, HasSubstr("model 'm' is not backed by real tensors"));
}

}  // namespace
}  // namespace tp
