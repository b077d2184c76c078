// Fuzz target for generation through the C ABI (capi/include/twistedpic/tp.h):
// tp_pipeline_*, tp_request_*, tp_pipeline_generate, tp_result_*, tp_image_*,
// tp_registry_plan/tp_plan_*, tp_registry_info, on the shipped default model
// (models/tiny-sd3). It needs the torch layer, which the clang fuzz build
// (fuzz/CMakeLists.txt) does not make, so it runs two ways:
//   - libFuzzer (fuzz/run.sh, make fuzz and make test's smoke pass): the clang
//     harness drives the main build's libtwistedpic.so through tp.h; coverage
//     guidance follows the harness's branches, which follow the library's answers;
//   - ctest capi.generate_fuzz in the GCC builds, through fuzz/standalone_main.cpp:
//     the committed seeds plus pseudo-random inputs, under ASan + UBSan with
//     leak checks in `make test-asan`.
//
// Each input builds a request through a fuzzed sequence of setters (prompts
// of any bytes, sizes, steps, guidance NaN/inf, seeds, sequence lengths,
// unknown options, a progress callback that cancels at a fuzzed step, an
// early cancel, NULL handles), generates on the shared pipeline or on one
// made by a fuzzed name, and reads the result back: every image, the
// settings, the warnings, PNG encoding into buffers of fuzzed capacity.
// Every call must keep the error protocol (capi_protocol.h). A call that
// succeeds must give what was asked: the image count, the size, steps and
// seed that were set. The registry persists across inputs, so every input
// also checks that the previous one left it usable; valid settings are kept
// small (at most 64x64, 3 steps, 4 images) so that an input runs in
// milliseconds on the CPU.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "capi_protocol.h"
#include "twistedpic/tp.h"

using tp_fuzz::check;
using tp_fuzz::Err;

namespace {

constexpr int32_t kDefaultSize = 32;  // models/tiny-sd3
constexpr int32_t kDefaultSteps = 20;

tp_registry* shared_registry() {
  static tp_registry* reg = [] {
    const std::string config = std::string(R"({"models": {"tiny": {"path": ")") + TP_FUZZ_MODEL_DIR +
                               R"(", "pipeline_type": "sd3", "dtype": "fp32"}}})";
    tp_registry* r = nullptr;
    check(tp_registry_create_from_string(&r, config.c_str(), nullptr, nullptr) == TP_OK);
    return r;
  }();
  return reg;
}

tp_pipeline* shared_pipeline() {
  static tp_pipeline* p = [] {
    tp_pipeline* made = nullptr;
    check(tp_pipeline_create(&made, shared_registry(), "tiny", nullptr) == TP_OK);
    return made;
  }();
  return p;
}

// What the request holds, as far as the setters accepted it.
struct Expected {
  int prompts = 0;
  int negatives = 0;
  int32_t images_per_prompt = 1;
  int32_t width = 0, height = 0;  // 0: the model's default
  int32_t steps = 0;
  uint64_t seed = 0;
  bool cancelled = false;
  int32_t cancel_at_step = -1;  // the progress callback cancels at this denoising step
  bool foreign_option = false;  // an option the default model's family (SD3) does not read
};

// How many calls generated, printed at exit: a run that never succeeds proves little
// (ctest capi.generate_fuzz requires a non-zero count).
struct Tally {
  unsigned calls = 0, succeeded = 0, cancelled = 0, images = 0;
  ~Tally() {
    std::fprintf(stderr, "capi_generate_fuzz: %u generate calls, succeeded: %u (%u images), cancelled: %u\n", calls,
                 succeeded, images, cancelled);
  }
} g_tally;

struct ProgressState {
  int32_t cancel_at_step = -1;
  int32_t last_step = 0;
  int reports = 0;
};

int32_t on_progress(const tp_progress* p, void* user_data) {
  check(p != nullptr && p->struct_size >= sizeof(tp_progress) && p->model != nullptr);
  check(p->stage >= TP_STAGE_ENCODE && p->stage <= TP_STAGE_WAITING && p->elapsed_s >= 0);
  auto* s = static_cast<ProgressState*>(user_data);
  ++s->reports;
  if (p->stage == TP_STAGE_DENOISE) {
    check(p->step == s->last_step + 1 && p->step <= p->steps);  // every step, in order
    s->last_step = p->step;
    if (p->step == s->cancel_at_step) return 1;
  }
  return 0;
}

std::string fuzzed_text(FuzzedDataProvider& f) {
  switch (f.ConsumeIntegralInRange(0, 3)) {
    case 0: return "a red circle on a white background";
    case 1: return std::string(f.ConsumeIntegralInRange<size_t>(0, 600), 'x');  // past the CLIP/T5 limits
    default: return f.ConsumeRandomLengthString(64);                            // any bytes, invalid UTF-8 too
  }
}

int32_t fuzzed_side(FuzzedDataProvider& f) {
  static constexpr int32_t kValues[] = {0, 8, 16, 24, 32, 48, 64, -8, 7, 33, 100000,
                                        std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min()};
  return f.PickValueInArray(kValues);
}

// A side that is small, or that generate must refuse (fuzzed_side's values).
bool side_cheap(int32_t v) { return v <= 64 || v % 8 != 0 || v >= 100000; }

// Applies one fuzzed setter, checking what it must accept and refuse, and notes what it accepted.
void apply_setter(FuzzedDataProvider& f, tp_request* req, Expected& e, ProgressState& progress) {
  Err err(f.ConsumeBool());
  switch (f.ConsumeIntegralInRange(0, 10)) {
    case 0: {
      const bool null = f.ConsumeIntegralInRange(0, 15) == 0;
      const std::string text = fuzzed_text(f);
      if (err.done(tp_request_add_prompt(req, null ? nullptr : text.c_str(), err.ptr())) == TP_OK) ++e.prompts;
      break;
    }
    case 1: {
      const std::string text = fuzzed_text(f);
      if (err.done(tp_request_add_negative_prompt(req, text.c_str(), err.ptr())) == TP_OK) ++e.negatives;
      break;
    }
    case 2:
      check(err.done(tp_request_clear_prompts(req, err.ptr())) == TP_OK);
      e.prompts = e.negatives = 0;
      break;
    case 3: {
      const int32_t n = f.ConsumeIntegralInRange<int32_t>(-1, 66);
      const tp_code c = err.done(tp_request_set_images_per_prompt(req, n, err.ptr()));
      check((c == TP_OK) == (n >= 1 && n <= 64));
      if (c == TP_OK) e.images_per_prompt = n;
      break;
    }
    case 4: {
      const int32_t w = fuzzed_side(f), h = fuzzed_side(f);
      if (err.done(tp_request_set_size(req, w, h, err.ptr())) == TP_OK) e.width = w, e.height = h;
      break;
    }
    case 5: {
      static constexpr int32_t kSteps[] = {0, 1, 2, 3, -1, 1001, std::numeric_limits<int32_t>::min()};
      const int32_t steps = f.PickValueInArray(kSteps);
      const tp_code c = err.done(tp_request_set_steps(req, steps, err.ptr()));
      check((c == TP_OK) == (steps >= 0 && steps <= 1000));
      if (c == TP_OK) e.steps = steps;
      break;
    }
    case 6: {
      static constexpr double kGuidance[] = {std::numeric_limits<double>::quiet_NaN(), 1.0, 0.0, 4.5, -3.0, 1e308,
                                             std::numeric_limits<double>::infinity()};
      err.done(tp_request_set_guidance(req, f.PickValueInArray(kGuidance), err.ptr()));
      break;
    }
    case 7: {
      const uint64_t seed = f.ConsumeIntegral<uint64_t>();
      check(err.done(tp_request_set_seed(req, seed, err.ptr())) == TP_OK);
      e.seed = seed;
      break;
    }
    case 8: {
      const int32_t tokens = f.ConsumeIntegralInRange<int32_t>(-2, 600);
      const tp_code c = err.done(tp_request_set_max_sequence_length(req, tokens, err.ptr()));
      check((c == TP_OK) == (tokens >= 1 && tokens <= 512));
      break;
    }
    case 9: {
      static const char* const kKeys[] = {"true_cfg_scale", "scheduler", "guidance_rescale", "", nullptr};
      const std::string random_key = f.ConsumeRandomLengthString(16);
      const char* key = f.ConsumeBool() ? f.PickValueInArray(kKeys) : random_key.c_str();
      const std::string value = f.ConsumeRandomLengthString(16);
      const tp_code c = err.done(tp_request_set_option(req, key, f.ConsumeBool() ? value.c_str() : nullptr,
                                                       err.ptr()));
      // Only keys some family reads are taken: Flux's true_cfg_scale, SDXL's scheduler and guidance_rescale.
      const std::string_view k = key ? key : "";
      check(c != TP_OK || k == "true_cfg_scale" || k == "scheduler" || k == "guidance_rescale");
      if (c == TP_OK) e.foreign_option = true;
      break;
    }
    case 10:
      if (f.ConsumeIntegralInRange(0, 7) == 0) {
        tp_request_cancel(req);
        e.cancelled = true;
      } else {
        progress.cancel_at_step = f.ConsumeIntegralInRange<int32_t>(-1, 3);
        e.cancel_at_step = progress.cancel_at_step;
        check(err.done(tp_request_set_progress(req, on_progress, &progress, err.ptr())) == TP_OK);
      }
      break;
  }
}

void check_result(FuzzedDataProvider& f, const tp_result* result, const Expected& e) {
  tp_result_info info{};
  info.struct_size = sizeof info;
  check(tp_result_get_info(&info, result, nullptr) == TP_OK);
  check(info.image_count == static_cast<uint32_t>(e.prompts * e.images_per_prompt));
  check(info.width == (e.width ? e.width : kDefaultSize) && info.height == (e.height ? e.height : kDefaultSize));
  check(info.steps == (e.steps ? e.steps : kDefaultSteps) && info.seed == e.seed);
  check(info.total_s >= 0 && info.encode_s >= 0 && info.denoise_s >= 0 && info.decode_s >= 0);
  for (uint32_t i = 0; i < info.warning_count + 1; ++i)
    check(tp_result_warning(result, i) != nullptr && (i < info.warning_count) == (tp_result_warning(result, i)[0] != 0));
  for (uint32_t i = 0; i <= info.image_count; ++i) {
    tp_image image{};
    image.struct_size = sizeof image;
    Err err(f.ConsumeBool());
    const tp_code c = err.done(tp_result_get_image(&image, result, i, err.ptr()));
    check((c == TP_OK) == (i < info.image_count));
    if (c != TP_OK) continue;
    check(image.width == info.width && image.height == info.height && image.stride >= image.width * 3);
    check(image.pixels != nullptr);
    volatile uint8_t sink = image.pixels[static_cast<size_t>(image.height - 1) * image.stride + image.width * 3 - 1];
    (void)sink;
    // PNG into a buffer of fuzzed capacity: too small writes nothing and says the size.
    size_t size = 0;
    const size_t capacity = f.ConsumeIntegralInRange<size_t>(0, 8192);
    std::vector<uint8_t> buffer(capacity + 1, 0xAB);
    Err png_err(f.ConsumeBool());
    const tp_code pc = png_err.done(tp_image_encode_png(&size, buffer.data(), capacity, &image, png_err.ptr()));
    check(size > 8);
    if (pc == TP_OK) {
      check(size <= capacity && std::memcmp(buffer.data(), "\x89PNG", 4) == 0);
    } else {
      check(pc == TP_RESOURCE_EXHAUSTED && size > capacity && buffer[0] == 0xAB);
    }
    Err write_err(true);
    check(write_err.done(tp_image_write_png(&image, "/nonexistent-folder/x.png", write_err.ptr())) != TP_OK);
  }
}

void fuzz_registry_queries(FuzzedDataProvider& f) {
  static const char* const kModels[] = {"tiny", "tiny/vae", "tiny/transformer", "nope", ""};
  const std::string random_name = f.ConsumeRandomLengthString(12);
  const char* name = f.ConsumeBool() ? f.PickValueInArray(kModels) : random_name.c_str();
  tp_plan* plan = nullptr;
  Err err(f.ConsumeBool());
  if (err.done(tp_registry_plan(&plan, shared_registry(), name, err.ptr())) == TP_OK) {
    tp_plan_info info{};
    info.struct_size = sizeof info;
    check(tp_plan_get_info(&info, plan, nullptr) == TP_OK && info.explanation != nullptr);
    for (uint32_t i = 0; i <= info.eviction_count; ++i) check(tp_plan_eviction(plan, i) != nullptr);
  } else {
    check(plan == nullptr);
  }
  tp_plan_free(plan);
  tp_model_list* list = nullptr;
  Err info_err(f.ConsumeBool());
  if (info_err.done(tp_registry_info(&list, shared_registry(), name, info_err.ptr())) == TP_OK) {
    check(list != nullptr);
  }
  tp_model_list_free(list);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider f(data, size);

  // The pipeline: the shared one, or one made by a fuzzed name (and destroyed after the call).
  tp_pipeline* own = nullptr;
  tp_pipeline* pipeline = shared_pipeline();
  if (f.ConsumeIntegralInRange(0, 7) == 0) {
    static const char* const kNames[] = {"tiny", "tiny/vae", "nope", "", nullptr};
    const std::string random_name = f.ConsumeRandomLengthString(12);
    const char* name = f.ConsumeBool() ? f.PickValueInArray(kNames) : random_name.c_str();
    Err err(f.ConsumeBool());
    const tp_code c = err.done(tp_pipeline_create(&own, shared_registry(), name, err.ptr()));
    check((c == TP_OK) == (own != nullptr));
    if (c == TP_OK) {
      int32_t w = 0, h = 0, multiple = 0;
      check(tp_pipeline_sizes(&w, &h, &multiple, own, nullptr) == TP_OK && multiple > 0 && w % multiple == 0);
      check(std::strcmp(tp_pipeline_type(own), "sd3") == 0 && tp_pipeline_name(own)[0] != '\0');
    }
    pipeline = own;  // NULL when refused: generate must say so
  }

  tp_request* req = nullptr;
  check(tp_request_create(&req, nullptr) == TP_OK && req != nullptr);
  Expected e;
  ProgressState progress;
  for (int n = f.ConsumeIntegralInRange(0, 12); n > 0 && f.remaining_bytes() > 0; --n)
    apply_setter(f, req, e, progress);

  // Generates only what runs in milliseconds: invalid settings (refused before any work) or small ones.
  const int32_t steps = e.steps ? e.steps : kDefaultSteps;
  const int images = e.prompts * e.images_per_prompt;
  const bool cheap = side_cheap(e.width) && side_cheap(e.height) &&
                     ((images <= 4 && steps <= 3) || (images <= 1 && steps <= kDefaultSteps));
  if (cheap) {
    tp_result* result = nullptr;
    Err err(f.ConsumeBool());
    const tp_code c = err.done(tp_pipeline_generate(&result, pipeline, req, err.ptr()));
    check((c == TP_OK) == (result != nullptr));
    ++g_tally.calls;
    g_tally.cancelled += c == TP_CANCELLED;
    if (pipeline == nullptr || e.prompts == 0) check(c != TP_OK);
    if (e.cancelled) check(c != TP_OK);
    if (e.foreign_option) check(c == TP_UNIMPLEMENTED || c == TP_INVALID_ARGUMENT || c == TP_CANCELLED);
    if (c == TP_OK) {
      check(!e.cancelled);
      check(e.cancel_at_step < 1 || e.cancel_at_step > steps);
      if (progress.cancel_at_step >= 0) check(progress.last_step == steps);  // progress reached every step
      check_result(f, result, e);
      ++g_tally.succeeded;
      g_tally.images += static_cast<unsigned>(images);
    }
    tp_result_free(result);
  }
  fuzz_registry_queries(f);

  // NULL handles everywhere.
  check(tp_pipeline_generate(nullptr, pipeline, req, nullptr) == TP_INVALID_ARGUMENT);
  check(tp_request_add_prompt(nullptr, "x", nullptr) == TP_INVALID_ARGUMENT);
  check(tp_result_get_info(nullptr, nullptr, nullptr) == TP_INVALID_ARGUMENT);
  tp_request_cancel(nullptr);
  tp_result_free(nullptr);
  tp_request_destroy(req);
  tp_pipeline_destroy(own);
  return 0;
}
