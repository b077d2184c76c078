#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "twistedpic/config.h"

namespace tp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ConfigTest, SeedImageModelsMapDirectly) {
  // The seed's IMAGE_MODELS dictionary, as JSON.
  auto c = parse_registry_config(R"({
    "preset": "max_gpu_availability",
    "models": {
      "sd3_large": {"model_id": "stabilityai/stable-diffusion-3.5-large", "pipeline_type": "sd3"},
      "sdxl": {"model_id": "stabilityai/stable-diffusion-xl-base-1.0", "pipeline_type": "sdxl"}
    }
  })");
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_EQ(c->models.size(), 2u);
  const ModelConfig* m = c->find("sd3_large");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->source, "stabilityai/stable-diffusion-3.5-large");
  EXPECT_EQ(m->pipeline_type, "sd3");
  EXPECT_EQ(m->dtype, DType::kBF16);
  EXPECT_EQ(c->find("sdxl")->pipeline_type, "sdxl");
  EXPECT_EQ(c->policy.unload_after, Tier::kHost);
  EXPECT_TRUE(c->policy.clean_caches);
}

TEST(ConfigTest, PresetsMatchTheSeedsThreeSetups) {
  auto avail = policy_preset("max_gpu_availability").value();
  EXPECT_EQ(avail.unload_after, Tier::kHost);
  EXPECT_TRUE(avail.clean_caches);
  auto balanced = policy_preset("balanced").value();
  EXPECT_EQ(balanced.unload_after, Tier::kDevice);
  EXPECT_TRUE(balanced.clean_caches);
  auto speed = policy_preset("max_speed").value();
  EXPECT_EQ(speed.unload_after, Tier::kDevice);
  EXPECT_FALSE(speed.clean_caches);
  auto bad = policy_preset("fastest");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("unknown preset 'fastest'"));
}

TEST(ConfigTest, EveryFieldParsesAndOverridesThePreset) {
  auto c = parse_registry_config(R"({
    "preset": "balanced",
    "models": {
      "m": {"path": "/models/m", "pipeline_type": "sd3", "dtype": "fp16", "device": "cuda:0",
            "priority": 7, "pinned": true, "eager": true, "workspace_bytes": "1.5GiB", "size_bytes": 1024,
            "policy": {"unload_after": "disk", "idle_timeout_s": 0, "idle_unload_to": "disk"}}
    },
    "policy": {"unload_after": "host", "idle_timeout_s": 300, "eager": false, "clean_caches": false,
               "lru": {"max_models": 2, "max_bytes": "24GiB"}, "pressure": {"min_free_bytes": "2GB"}},
    "host_budget_bytes": "32GiB", "device_budget_bytes": 1000, "admission_timeout_ms": 5000,
    "monitor_interval_ms": 100
  })");
  ASSERT_TRUE(c) << c.error().to_string();
  const ModelConfig& m = c->models.at(0);
  EXPECT_EQ(m.name, "m");
  EXPECT_EQ(m.source, "/models/m");
  EXPECT_EQ(m.dtype, DType::kF16);
  EXPECT_EQ(m.device, "cuda:0");
  EXPECT_EQ(m.priority, 7);
  EXPECT_TRUE(m.pinned);
  EXPECT_EQ(m.eager, true);
  EXPECT_EQ(m.workspace_bytes, 1610612736u);
  EXPECT_EQ(m.size_bytes, 1024u);
  EXPECT_EQ(m.policy.unload_after, Tier::kDisk);
  EXPECT_EQ(m.policy.idle_timeout_s, 0.0);
  EXPECT_EQ(m.policy.idle_unload_to, Tier::kDisk);
  EXPECT_EQ(c->policy.unload_after, Tier::kHost);
  EXPECT_EQ(c->policy.idle_timeout_s, 300.0);
  EXPECT_FALSE(c->policy.clean_caches);
  EXPECT_EQ(c->policy.lru_max_models, 2u);
  EXPECT_EQ(c->policy.lru_max_bytes, 24ull << 30);
  EXPECT_EQ(c->policy.min_free_bytes, 2000000000u);
  EXPECT_EQ(c->host_budget_bytes, 32ull << 30);
  EXPECT_EQ(c->device_budget_bytes, 1000u);
  EXPECT_EQ(c->admission_timeout.count(), 5000);
  EXPECT_EQ(c->monitor_interval.count(), 100);
}

struct BadConfig {
  const char* json;
  const char* message;
};

class ConfigErrorTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ConfigErrorTest, NamesTheFileTheFieldAndTheProblem) {
  auto c = parse_registry_config(GetParam().json, "twistedpic.json");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(c.error().message, HasSubstr(GetParam().message));
  EXPECT_EQ(c.error().message.rfind("twistedpic.json: ", 0), 0u) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Errors, ConfigErrorTest,
    ::testing::Values(
        BadConfig{"{", "invalid JSON at byte 2"},
        BadConfig{"[]", "the config must be a JSON object"},
        BadConfig{"{}", "models: missing"},
        BadConfig{R"({"models": []})", "models: expected an object mapping names to models, got array"},
        BadConfig{R"({"models": {"a": 3}})", "models.a: expected an object, got number"},
        BadConfig{R"({"models": {"a": {}}})", "models.a: missing \"model_id\""},
        BadConfig{R"({"models": {"a": {"model_id": "x", "path": "y"}}})", "models.a: give only one of"},
        BadConfig{R"({"models": {"a": {"model_id": ""}}})", "models.a.model_id: must not be empty"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "dtype": "bf17"}}})",
                  "models.a.dtype: unknown dtype 'bf17' (expected fp32, fp16 or bf16)"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "dtype": "int8"}}})", "models.a.dtype: unknown dtype 'int8'"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "priority": "high"}}})",
                  "models.a.priority: expected an integer, got \"high\""},
        BadConfig{R"({"models": {"a": {"model_id": "x", "pinned": 1}}})", "models.a.pinned: expected true or false"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "colour": "red"}}})", "models.a.colour: unknown field"},
        BadConfig{R"({"models": {"a": {"path": "x", "checkpoint": ""}}})",
                  "models.a.checkpoint: must be the path of a single-file checkpoint"},
        BadConfig{R"({"models": {"a": {"path": "x", "checkpoint": 3}}})",
                  "models.a.checkpoint: expected a string, got number"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "policy": {"unload_after": "gpu"}}}})",
                  "models.a.policy.unload_after: expected \"host\", \"disk\", \"keep\" or a boolean, got \"gpu\""},
        BadConfig{R"({"models": {"a": {"model_id": "x", "policy": {"idle_unload_to": "keep"}}}})",
                  "models.a.policy.idle_unload_to: expected \"host\" or \"disk\""},
        BadConfig{R"({"models": {"a": {"model_id": "x", "workspace_bytes": -5}}})",
                  "models.a.workspace_bytes: expected a byte size"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "workspace_bytes": "5 parsecs"}}})",
                  "models.a.workspace_bytes: '5 parsecs' has an unknown unit 'parsecs'"},
        BadConfig{R"({"preset": "turbo", "models": {"a": {"model_id": "x"}}})", "preset: unknown preset 'turbo'"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "policy": {"lru": {"max_models": -1}}})",
                  "policy.lru.max_models: must be >= 0"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "policy": {"idle_timeout_s": "soon"}})",
                  "policy.idle_timeout_s: expected a number"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "admission_timeout_ms": -1})",
                  "admission_timeout_ms: expected a non-negative integer"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "monitor_interval_ms": 0})",
                  "monitor_interval_ms: must be positive"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "gpu": true})", "gpu: unknown field"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "priority": 1e999}}})", "invalid JSON"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "policy": {"idle_timeout_s": 1e300}})",
                  "policy.idle_timeout_s: must be at most 315360000 s (10 years)"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "policy": {"idle_timeout_s": 1e12}}}})",
                  "models.a.policy.idle_timeout_s: must be at most"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "admission_timeout_ms": 9223372036854775807})",
                  "admission_timeout_ms: must be between 0 and 10 years"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "monitor_interval_ms": 9000000000000})",
                  "monitor_interval_ms: must be at most"},
        BadConfig{R"({"models": {"a": {"model_id": "x", "device": "cuda 1"}}})",
                  "models.a.device: model 'a': 'device' is 'cuda 1'; expected a device name such as 'cuda:1'"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "devices": {"cuda:1": {"budget": 5}}})",
                  "devices.cuda:1.budget: unknown field"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "devices": {"cuda:1": {"budget_bytes": "lots"}}})",
                  "devices.cuda:1.budget_bytes: "},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "devices": {"cuda:1": 5}})",
                  "devices.cuda:1: expected an object"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "devices": ["cuda:1"]})", "devices: expected an object"},
        BadConfig{R"({"models": {"a": {"model_id": "x"}}, "devices": {"auto": {}}})",
                  "devices.auto: 'auto' is not a device name"}),
    [](const ::testing::TestParamInfo<BadConfig>& i) { return "case" + std::to_string(i.index); });

TEST(ConfigTest, ASingleFileCheckpointBesideTheFolder) {
  auto c = parse_registry_config(R"({"models": {"xl": {"path": "/m/sdxl-configs",
                                     "checkpoint": "/m/sd_xl_base_1.0.safetensors"}}})",
                                 "twistedpic.json");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->models.at(0).source, "/m/sdxl-configs");
  EXPECT_EQ(c->models.at(0).checkpoint, "/m/sd_xl_base_1.0.safetensors");
  EXPECT_EQ(c->models.at(0).tensor_selection, nullptr);  // set by expand_pipeline_components, never by a config
}

// The parser itself is tested in tests/unit/util/bytes_test.cpp; here, the
// public tp::parse_byte_size that forwards to it, and byte sizes in a config.
TEST(ConfigTest, ByteSizesInAConfig) {
  EXPECT_EQ(parse_byte_size("4GiB").value(), 4ull << 30);
  EXPECT_EQ(parse_byte_size("18446744073709551615").value(), 18446744073709551615ull);  // UINT64_MAX
  EXPECT_EQ(parse_byte_size("18446744073709551616").error().code, ErrorCode::kInvalidArgument);
  // In a config, the error names the field.
  auto c = parse_registry_config(R"({"models": {"a": {"model_id": "x", "workspace_bytes": "18446744073709551616"}}})",
                                 "twistedpic.json");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(c.error().message, HasSubstr("twistedpic.json: models.a.workspace_bytes: '18446744073709551616' is too large"));
  auto big = parse_registry_config(R"({"models": {"a": {"model_id": "x"}}, "host_budget_bytes": "10000000000000000000"})");
  ASSERT_TRUE(big) << big.error().to_string();
  EXPECT_EQ(big->host_budget_bytes.value(), 10000000000000000000ull);
}

// nlohmann keeps the last of duplicate keys; a config refuses them, naming the key.
TEST(ConfigTest, DuplicateKeysAreErrorsNamingTheKey) {
  struct Case {
    const char* json;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"models": {"a": {"model_id": "x"}, "a": {"model_id": "y"}}})", "duplicate key 'a' in 'models'"},
           Case{R"({"models": {"a": {"model_id": "x"}}, "models": {"b": {"model_id": "y"}}})", "duplicate key 'models'"},
           Case{R"({"models": {"a": {"model_id": "x", "pinned": true, "pinned": false}}})", "duplicate key 'pinned' in 'a'"},
           Case{R"({"models": {"a": {"model_id": "x"}}, "policy": {"lru": {"max_models": 1, "max_models": 2}}})",
                "duplicate key 'max_models' in 'lru'"},
       }) {
    auto config = parse_registry_config(c.json, "twistedpic.json");
    ASSERT_FALSE(config) << c.json;
    EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(config.error().message, HasSubstr(c.message));
    EXPECT_EQ(config.error().message.rfind("twistedpic.json: ", 0), 0u) << config.error().message;
  }
}

TEST(ConfigTest, DirectoryIsInvalidArgumentSayingSo) {
  const std::string dir = ::testing::TempDir() + "/tp_config_test_dir.json";
  std::filesystem::create_directories(dir);
  auto config = load_registry_config(dir);
  std::filesystem::remove_all(dir);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument) << config.error().message;
  EXPECT_THAT(config.error().message, HasSubstr(": is a directory, not a regular file"));
  EXPECT_THAT(config.error().message, Not(HasSubstr("invalid JSON")));
}

TEST(ConfigTest, FileErrorsNameTheFile) {
  auto missing = load_registry_config("/nonexistent/twistedpic.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent/twistedpic.json: cannot open"));

  std::string path = ::testing::TempDir() + "/tp_config_test.json";
  {
    std::ofstream out(path);
    out << R"({"models": {"a": {"model_id": "x", "dtype": "fp64"}}})";
  }
  auto bad = load_registry_config(path);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr(path + ": models.a.dtype: unknown dtype 'fp64'"));
  std::remove(path.c_str());
}

TEST(ConfigTest, ValidateCatchesCodeBuiltMistakes) {
  RegistryConfig c;
  EXPECT_THAT(validate_registry_config(c).error().message, HasSubstr("declare at least one model"));
  ModelConfig m;
  m.name = "a";
  m.source = "x";
  c.models = {m, m};
  EXPECT_THAT(validate_registry_config(c).error().message, HasSubstr("models.a: duplicate model name"));
  c.models = {m};
  c.models[0].source.clear();
  EXPECT_THAT(validate_registry_config(c).error().message, HasSubstr("models.a: empty source"));
}

// ModelConfig.device names a device of the registry (checked against its
// devices by ModelRegistry::create), "auto", or nothing (the first device).
// The config refuses what cannot be a device name.
TEST(ConfigTest, DeviceNamesAreCheckedForShapeOnly) {
  auto absent = parse_registry_config(R"({"models": {"a": {"model_id": "x"}}})");
  ASSERT_TRUE(absent) << absent.error().to_string();
  EXPECT_EQ(absent->models.at(0).device, "");
  EXPECT_EQ(absent->models.at(0).device, kDefaultModelDevice);
  for (const char* device : {"cuda:0", "cuda:1", "cpu", "auto", "simulated:2", ""}) {
    const std::string json = std::string(R"({"models": {"a": {"model_id": "x", "device": ")") + device + R"("}}})";
    auto given = parse_registry_config(json);
    ASSERT_TRUE(given) << device << ": " << given.error().to_string();
    EXPECT_EQ(given->models.at(0).device, device);
  }
  for (const char* device : {"cuda:0 ", "cuda 1", "gpu/0", "\u00e9"}) {
    const std::string json =
        std::string(R"({"models": {"sd": {"model_id": "x", "device": ")") + device + R"("}}})";
    auto c = parse_registry_config(json, "twistedpic.json");
    ASSERT_FALSE(c) << device;
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(c.error().message, HasSubstr("twistedpic.json: models.sd.device: model 'sd': 'device' is '"));
  }

  // A config built in code is held to the same rule (the registry validates it too).
  RegistryConfig code;
  ModelConfig m;
  m.name = "b";
  m.source = "x";
  m.device = "cuda\t1";
  code.models = {m};
  auto st = validate_registry_config(code);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(st.error().message, HasSubstr("models.b.device: model 'b': 'device' is "));
  code.models[0].device = "cuda:1";
  EXPECT_TRUE(validate_registry_config(code));
}

TEST(ConfigTest, PerDeviceBudgets) {
  auto c = parse_registry_config(R"({"models": {"a": {"model_id": "x"}}, "device_budget_bytes": "8GiB",
                                     "devices": {"cuda:1": {"budget_bytes": "20GiB"}, "cuda:2": {}}})");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->device_budget_bytes, 8ull << 30);
  ASSERT_EQ(c->devices.size(), 2u);
  EXPECT_EQ(c->devices.at("cuda:1").budget_bytes, 20ull << 30);
  EXPECT_FALSE(c->devices.at("cuda:2").budget_bytes.has_value());
  auto twice = parse_registry_config(R"({"models": {"a": {"model_id": "x"}},
                                         "devices": {"cuda:1": {}, "cuda:1": {"budget_bytes": 1}}})");
  ASSERT_FALSE(twice);
  EXPECT_THAT(twice.error().message, HasSubstr("cuda:1"));
}

// A name with a NUL or another control character cannot travel as a C string
// or in a log line (found by the C ABI fuzzer: a host policy saw "" for one).
TEST(ConfigTest, ModelNamesWithControlCharactersAreRefused) {
  for (const char* json : {R"({"models": {"a\u0000b": {"path": "/m"}}})", R"({"models": {"a\nb": {"path": "/m"}}})"}) {
    SCOPED_TRACE(json);
    auto c = parse_registry_config(json);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(c.error().message.find("contains a control character"), std::string::npos) << c.error().message;
  }
  EXPECT_TRUE(parse_registry_config(R"({"models": {"caf\u00e9 x/y": {"path": "/m"}}})"));
}

}  // namespace
}  // namespace tp
