#include "weights/diffusers_folder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/weights_test_util.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::one_tensor_file;
using testing_util::ScratchDir;
using testing_util::write_file;

constexpr const char* kModelIndex = R"({
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.30.0",
  "feature_extractor": null,
  "requires_safety_checker": true,
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
})";

// A small but complete pipeline folder: a single-file unet (with an fp16
// variant beside it), a sharded text encoder, a vae, a scheduler, a tokenizer.
void make_pipeline(const fs::path& root) {
  write_file(root / "model_index.json", kModelIndex);
  write_file(root / "unet/config.json", R"({"sample_size": 64})");
  write_file(root / "unet/diffusion_pytorch_model.safetensors", one_tensor_file());
  write_file(root / "unet/diffusion_pytorch_model.fp16.safetensors", one_tensor_file());
  write_file(root / "vae/config.json", R"({"latent_channels": 4})");
  write_file(root / "vae/diffusion_pytorch_model.safetensors", one_tensor_file());
  write_file(root / "text_encoder/config.json", R"({"hidden_size": 768})");
  write_file(root / "text_encoder/model-00001-of-00002.safetensors", one_tensor_file("a"));
  write_file(root / "text_encoder/model-00002-of-00002.safetensors", one_tensor_file("b"));
  write_file(root / "text_encoder/model.safetensors.index.json",
             R"({"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  write_file(root / "scheduler/scheduler_config.json", R"({"num_train_timesteps": 1000})");
  write_file(root / "tokenizer/tokenizer_config.json", R"({"model_max_length": 77})");
  write_file(root / "tokenizer/vocab.json", "{}");
}

TEST(DiffusersFolderTest, ReadsPipelineFolder) {
  ScratchDir dir;
  make_pipeline(dir.path());
  auto f = read_diffusers_folder(dir.path());
  ASSERT_TRUE(f) << f.error().to_string();
  EXPECT_EQ(f->class_name, "StableDiffusionPipeline");
  EXPECT_EQ(f->diffusers_version, "0.30.0");
  EXPECT_EQ(f->absent_components, (std::vector<std::string>{"feature_extractor", "safety_checker"}));
  ASSERT_EQ(f->components.size(), 5u);
  EXPECT_EQ(f->components[0].name, "scheduler");  // sorted by name
  EXPECT_EQ(f->find("safety_checker"), nullptr);

  const DiffusersComponent* unet = f->find("unet");
  ASSERT_NE(unet, nullptr);
  EXPECT_EQ(unet->library, "diffusers");
  EXPECT_EQ(unet->class_name, "UNet2DConditionModel");
  EXPECT_EQ(unet->folder, dir / "unet");
  EXPECT_EQ(unet->config_file, "config.json");
  EXPECT_EQ(unet->config, nlohmann::json({{"sample_size", 64}}));
  EXPECT_EQ(unet->weight_files, (std::vector<fs::path>{dir / "unet/diffusion_pytorch_model.safetensors"}));
  EXPECT_TRUE(unet->weights_index.empty());

  const DiffusersComponent* te = f->find("text_encoder");
  ASSERT_NE(te, nullptr);
  EXPECT_EQ(te->library, "transformers");
  EXPECT_EQ(te->weights_index, dir / "text_encoder/model.safetensors.index.json");
  EXPECT_EQ(te->weight_files, (std::vector<fs::path>{dir / "text_encoder/model-00001-of-00002.safetensors",
                                                     dir / "text_encoder/model-00002-of-00002.safetensors"}));

  const DiffusersComponent* scheduler = f->find("scheduler");
  EXPECT_EQ(scheduler->config_file, "scheduler_config.json");
  EXPECT_FALSE(scheduler->has_weights());
  EXPECT_EQ(f->find("tokenizer")->config_file, "tokenizer_config.json");
  EXPECT_TRUE(f->find("vae")->has_weights());
}

TEST(DiffusersFolderTest, MissingComponentFolder) {
  ScratchDir dir;
  make_pipeline(dir.path());
  fs::remove_all(dir / "vae");
  auto f = read_diffusers_folder(dir.path());
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(f.error().message,
              HasSubstr("component 'vae' (class 'AutoencoderKL' from 'diffusers') is listed in model_index.json"));
  EXPECT_THAT(f.error().message, HasSubstr((dir / "vae").string() + " does not exist"));
}

TEST(DiffusersFolderTest, RefusesPickleOnlyWeights) {
  ScratchDir dir;
  make_pipeline(dir.path());
  fs::remove(dir / "vae/diffusion_pytorch_model.safetensors");
  write_file(dir / "vae/diffusion_pytorch_model.bin", "pickle");
  auto f = read_diffusers_folder(dir.path());
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(f.error().message, HasSubstr("component 'vae': only pickle weights (diffusion_pytorch_model.bin)"));
  EXPECT_THAT(f.error().message, HasSubstr("never executes pickles"));
}

TEST(DiffusersFolderTest, WeightErrors) {
  ScratchDir dir;
  make_pipeline(dir.path());
  fs::remove(dir / "vae/diffusion_pytorch_model.safetensors");
  auto none = read_diffusers_folder(dir.path());
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(none.error().message, HasSubstr("component 'vae': no weights in"));
  // Configs only (the networks' weights come from a single-file checkpoint):
  // absent weights are fine, ambiguous ones still are not.
  auto configs_only = read_diffusers_folder(dir.path(), /*require_weights=*/false);
  ASSERT_TRUE(configs_only) << configs_only.error().to_string();
  EXPECT_TRUE(configs_only->find("vae")->weight_files.empty());
  EXPECT_FALSE(configs_only->find("vae")->config.is_null());

  // A single non-standard file is taken; two are ambiguous.
  write_file(dir / "vae/vae.fp16.safetensors", one_tensor_file());
  auto single = read_diffusers_folder(dir.path());
  ASSERT_TRUE(single) << single.error().to_string();
  EXPECT_EQ(single->find("vae")->weight_files, (std::vector<fs::path>{dir / "vae/vae.fp16.safetensors"}));
  write_file(dir / "vae/vae.bf16.safetensors", one_tensor_file());
  auto ambiguous = read_diffusers_folder(dir.path());
  ASSERT_FALSE(ambiguous);
  EXPECT_FALSE(read_diffusers_folder(dir.path(), /*require_weights=*/false));
  EXPECT_EQ(ambiguous.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(ambiguous.error().message, HasSubstr("component 'vae': ambiguous weights in " + (dir / "vae").string() +
                                                   ": vae.bf16.safetensors, vae.fp16.safetensors"));

  // A broken index is reported with its component.
  fs::remove(dir / "text_encoder/model-00002-of-00002.safetensors");
  write_file(dir / "vae/diffusion_pytorch_model.safetensors", one_tensor_file());
  auto shard = read_diffusers_folder(dir.path());
  ASSERT_FALSE(shard);
  EXPECT_EQ(shard.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(shard.error().message, HasSubstr("component 'text_encoder': "));
  EXPECT_THAT(shard.error().message, HasSubstr("shard 'model-00002-of-00002.safetensors' does not exist"));
}

TEST(DiffusersFolderTest, ModelIndexErrors) {
  ScratchDir dir;
  auto absent = read_diffusers_folder(dir / "nope");
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code, ErrorCode::kNotFound);

  auto no_index = read_diffusers_folder(dir.path());
  ASSERT_FALSE(no_index);
  EXPECT_EQ(no_index.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(no_index.error().message, HasSubstr("not a diffusers model folder"));

  struct Case {
    const char* json;
    const char* part;
  };
  for (const Case& c : {
           Case{R"({"vae": ["diffusers", "AutoencoderKL"]})", "\"_class_name\" is missing"},
           Case{R"({"_class_name": "P", "vae": ["diffusers"]})", "component 'vae': model_index.json entry must be"},
           Case{R"({"_class_name": "P", "vae": [1, 2]})", "entry must be [library, class] or null"},
           Case{R"({"_class_name": "P", "..": ["diffusers", "X"]})", "not a valid component name"},
           Case{R"({"_class_name": "P", "vae": null, "vae": null})", "duplicate key 'vae'"},
           Case{R"({"_class_name": )", "invalid JSON"},
       }) {
    SCOPED_TRACE(c.json);
    write_file(dir / "model_index.json", c.json);
    auto f = read_diffusers_folder(dir.path());
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(f.error().message, HasSubstr(c.part));
  }

  write_file(dir / "model_index.json", R"({"_class_name": "P", "unet": ["diffusers", "U"]})");
  write_file(dir / "unet/config.json", "[1]");
  auto bad_config = read_diffusers_folder(dir.path());
  ASSERT_FALSE(bad_config);
  EXPECT_EQ(bad_config.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad_config.error().message, HasSubstr("component 'unet': "));
  EXPECT_THAT(bad_config.error().message, HasSubstr("config.json: JSON is an array, not an object"));
}

}  // namespace
}  // namespace tp
