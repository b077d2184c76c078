// The transfer engine on the CPU device: byte-exact round trips across tiers
// and dtypes, conversion, sharding, diffusers prefixes, and faults.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>

#include "device/device.h"
#include "twistedpic/registry.h"
#include "weights/default_options.h"
#include "weights/buffer_pool.h"
#include "weights/tensor_weights.h"
#include "support/fenced_device.h"
#include "support/weights_test_util.h"

namespace tp {
namespace {

using testing_util::ScratchDir;
using testing_util::write_file;
using ::testing::HasSubstr;

struct Spec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
};

struct Written {
  std::map<std::string, std::string> data;  // name -> bytes as in the file
};

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// Writes a safetensors file with random contents; returns each tensor's bytes.
Written write_safetensors(const std::filesystem::path& path, const std::vector<Spec>& specs, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  Written w;
  std::string header = "{", data;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    uint64_t bytes = static_cast<uint64_t>(numel(s.shape)) * dtype_size(s.dtype);
    std::string t(bytes, '\0');
    if (s.dtype == DType::kF32) {
      for (uint64_t k = 0; k < bytes / 4; ++k) {
        float f = std::uniform_real_distribution<float>(-4, 4)(rng);
        std::memcpy(&t[k * 4], &f, 4);
      }
    } else if (s.dtype == DType::kF16) {
      for (uint64_t k = 0; k < bytes / 2; ++k) {  // finite halves: exponent below 0x1f
        uint16_t h = static_cast<uint16_t>(rng() & 0xfbff);
        std::memcpy(&t[k * 2], &h, 2);
      }
    } else {
      for (auto& c : t) c = static_cast<char>(rng());
    }
    std::string shape;
    for (size_t d = 0; d < s.shape.size(); ++d) shape += (d ? "," : "") + std::to_string(s.shape[d]);
    header += (i ? "," : "") + std::string("\"") + s.name + "\":{\"dtype\":\"" +
              std::string(dtype_safetensors_name(s.dtype)) + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + bytes) + "]}";
    data += t;
    w.data[s.name] = t;
  }
  header += "}";
  while (header.size() % 8) header += ' ';
  write_file(path, testing_util::le64(header.size()) + header + data);
  return w;
}

// A CPU device that claims not to be host memory, so the engine takes its
// staging path (pinned buffers, double-buffered copies) as on a GPU.
class StagingDevice final : public Device {
 public:
  explicit StagingDevice(uint64_t budget) : cpu_(budget) {}
  std::string name() const override { return "staging-cpu"; }
  bool is_host_memory() const override { return false; }
  DeviceMonitor& monitor() override { return cpu_; }
  Expected<void*> allocate(uint64_t b) override {
    ++allocations;
    return cpu_.allocate(b);
  }
  void free(void* p, uint64_t b) override {
    ++frees;
    cpu_.free(p, b);
  }
  Expected<void*> allocate_pinned(uint64_t b) override { return cpu_.allocate_pinned(b); }
  void free_pinned(void* p, uint64_t b) override { cpu_.free_pinned(p, b); }
  int lanes() const override { return 3; }
  Status copy_to_device(void* d, const void* s, uint64_t n, int l) override { return cpu_.copy_to_device(d, s, n, l); }
  Status copy_to_host(void* d, const void* s, uint64_t n, int l) override { return cpu_.copy_to_host(d, s, n, l); }
  Status convert(const void* s, DType f, void* d, DType t, uint64_t c, int l) override { return cpu_.convert(s, f, d, t, c, l); }
  Status synchronize(int) override { return ok_status(); }
  CpuDevice cpu_;
  std::atomic<int> allocations{0}, frees{0};  // device memory (arenas and scratch)
};

// The bytes of tensor `t` in the arena on the device.
std::string arena_bytes(const TensorWeights& w, const WeightTensor& t) {
  return std::string(static_cast<const char*>(w.device_data()) + t.offset, t.bytes);
}

const std::vector<Spec> kMixed = {{"a.f32", DType::kF32, {3, 5, 7}},     {"b.f16", DType::kF16, {129}},
                                  {"c.bf16", DType::kBF16, {64, 33}},    {"d.fp8", DType::kF8E4M3, {1000}},
                                  {"e.i64", DType::kI64, {17}},          {"f.u8", DType::kU8, {1}},
                                  {"g.scalar", DType::kF32, {}},         {"h.empty", DType::kF16, {0, 4}}};

class TensorWeightsTest : public ::testing::TestWithParam<bool /*staging*/> {
 protected:
  std::shared_ptr<Device> make_device(uint64_t budget = 1ull << 30) {
    if (GetParam()) return std::make_shared<StagingDevice>(budget);
    return std::make_shared<CpuDevice>(budget);
  }
  uint64_t device_allocated(const std::shared_ptr<Device>& d) {
    return d->monitor().query()->process_bytes;
  }
};

TEST_P(TensorWeightsTest, RoundTripsAcrossTiersPreserveBytes) {
  ScratchDir dir;
  Written w = write_safetensors(dir / "m.safetensors", kMixed);
  auto device = make_device();
  for (uint64_t chunk : {64ull, 4096ull, 16ull << 20}) {
    TransferOptions o;
    o.chunk_bytes = chunk;
    o.readers = 3;
    auto pool = std::make_shared<PinnedPool>(device, chunk, 6);
    auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, std::nullopt, device, pool, o).value();
    ASSERT_EQ(weights->tensors().size(), kMixed.size());
    ASSERT_TRUE(weights->load_to_device({}));
    EXPECT_EQ(device_allocated(device), weights->device_bytes());
    for (const auto& t : weights->tensors()) {
      EXPECT_EQ(t.offset % 256, 0u);
      EXPECT_EQ(arena_bytes(*weights, t), w.data[t.name]) << t.name << " chunk " << chunk;
    }
    ASSERT_TRUE(weights->offload_to_host({}));
    EXPECT_FALSE(weights->on_device());
    EXPECT_EQ(device_allocated(device), 0u);
    EXPECT_EQ(weights->host_bytes(), weights->device_bytes());
    ASSERT_TRUE(weights->load_to_device({}));  // from the host tier
    for (const auto& t : weights->tensors()) EXPECT_EQ(arena_bytes(*weights, t), w.data[t.name]);
    weights->drop_host();
    weights->drop_device();
    ASSERT_TRUE(weights->load_to_device({}));  // from disk again
    for (const auto& t : weights->tensors()) EXPECT_EQ(arena_bytes(*weights, t), w.data[t.name]);
    const WeightTensor* a = weights->find("a.f32");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 5, 7}));
    EXPECT_EQ(a->dtype, DType::kF32);
  }
  EXPECT_EQ(device_allocated(device), 0u);  // every weights object freed its arena
}

TEST_P(TensorWeightsTest, ConvertsFloatingTensorsToTheConfiguredDtype) {
  ScratchDir dir;
  Written w = write_safetensors(dir / "m.safetensors", kMixed);
  auto device = make_device();
  TransferOptions o;
  o.chunk_bytes = 256;  // pieces of one tensor across chunks
  auto pool = std::make_shared<PinnedPool>(device, o.chunk_bytes, 8);
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, DType::kBF16, device, pool, o).value();
  ASSERT_TRUE(weights->load_to_device({}));
  for (const auto& t : weights->tensors()) {
    bool floating = t.file_dtype == DType::kF32 || t.file_dtype == DType::kF16 || t.file_dtype == DType::kBF16;
    EXPECT_EQ(t.dtype, floating ? DType::kBF16 : t.file_dtype) << t.name;
    const std::string& src = w.data[t.name];
    std::string expected(t.bytes, '\0');
    ASSERT_TRUE(convert_on_host(src.data(), t.file_dtype, expected.data(), t.dtype, src.size() / dtype_size(t.file_dtype)));
    EXPECT_EQ(arena_bytes(*weights, t), expected) << t.name;
  }
  EXPECT_EQ(weights->find("a.f32")->bytes, 3u * 5 * 7 * 2);
}

TEST_P(TensorWeightsTest, PinnedStagingBuffersAreReused) {
  if (!GetParam()) GTEST_SKIP() << "the CPU device reads straight into the arena";
  ScratchDir dir;
  write_safetensors(dir / "m.safetensors", {{"x", DType::kF32, {4096}}});
  auto device = make_device();
  TransferOptions o;
  o.chunk_bytes = 1024;
  o.readers = 2;
  auto pool = std::make_shared<PinnedPool>(device, o.chunk_bytes, 4);
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, std::nullopt, device, pool, o).value();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(weights->load_to_device({}));
    weights->drop_device();
  }
  // 5 loads x 2 readers x 2 buffers would be 20 allocations without the pool.
  EXPECT_GE(pool->allocations(), 2u);
  EXPECT_LE(pool->allocations(), 4u);
  EXPECT_EQ(pool->cached(), pool->allocations());
}

INSTANTIATE_TEST_SUITE_P(Devices, TensorWeightsTest, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "staging" : "direct"; });

TEST(TensorWeightsFaultTest, TruncatedFileIsDataLossAndFreesEverything) {
  ScratchDir dir;
  write_safetensors(dir / "m.safetensors", {{"x", DType::kF32, {1 << 16}}});
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 4096, 4);
  TransferOptions o;
  o.chunk_bytes = 4096;
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, std::nullopt, device, pool, o).value();
  std::filesystem::resize_file(dir / "m.safetensors", std::filesystem::file_size(dir / "m.safetensors") - 1000);
  auto st = weights->load_to_device({});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kDataLoss) << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr("m.safetensors"));
  EXPECT_FALSE(weights->on_device());
  EXPECT_EQ(device->allocated_bytes(), 0u);
}

TEST(TensorWeightsFaultTest, AllocationFailuresAndCancellation) {
  ScratchDir dir;
  write_safetensors(dir / "m.safetensors", {{"x", DType::kF32, {1 << 16}}, {"y", DType::kF16, {1 << 12}}});
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 4096, 4);
  TransferOptions o;
  o.chunk_bytes = 4096;
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, std::nullopt, device, pool, o).value();
  device->fail_next_allocations(1);
  auto st = weights->load_to_device({});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kResourceExhausted);
  ASSERT_TRUE(weights->load_to_device({}));
  device->fail_next_pinned_allocations(1);
  st = weights->offload_to_host({});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kResourceExhausted);
  EXPECT_TRUE(weights->on_device());  // the device copy survives a failed offload
  EXPECT_EQ(device->pinned_bytes(), 0u);
  weights->drop_device();

  std::atomic<bool> cancel{false};
  TransferContext ctx;
  ctx.cancel = &cancel;
  ctx.progress = [&](uint64_t, uint64_t) { cancel = true; };  // cancel after the first chunk
  st = weights->load_to_device(ctx);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(device->allocated_bytes(), 0u);
  ASSERT_TRUE(weights->load_to_device({}));  // the next request works
}

TEST(TensorWeightsSourceTest, ShardedIndexAndDiffusersFolders) {
  ScratchDir dir;
  Written a = write_safetensors(dir / "sharded/model-00001-of-00002.safetensors", {{"w1", DType::kF32, {8}}}, 1);
  Written b = write_safetensors(dir / "sharded/model-00002-of-00002.safetensors", {{"w2", DType::kF16, {8}}}, 2);
  write_file(dir / "sharded/model.safetensors.index.json",
             R"({"metadata": {}, "weight_map": {"w1": "model-00001-of-00002.safetensors", "w2": "model-00002-of-00002.safetensors"}})");
  auto files = model_weight_files((dir / "sharded").string());
  ASSERT_TRUE(files) << files.error().to_string();
  ASSERT_EQ(files->size(), 2u);
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 4);
  auto w = TensorWeights::open(*files, std::nullopt, device, pool).value();
  ASSERT_TRUE(w->load_to_device({}));
  EXPECT_EQ(arena_bytes(*w, *w->find("w1")), a.data["w1"]);
  EXPECT_EQ(arena_bytes(*w, *w->find("w2")), b.data["w2"]);

  // A diffusers folder: tensors are named component/tensor, so equal names in two components coexist.
  write_file(dir / "pipe/model_index.json",
             R"({"_class_name": "StableDiffusion3Pipeline", "vae": ["diffusers", "AutoencoderKL"],
                 "text_encoder": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": [null, null]})");
  write_file(dir / "pipe/vae/config.json", "{}");
  write_file(dir / "pipe/text_encoder/config.json", "{}");
  write_safetensors(dir / "pipe/vae/diffusion_pytorch_model.safetensors", {{"weight", DType::kF32, {4}}});
  write_safetensors(dir / "pipe/text_encoder/model.safetensors", {{"weight", DType::kF32, {2}}});
  auto pipe = model_weight_files((dir / "pipe").string());
  ASSERT_TRUE(pipe) << pipe.error().to_string();
  auto pw = TensorWeights::open(*pipe, DType::kF16, device, pool).value();
  EXPECT_NE(pw->find("vae/weight"), nullptr);
  EXPECT_NE(pw->find("text_encoder/weight"), nullptr);
  EXPECT_EQ(pw->find("vae/weight")->dtype, DType::kF16);

  // Pickles are refused, and an empty folder is not found.
  write_file(dir / "pickled/model.ckpt", std::string("\x80\x02", 2) + "junk");
  auto pickled = model_weight_files((dir / "pickled").string());
  ASSERT_FALSE(pickled);
  EXPECT_THAT(pickled.error().message, HasSubstr("pickle"));
  std::filesystem::create_directories(dir / "empty");
  EXPECT_EQ(model_weight_files((dir / "empty").string()).error().code, ErrorCode::kNotFound);
}

TEST(TensorWeightsRegistryTest, RegistryMovesRealWeightsAndMeasuresReturnedBytes) {
  ScratchDir dir;
  Written w = write_safetensors(dir / "m/model.safetensors", {{"x", DType::kF32, {1 << 18}}});
  auto device = std::make_shared<CpuDevice>(64ull << 20);
  RegistryConfig c;
  ModelConfig m;
  m.name = "m";
  m.source = (dir / "m").string();
  m.dtype = DType::kF32;
  c.models = {m};
  c.policy.unload_after = Tier::kHost;
  c.host_budget_bytes = 64ull << 20;
  RegistryOptions o;
  o.backend = std::make_shared<TensorWeightBackend>(device);
  o.monitor = std::shared_ptr<DeviceMonitor>(device, device.get());
  o.background_thread = false;
  auto registry = ModelRegistry::create(c, o).value();
  std::vector<ResidencyEvent> events;
  registry->subscribe([&](const ResidencyEvent& e) { events.push_back(e); });
  for (int i = 0; i < 2; ++i) {
    auto lease = registry->acquire("m").value();
    auto& tw = dynamic_cast<TensorWeights&>(lease.weights());
    EXPECT_EQ(arena_bytes(tw, *tw.find("x")), w.data["x"]);
  }
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1].to, Tier::kHost);
  EXPECT_EQ(events[1].bytes_returned, static_cast<int64_t>(1 << 20));  // the arena went back, all of it
  EXPECT_EQ(events[2].from, Tier::kHost);                              // the reload came from the host tier
  EXPECT_EQ(device->allocated_bytes(), 0u);
  auto bad = registry->plan("m");
  ASSERT_TRUE(bad);
}

// ---- what a GPU would catch (issue "GPU truth") -------------------------------

// A GPU's typed loads need aligned elements. kMixed puts "g.scalar" (F32) at
// data offset 6039: converted pieces must be staged aligned, whatever the
// chunking, on both paths (the CPU device's conversion refuses what a GPU would
// fault on).
TEST_P(TensorWeightsTest, ConvertingPiecesAreStagedAlignedForEveryChunking) {
  ScratchDir dir;
  Written w = write_safetensors(dir / "m.safetensors", kMixed);
  auto device = make_device();
  for (DType to : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (uint64_t chunk : {64ull, 256ull, 4104ull, 16ull << 20}) {
      TransferOptions o;
      o.chunk_bytes = chunk;
      o.readers = 2;
      auto pool = std::make_shared<PinnedPool>(device, chunk, 4);
      auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, to, device, pool, o).value();
      const WeightTensor* g = weights->find("g.scalar");
      ASSERT_NE(g, nullptr);
      EXPECT_NE(g->file_offset % 4, 0u) << "the fixture no longer has a misaligned F32 tensor";
      auto st = weights->load_to_device({});
      ASSERT_TRUE(st) << st.error().to_string() << " (to " << dtype_safetensors_name(to) << ", chunk " << chunk << ")";
      for (const auto& t : weights->tensors()) {
        const std::string& src = w.data[t.name];
        std::string expected(t.bytes, '\0');
        ASSERT_TRUE(convert_on_host(src.data(), t.file_dtype, expected.data(), t.dtype, src.size() / dtype_size(t.file_dtype)));
        EXPECT_EQ(arena_bytes(*weights, t), expected) << t.name << " to " << dtype_safetensors_name(to) << ", chunk " << chunk;
      }
    }
  }
  EXPECT_EQ(device_allocated(device), 0u);
}

// A copy that fails asynchronously is reported by the lane's next
// synchronize; the load fails with the device's code and keeps nothing, even
// for a model of one chunk (whose only wait after its copies is the reader's
// last).
TEST(TensorWeightsFaultTest, AFailedSynchronizeFailsTheLoadEvenForOneChunk) {
  ScratchDir dir;
  write_safetensors(dir / "one.safetensors", {{"x", DType::kF32, {64}}});
  write_safetensors(dir / "many.safetensors", {{"x", DType::kF32, {4096}}, {"y", DType::kF16, {300}}});
  struct Case {
    const char* file;
    std::optional<DType> dtype;
    int fail_copy;  // which copy fails
  };
  for (const Case& c : {Case{"one.safetensors", std::nullopt, 1}, Case{"one.safetensors", DType::kBF16, 1},
                        Case{"many.safetensors", std::nullopt, 3}, Case{"many.safetensors", DType::kF16, 5}}) {
    for (bool host_memory : {false, true}) {
      // The CPU device copies only the pieces it does not convert, on its staging path.
      if (host_memory && (!c.dtype || std::string(c.file) == "one.safetensors")) continue;
      SCOPED_TRACE(std::string(c.file) + (c.dtype ? " converted" : "") + (host_memory ? " host" : " staging"));
      auto device = std::make_shared<testing_util::FencedDevice>(1ull << 30, host_memory);
      TransferOptions o;
      o.chunk_bytes = 4096;
      o.readers = 2;
      auto pool = std::make_shared<PinnedPool>(device, o.chunk_bytes, 4);
      auto scratch = std::make_shared<ScratchPool>(device, o.chunk_bytes, 4);
      auto weights = TensorWeights::open({{dir / c.file, ""}}, c.dtype, device, pool, o, scratch).value();
      device->fail_next_copies(c.fail_copy);
      auto st = weights->load_to_device({});
      ASSERT_FALSE(st) << "a failed copy went unreported";
      EXPECT_EQ(st.error().code, ErrorCode::kDataLoss) << st.error().message;
      EXPECT_FALSE(weights->on_device());
      // Nothing but the idle scratch (back in its pool) stays on the device.
      EXPECT_EQ(scratch->held_bytes(), scratch->idle_bytes());
      EXPECT_EQ(device->allocated_bytes(), scratch->held_bytes());
      device->fail_next_copies(0);
      ASSERT_TRUE(weights->load_to_device({}));  // the next load works
      weights->drop_device();
      scratch->trim();
      EXPECT_EQ(device->allocated_bytes(), 0u);
    }
  }
}

// Torch kernels queued on a stream may still read the weights when the lease
// ends: the eviction waits for the uses noted, then frees the arena.
TEST(TensorWeightsFenceTest, EvictionFreesTheArenaOnlyAfterTheNotedUses) {
  ScratchDir dir;
  Written w = write_safetensors(dir / "m/model.safetensors", {{"x", DType::kF32, {1024}}});
  float expected = 0;
  for (int i = 0; i < 1024; ++i) {
    float f;
    std::memcpy(&f, &w.data["x"][i * 4], 4);
    expected += f;
  }
  for (bool host_memory : {true, false}) {
    SCOPED_TRACE(host_memory ? "direct" : "staging");
    auto device = std::make_shared<testing_util::FencedDevice>(64ull << 20, host_memory);
    testing_util::FakeStream& s1 = device->make_stream();
    testing_util::FakeStream& s2 = device->make_stream();
    RegistryConfig c;
    ModelConfig m;
    m.name = "m";
    m.source = (dir / "m").string();
    m.dtype = DType::kF32;
    c.models = {m};
    c.policy.unload_after = Tier::kDisk;  // the last release frees the arena
    RegistryOptions o;
    o.backend = std::make_shared<TensorWeightBackend>(device);
    o.monitor = std::shared_ptr<DeviceMonitor>(device, &device->monitor());
    o.background_thread = false;
    auto registry = ModelRegistry::create(c, o).value();
    float sum1 = 0, sum2 = 0;
    {
      auto a = registry->acquire("m").value();
      auto b = registry->acquire("m").value();  // two lease holders, two streams
      const auto& tw = dynamic_cast<const TensorWeights&>(a.weights());
      const auto* x = reinterpret_cast<const float*>(static_cast<const char*>(tw.device_data()) + tw.find("x")->offset);
      auto kernel = [x](float* out) {
        return [x, out] {
          for (int i = 0; i < 1024; ++i) *out += x[i];
        };
      };
      s1.launch(x, kernel(&sum1));
      tw.note_use(&s1);
      s2.launch(x, kernel(&sum2));
      tw.note_use(&s2);
      s2.launch(nullptr, [] {});  // queued after the fence: not waited for
      EXPECT_EQ(device->uses_recorded(), 2);
    }  // the last release unloads to disk
    EXPECT_EQ(device->frees(), 1);
    EXPECT_EQ(device->frees_with_pending_reads(), 0) << "the arena was freed while kernels could still read it";
    EXPECT_EQ(device->uses_waited(), 2);
    EXPECT_FLOAT_EQ(sum1, expected);
    EXPECT_FLOAT_EQ(sum2, expected);
    EXPECT_EQ(device->allocated_bytes(), 0u);
  }
}

// The dtype the weights compute in: the configured one when set, else the
// first floating tensor's in file order; integers never decide it.
TEST(TensorWeightsDtypeTest, ComputeDtypeComesFromTheConfigThenTheFloatingTensorsInFileOrder) {
  ScratchDir dir;
  // F64 is never converted, so with a configured dtype the first floating tensor is not it.
  write_safetensors(dir / "f64_first.safetensors",
                    {{"ids", DType::kI64, {4}}, {"d", DType::kF64, {2}}, {"w", DType::kF32, {3}}});
  write_safetensors(dir / "ints_first.safetensors",
                    {{"a", DType::kI64, {4}}, {"b", DType::kI32, {4}}, {"h", DType::kF16, {4}}, {"w", DType::kF32, {4}}});
  write_safetensors(dir / "ints.safetensors", {{"a", DType::kI64, {4}}, {"b", DType::kI32, {4}}});
  auto device = std::make_shared<CpuDevice>(1ull << 30);
  auto pool = std::make_shared<PinnedPool>(device, 16ull << 20, 2);
  auto open = [&](const char* f, std::optional<DType> dtype) {
    return TensorWeights::open({{dir / f, ""}}, dtype, device, pool).value();
  };
  EXPECT_EQ(open("f64_first.safetensors", DType::kBF16)->compute_dtype(), DType::kBF16);
  EXPECT_EQ(open("f64_first.safetensors", DType::kBF16)->converted_dtype(), DType::kBF16);
  EXPECT_EQ(open("f64_first.safetensors", std::nullopt)->compute_dtype(), DType::kF64);
  EXPECT_EQ(open("ints_first.safetensors", std::nullopt)->compute_dtype(), DType::kF16);
  EXPECT_EQ(open("ints_first.safetensors", std::nullopt)->converted_dtype(), std::nullopt);
  EXPECT_EQ(open("ints_first.safetensors", DType::kF32)->compute_dtype(), DType::kF32);
  EXPECT_EQ(open("ints.safetensors", std::nullopt)->compute_dtype(), std::nullopt);
  EXPECT_EQ(open("ints.safetensors", DType::kF16)->compute_dtype(), DType::kF16);
}

// ---- the device scratch pool (issue #23) -----------------------------------

// Loads that convert on a device (not host memory) stage chunks in device
// scratch: 2 buffers per reader, borrowed from the pool and given back, so N
// loads allocate them once; trimming hands them back to the driver.
TEST(ScratchPoolTest, ConvertingLoadsAllocateScratchOnceAndTrimmingReturnsIt) {
  ScratchDir dir;
  Written w = write_safetensors(dir / "m.safetensors", {{"x", DType::kF32, {4096}}, {"y", DType::kF16, {999}}});
  auto device = std::make_shared<StagingDevice>(1ull << 30);
  TransferOptions o;
  o.chunk_bytes = 1024;  // 18 KiB of file: many chunks, so both readers work
  o.readers = 2;
  auto pinned = std::make_shared<PinnedPool>(device, o.chunk_bytes, 4);
  auto scratch = std::make_shared<ScratchPool>(device, o.chunk_bytes, 4);
  auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, DType::kBF16, device, pinned, o, scratch).value();
  const uint64_t borrowed = 2 * 2 * o.chunk_bytes;
  EXPECT_EQ(weights->scratch_bytes_borrowed(), borrowed);
  EXPECT_EQ(weights->load_scratch_bytes(), borrowed) << "an empty pool supplies nothing";
  const int loads = 5;
  for (int i = 0; i < loads; ++i) {
    ASSERT_TRUE(weights->load_to_device({}));
    std::string expected(weights->find("x")->bytes, '\0');
    ASSERT_TRUE(convert_on_host(w.data["x"].data(), DType::kF32, expected.data(), DType::kBF16, 4096));
    EXPECT_EQ(arena_bytes(*weights, *weights->find("x")), expected);
    EXPECT_EQ(weights->load_scratch_bytes(), 0u) << "resident: nothing to load";
    weights->drop_device();
    // What the idle buffers do not cover. (A reader that starts after the
    // other finished borrows its buffers again, so a load may need fewer than 4.)
    EXPECT_EQ(weights->load_scratch_bytes(), borrowed - scratch->idle_bytes());
  }
  // One arena per load, and at most the 4 scratch buffers, once (not 4 per load: 20).
  const uint64_t made = scratch->allocations();
  EXPECT_GE(made, 2u);
  EXPECT_LE(made, 4u);
  EXPECT_EQ(device->allocations.load(), loads + static_cast<int>(made));
  EXPECT_EQ(device->frees.load(), loads) << "no scratch was freed";
  EXPECT_EQ(scratch->held_bytes(), made * o.chunk_bytes);
  EXPECT_EQ(scratch->idle_bytes(), made * o.chunk_bytes);
  EXPECT_EQ(device->cpu_.allocated_bytes(), made * o.chunk_bytes) << "only the idle scratch stays on the device";

  EXPECT_EQ(scratch->trim(), made * o.chunk_bytes);
  EXPECT_EQ(scratch->held_bytes(), 0u);
  EXPECT_EQ(device->cpu_.allocated_bytes(), 0u);
  EXPECT_EQ(device->frees.load(), loads + static_cast<int>(made));
  EXPECT_EQ(scratch->trim(), 0u);
  EXPECT_EQ(weights->load_scratch_bytes(), borrowed) << "trimmed: the next load allocates again";
  ASSERT_TRUE(weights->load_to_device({}));
  EXPECT_GT(scratch->allocations(), made);
}

// A load that converts nothing, or one on host memory, borrows no scratch.
TEST(ScratchPoolTest, NoScratchWithoutADeviceConversion) {
  ScratchDir dir;
  write_safetensors(dir / "m.safetensors", {{"x", DType::kF32, {4096}}});
  TransferOptions o;
  o.chunk_bytes = 1024;
  o.readers = 2;
  auto staging = std::make_shared<StagingDevice>(1ull << 30);
  auto cpu = std::make_shared<CpuDevice>(1ull << 30);
  for (auto [device, dtype] : {std::pair<std::shared_ptr<Device>, std::optional<DType>>{staging, std::nullopt},
                               {staging, DType::kF32}, {cpu, DType::kBF16}}) {
    auto scratch = std::make_shared<ScratchPool>(device, o.chunk_bytes, 4);
    auto pinned = std::make_shared<PinnedPool>(device, o.chunk_bytes, 4);
    auto weights = TensorWeights::open({{dir / "m.safetensors", ""}}, dtype, device, pinned, o, scratch).value();
    EXPECT_EQ(weights->load_scratch_bytes(), 0u) << device->name();
    ASSERT_TRUE(weights->load_to_device({}));
    EXPECT_EQ(scratch->allocations(), 0u) << device->name();
  }
}

// A buffer given back beyond max_idle is freed at once; lent buffers count as held.
TEST(ScratchPoolTest, KeepsAtMostMaxIdleAndCountsLentBuffers) {
  auto device = std::make_shared<CpuDevice>(1ull << 20);
  {
    ScratchPool pool(device, 4096, 2);
    void* a = pool.acquire().value();
    void* b = pool.acquire().value();
    void* c = pool.acquire().value();
    EXPECT_EQ(pool.held_bytes(), 3u * 4096);
    EXPECT_EQ(pool.idle_bytes(), 0u);
    EXPECT_EQ(pool.missing_bytes(2), 2u * 4096);
    EXPECT_EQ(pool.trim(), 0u) << "lent buffers stay with their loads";
    pool.release(a);
    pool.release(b);
    pool.release(c);
    EXPECT_EQ(pool.frees(), 1u);
    EXPECT_EQ(pool.idle_bytes(), 2u * 4096);
    EXPECT_EQ(pool.missing_bytes(3), 4096u);
    EXPECT_EQ(device->allocated_bytes(), 2u * 4096);
    void* d = pool.acquire().value();  // idle ones: no allocation
    void* e = pool.acquire().value();
    device->fail_next_allocations(1);
    auto f = pool.acquire();  // none idle, and the device refuses
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code, ErrorCode::kResourceExhausted);
    EXPECT_EQ(pool.allocations(), 3u);
    EXPECT_EQ(pool.held_bytes(), 2u * 4096);
    pool.release(d);
    pool.release(e);
  }
  EXPECT_EQ(device->allocated_bytes(), 0u) << "destroying the pool frees what it kept";
}

// The backend's pool is shared by every model it opens and reported as
// held; the registry device's clean-up (registry_device_on) trims it.
TEST(ScratchPoolTest, TheBackendReportsItsScratchAndTheCleanUpTrimsIt) {
  ScratchDir dir;
  write_safetensors(dir / "a.safetensors", {{"x", DType::kF32, {1 << 16}}});
  write_safetensors(dir / "b.safetensors", {{"y", DType::kF32, {1 << 16}}});
  auto device = std::make_shared<StagingDevice>(1ull << 30);
  RegistryDevice d = registry_device_on(device);
  EXPECT_EQ(d.name, "staging-cpu");
  auto& backend = dynamic_cast<TensorWeightBackend&>(*d.backend);
  EXPECT_EQ(backend.scratch_bytes_held(), 0u);
  std::vector<std::unique_ptr<ModelWeights>> models;
  for (const char* f : {"a.safetensors", "b.safetensors"}) {
    ModelConfig m;
    m.name = f;
    m.source = (dir / f).string();
    m.dtype = DType::kF16;
    models.push_back(backend.open(m).value());
  }
  const uint64_t borrowed = dynamic_cast<TensorWeights&>(*models[0]).scratch_bytes_borrowed();
  EXPECT_GT(borrowed, 0u);
  EXPECT_EQ(models[1]->load_scratch_bytes(), borrowed);
  ASSERT_TRUE(models[0]->load_to_device({}));
  EXPECT_EQ(backend.scratch_bytes_held(), borrowed);
  EXPECT_EQ(models[1]->load_scratch_bytes(), 0u) << "the other model borrows the same buffers";
  ASSERT_TRUE(models[1]->load_to_device({}));
  EXPECT_EQ(backend.scratch_pool()->allocations(), borrowed / backend.scratch_pool()->buffer_bytes());
  const uint64_t arenas = models[0]->device_bytes() + models[1]->device_bytes();
  EXPECT_EQ(device->cpu_.allocated_bytes(), arenas + borrowed);
  ASSERT_TRUE(d.clean_caches);
  d.clean_caches();
  EXPECT_EQ(backend.scratch_bytes_held(), 0u);
  EXPECT_EQ(device->cpu_.allocated_bytes(), arenas);
}

// Several CPU devices, each named: what tests of a registry of several
// devices build on.
TEST(DefaultOptionsTest, OneRegistryDevicePerDeviceInOrder) {
  auto a = std::make_shared<CpuDevice>(1ull << 20);
  auto b = std::make_shared<CpuDevice>(2ull << 20, "cpu:1");
  EXPECT_EQ(a->name(), "cpu");
  EXPECT_EQ(b->name(), "cpu:1");
  EXPECT_EQ(b->monitor().name(), "cpu:1");
  EXPECT_EQ(b->monitor().query()->total_bytes, 2ull << 20);
  RegistryOptions o = registry_options_on({registry_device_on(a), registry_device_on(b)});
  ASSERT_EQ(o.devices.size(), 2u);
  EXPECT_EQ(o.devices[0].name, "cpu");
  EXPECT_EQ(o.devices[1].name, "cpu:1");
  EXPECT_EQ(o.devices[1].monitor->name(), "cpu:1");
  EXPECT_NE(o.devices[0].backend, o.devices[1].backend);
  EXPECT_EQ(o.backend, o.devices[0].backend) << "the single-device fields repeat the first device";
  EXPECT_EQ(o.monitor, o.devices[0].monitor);
  EXPECT_FALSE(o.clean_caches) << "per device only: the registry refuses both";
  EXPECT_TRUE(o.devices[0].clean_caches);
  EXPECT_TRUE(o.devices[1].clean_caches);
  RegistryOptions one = registry_options_on(std::shared_ptr<Device>(b));
  ASSERT_EQ(one.devices.size(), 1u);
  EXPECT_EQ(one.devices[0].name, "cpu:1");
}

}  // namespace
}  // namespace tp
