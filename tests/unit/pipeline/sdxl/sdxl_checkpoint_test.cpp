// SDXL single-file checkpoints (pipeline/sdxl/sdxl_checkpoint.h): every
// network read from the Stability-layout file equals, tensor for tensor and
// bit for bit, the same network read from its diffusers folder; the parts
// reach the registry through expand_pipeline_components; and a checkpoint
// that lacks a part, has a key that maps nowhere or a shape that does not fit
// the config is refused by name.
//
// Fixtures: scripts/sdxl_reference.py's tiny folders (base; vpred, whose
// per-block layers_per_block and 1x1-convolution projections change the
// numbering), converted by scripts/sdxl_single_file.py into
// <variant>.single_file.safetensors beside them (the base one checked by
// diffusers' from_single_file), and base.single_file_no_vae.safetensors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/Functions.h>

#include <fstream>
#include <set>

#include "device/device.h"
#include "pipeline/sdxl/sdxl_checkpoint.h"
#include "support/weights_test_util.h"
#include "torch/tensors.h"
#include "twistedpic/pipeline.h"
#include "weights/tensor_weights.h"

namespace tp {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kRoot = TP_SDXL_REFERENCE_DIR;

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

struct Configs {
  sdxl::UNetConfig unet;
  nn::ClipConfig clip, clip2;
  nn::VaeConfig vae;
};

Configs read_configs(const std::filesystem::path& folder) {
  Configs c;
  c.unet = sdxl::parse_unet_config(read_json(folder / "unet/config.json"), "unet").value();
  c.clip = nn::parse_clip_config(read_json(folder / "text_encoder/config.json"), "text_encoder").value();
  c.clip2 = nn::parse_clip_config(read_json(folder / "text_encoder_2/config.json"), "text_encoder_2").value();
  c.vae = nn::parse_vae_config(read_json(folder / "vae/config.json"), "vae").value();
  return c;
}

Expected<TensorSelection> part_of(std::string_view component, const SafetensorsHeader& header, const Configs& c,
                                  std::string_view file) {
  if (component == "unet") return sdxl::unet_part(header, c.unet, file);
  if (component == "text_encoder") return sdxl::clip_l_part(header, c.clip, file);
  if (component == "text_encoder_2") return sdxl::clip_g_part(header, c.clip2, file);
  return sdxl::vae_part(header, c.vae, file);
}

class Loaded {
 public:
  explicit Loaded(std::vector<WeightFile> files) {
    auto device = std::make_shared<CpuDevice>(1ull << 32);
    auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 4);
    weights_ = TensorWeights::open(std::move(files), std::nullopt, device, pool).value();
    EXPECT_TRUE(weights_->load_to_device({}));
    views_ = torch_bridge::tensor_views(*weights_).value();
  }
  const std::unordered_map<std::string, at::Tensor>& views() const { return views_; }
  const TensorWeights& weights() const { return *weights_; }

 private:
  std::unique_ptr<TensorWeights> weights_;
  std::unordered_map<std::string, at::Tensor> views_;
};

// transformers >= 5.6 saves CLIPTextModel without its "text_model." wrapper; the checkpoint's names keep it.
std::string canonical(std::string_view component, const std::string& name) {
  return component == "text_encoder" && name.starts_with("text_model.") ? name.substr(11) : name;
}

class SdxlCheckpointReferenceTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SdxlCheckpointReferenceTest, EveryNetworkEqualsItsFolderBitForBit) {
  const std::string variant = GetParam();
  const auto folder = kRoot / variant;
  const auto file = kRoot / (variant + ".single_file.safetensors");
  const Configs configs = read_configs(folder);
  const SafetensorsHeader header = read_safetensors_header(file).value();
  size_t picked = 0, transposed = 0, split = 0;
  for (const auto& part : sdxl::kCheckpointParts) {
    const std::string component(part.component);
    SCOPED_TRACE(variant + " " + component);
    auto selection = part_of(component, header, configs, file.string());
    ASSERT_TRUE(selection) << selection.error().message;
    picked += selection->picks.size();
    for (const TensorPick& p : selection->picks) {
      transposed += p.transposed;
      split += p.row_end != -1;
    }
    Loaded single({{file, "", std::make_shared<const TensorSelection>(*selection)}});
    Loaded reference(model_weight_files((folder / component).string()).value());
    std::map<std::string, at::Tensor> got, want;
    for (const auto& [name, t] : single.views()) got[canonical(component, name)] = t;
    for (const auto& [name, t] : reference.views()) want[canonical(component, name)] = t;
    std::set<std::string> got_names, want_names;
    for (const auto& [name, t] : got) got_names.insert(name);
    for (const auto& [name, t] : want) want_names.insert(name);
    ASSERT_EQ(got_names, want_names);
    for (const auto& [name, w] : want) {
      const at::Tensor& g = got.at(name);
      ASSERT_EQ(g.sizes(), w.sizes()) << name;
      ASSERT_EQ(g.scalar_type(), w.scalar_type()) << name;
      EXPECT_TRUE(at::equal(g, w)) << name << " differs";
    }
    if (component == "text_encoder_2") {
      // OpenCLIP's (H, P) text_projection, read as transformers' (P, H) without a copy.
      const at::Tensor& projection = got.at("text_projection.weight");
      EXPECT_FALSE(projection.is_contiguous());
      EXPECT_EQ(projection.size(0), configs.clip2.projection_dim);
      EXPECT_EQ(projection.size(1), configs.clip2.hidden_size);
    }
  }
  EXPECT_EQ(transposed, 1u);                                              // text_projection
  EXPECT_EQ(split, 3u * 2u * static_cast<size_t>(configs.clip2.layers));  // q, k, v of each in_proj weight and bias
  // Every tensor of the file is read, once, but for the fused in_proj ones (three picks each).
  EXPECT_EQ(picked, header.tensors.size() + 2u * 2u * static_cast<size_t>(configs.clip2.layers));
}

INSTANTIATE_TEST_SUITE_P(Variants, SdxlCheckpointReferenceTest, ::testing::Values("base", "vpred"));

// The registry config's "checkpoint": four registry models that read their parts of one file.
RegistryConfig sdxl_config(const std::filesystem::path& folder, const std::filesystem::path& checkpoint) {
  RegistryConfig config;
  ModelConfig m;
  m.name = "xl";
  m.source = folder.string();
  m.checkpoint = checkpoint.string();
  m.pipeline_type = "sdxl";
  m.dtype = DType::kF32;
  config.models.push_back(m);
  return config;
}

TEST(SdxlCheckpointExpandReferenceTest, EachNetworkBecomesAModelReadingItsPart) {
  // A folder with the configs, tokenizers and scheduler but no weights: the checkpoint gives them.
  testing_util::ScratchDir dir;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(kRoot / "base")) {
    const auto rel = std::filesystem::relative(entry.path(), kRoot / "base");
    if (entry.is_directory()) std::filesystem::create_directories(dir / rel.string());
    else if (entry.path().extension() != ".safetensors") std::filesystem::copy_file(entry.path(), dir / rel.string());
  }
  const auto file = kRoot / "base.single_file.safetensors";
  auto expanded = expand_pipeline_components(sdxl_config(dir.path(), file));
  ASSERT_TRUE(expanded) << expanded.error().message;
  ASSERT_EQ(expanded->models.size(), 4u);
  auto device = std::make_shared<CpuDevice>(1ull << 32);
  TensorWeightBackend backend(device);
  for (const ModelConfig& unit : expanded->models) {
    SCOPED_TRACE(unit.name);
    EXPECT_EQ(unit.source, file.string());
    ASSERT_NE(unit.tensor_selection, nullptr);
    EXPECT_TRUE(unit.checkpoint.empty());
    auto weights = backend.open(unit);
    ASSERT_TRUE(weights) << weights.error().message;
    EXPECT_EQ(static_cast<TensorWeights&>(**weights).tensors().size(), unit.tensor_selection->picks.size());
  }
}

TEST(SdxlCheckpointExpandReferenceTest, ACheckpointWithoutItsVaeNamesThePart) {
  auto expanded = expand_pipeline_components(sdxl_config(kRoot / "base", kRoot / "base.single_file_no_vae.safetensors"));
  ASSERT_FALSE(expanded);
  EXPECT_EQ(expanded.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(expanded.error().message, HasSubstr("model 'xl': "));
  EXPECT_THAT(expanded.error().message, HasSubstr("base.single_file_no_vae.safetensors: the checkpoint has no "
                                                  "first_stage_model.* (the VAE)"));
}

// The base checkpoint's header with one tensor changed by `edit`.
SafetensorsHeader edited(const std::function<void(std::vector<TensorInfo>&)>& edit) {
  SafetensorsHeader h = read_safetensors_header(kRoot / "base.single_file.safetensors").value();
  edit(h.tensors);
  std::sort(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return h;
}

TEST(SdxlCheckpointErrorsReferenceTest, UnmappedKeysAndMisfitShapesAreNamed) {
  const Configs c = read_configs(kRoot / "base");
  auto extra = edited([](auto& t) {
    TensorInfo x = t.front();
    x.name = "model.diffusion_model.input_blocks.99.0.in_layers.0.weight";
    t.push_back(x);
  });
  auto unet = sdxl::unet_part(extra, c.unet, "xl.safetensors");
  ASSERT_FALSE(unet);
  EXPECT_EQ(unet.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(unet.error().message,
              HasSubstr("xl.safetensors: the UNet (model.diffusion_model.*): 1 key(s) that map to no diffusers name "
                        "under the folder's config: 'model.diffusion_model.input_blocks.99.0.in_layers.0.weight'"));

  const std::string in_proj = "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight";
  auto narrow = edited([&](auto& t) {
    for (auto& x : t)
      if (x.name == in_proj) x.shape = {x.shape[0] / 3 * 2, x.shape[1] * 3 / 2};
  });
  auto clip_g = sdxl::clip_g_part(narrow, c.clip2, "xl.safetensors");
  ASSERT_FALSE(clip_g);
  EXPECT_THAT(clip_g.error().message, HasSubstr("OpenCLIP-G, the second text encoder (conditioner.embedders.1.model.*): '" +
                                                in_proj + "' has shape"));
  EXPECT_THAT(clip_g.error().message, HasSubstr("3 x hidden_size rows of hidden_size"));

  auto deeper = edited([](auto& t) {
    TensorInfo x = t.front();
    x.name = "conditioner.embedders.0.transformer.text_model.encoder.layers.99.mlp.fc1.bias";
    t.push_back(x);
  });
  auto clip_l = sdxl::clip_l_part(deeper, c.clip, "xl.safetensors");
  ASSERT_FALSE(clip_l);
  EXPECT_THAT(clip_l.error().message, HasSubstr("'conditioner.embedders.0.transformer.text_model.encoder.layers.99."));
}

}  // namespace
}  // namespace tp
