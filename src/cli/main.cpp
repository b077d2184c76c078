// twistedpic: the command line.
//
//   twistedpic list                                     the registry's table
//   twistedpic generate "a red circle on a white background" --seed 3 --out red.png
//   twistedpic --watch generate ...                     residency transitions and device memory as they happen
//   twistedpic --config models.json serve --port 7860   the HTTP server (src/server, docs/server.md)
//
// Without --config, the registry holds one pipeline, "default": the model in
// --model-dir (default: the tiny SD3 model that ships with twistedpic).
// Progress bars (loading, offloading, denoising) go to stderr when it is a
// terminal; --quiet silences them.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <thread>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>

#include "twistedpic/pipeline.h"
#include "twistedpic/runtime.h"
#include "twistedpic/version.h"
#include "server/server.h"
#include "server/server_config.h"

#ifndef TP_SOURCE_MODEL_DIR
#define TP_SOURCE_MODEL_DIR ""
#endif

namespace {

// The tiny default model: installed next to the binary, else in the source tree.
std::string default_model_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto installed = exe.parent_path().parent_path() / "share" / "twistedpic" / "models" / "tiny-sd3";
    if (std::filesystem::exists(installed / "model_index.json", ec)) return installed.string();
  }
  return TP_SOURCE_MODEL_DIR;
}

using Clock = std::chrono::steady_clock;

std::string mib(int64_t bytes) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(1);
  s << static_cast<double>(bytes) / (1 << 20) << " MiB";
  return s.str();
}

// One line on stderr, redrawn in place; nothing when stderr is not a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void draw(const std::string& label, double fraction, const std::string& detail = "") {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    const int width = 30, filled = static_cast<int>(fraction * width + 0.5);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[K%-28s [%s] %3d%% %s", label.c_str(), bar.c_str(),
                 static_cast<int>(fraction * 100 + 0.5), detail.c_str());
    if (fraction >= 1) std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  std::mutex mu_;
};

struct Cli {
  std::string config_file, model_dir = default_model_dir(), dtype = "fp32", preset = "max_gpu_availability";
  bool watch = false, quiet = false, offload_text_encoders = true;
  double idle_timeout = -1, linger = 0;
  std::string timeline;
  // generate
  std::vector<std::string> prompts;
  std::string negative, out = "twistedpic.png", model = "default";
  int steps = 0, width = 0, height = 0, count = 1, max_sequence_length = 0;  // 0: the model's
  std::vector<std::string> options;  // KEY=VALUE, the pipeline's request options
  std::string scheduler;             // the request option "scheduler"
  double guidance = -1;
  uint64_t seed = 0;
};

int fail(const tp::Error& e) {
  std::cerr << "twistedpic: " << tp::error_code_name(e.code) << ": " << e.message << "\n";
  return 1;
}

tp::Expected<tp::RegistryConfig> make_config(const Cli& cli) {
  tp::RegistryConfig config;
  if (!cli.config_file.empty()) {
    TP_ASSIGN_OR_RETURN(config, tp::load_registry_config(cli.config_file));
  } else {
    if (cli.model_dir.empty()) return tp::invalid_argument("no --config and no --model-dir (and no default model)");
    TP_ASSIGN_OR_RETURN(config.policy, tp::policy_preset(cli.preset));
    config.preset = cli.preset;
    if (cli.idle_timeout >= 0) config.policy.idle_timeout_s = cli.idle_timeout;
    tp::ModelConfig m;
    m.name = "default";
    m.source = cli.model_dir;
    m.pipeline_type = tp::kDetectPipelineType;  // SD3 or Flux, as the folder says
    auto dtype = tp::dtype_from_config_name(cli.dtype);
    if (!dtype) return tp::invalid_argument("--dtype '" + cli.dtype + "': use fp32, fp16 or bf16");
    m.dtype = *dtype;
    config.models.push_back(m);
  }
  tp::ExpandOptions expand;
  if (cli.offload_text_encoders) expand.text_encoders_unload_after = tp::Tier::kHost;
  return tp::expand_pipeline_components(std::move(config), expand);
}

struct Session {
  tp::RegistryOptions options;
  std::unique_ptr<tp::ModelRegistry> registry;
  Clock::time_point start = Clock::now();
  // The --timeline record: device bytes in use over time, events, images.
  std::mutex mu;
  std::ostringstream samples, events, images;  // guarded by mu; JSON array bodies
  // The --watch summary, guarded by mu.
  int loads = 0, unloads = 0;
  int64_t bytes_loaded = 0, bytes_returned = 0, start_used = 0, peak_used = 0;

  tp::Expected<tp::DeviceMemoryInfo> query() const {
    if (!options.monitor) return tp::unavailable("no memory monitor");
    return options.monitor->query();
  }
  static int64_t used_bytes(const tp::Expected<tp::DeviceMemoryInfo>& m) {
    return m ? static_cast<int64_t>(m->total_bytes - m->free_bytes) : 0;
  }
  int64_t used_bytes() const { return used_bytes(query()); }
  void sample() {
    const double now = t();
    const int64_t used = used_bytes();
    std::lock_guard lock(mu);
    samples << (samples.tellp() > 0 ? "," : "") << "[" << now << "," << used << "]";
  }

  double t() const { return std::chrono::duration<double>(Clock::now() - start).count(); }
  // "<monitor> used X MiB of Y MiB" for one query `m`.
  std::string memory(const tp::Expected<tp::DeviceMemoryInfo>& m) const {
    if (!m) return "device memory unknown";
    return options.monitor->name() + " used " + mib(static_cast<int64_t>(m->total_bytes - m->free_bytes)) + " of " +
           mib(static_cast<int64_t>(m->total_bytes));
  }
};

tp::Status open_session(const Cli& cli, ProgressBar& bar, Session& s) {
  TP_ASSIGN_OR_RETURN(tp::RegistryConfig config, make_config(cli));
  TP_ASSIGN_OR_RETURN(s.options, tp::default_registry_options());
  s.options.on_transfer = [&bar](const std::string& model, tp::Tier from, tp::Tier to, uint64_t done,
                                 uint64_t total) {
    const std::string verb = to == tp::Tier::kDevice ? (from == tp::Tier::kHost ? "reloading " : "loading ")
                                                     : "offloading ";
    bar.draw(verb + model, total ? static_cast<double>(done) / static_cast<double>(total) : 1.0, mib(static_cast<int64_t>(total)));
  };
  TP_ASSIGN_OR_RETURN(s.registry, tp::ModelRegistry::create(std::move(config), s.options));
  return {};
}

// `text` as a JSON string; bytes that are not UTF-8 become U+FFFD.
std::string json_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Records every event for --timeline.
// REQUIRES: `s` outlives its registry's events (it owns the registry).
void subscribe_timeline(Session& s) {
  s.sample();
  s.registry->subscribe([&s](const tp::ResidencyEvent& e) {
    s.sample();
    std::lock_guard lock(s.mu);
    s.events << (s.events.tellp() > 0 ? "," : "") << "{\"t\":" << s.t() << ",\"model\":" << json_string(e.model)
             << ",\"from\":\"" << tp::tier_name(e.from) << "\",\"to\":\"" << tp::tier_name(e.to)
             << "\",\"reason\":\"" << tp::reason_name(e.reason) << "\",\"bytes\":" << e.bytes
             << ",\"bytes_returned\":" << e.bytes_returned << "}";
  });
}

tp::Status write_timeline(Session& s, const std::string& path) {
  s.sample();
  std::lock_guard lock(s.mu);
  std::ofstream out(path);
  out << "{\"device\":" << json_string(s.options.monitor->name()) << ",\"samples\":[" << s.samples.str()
      << "],\"events\":[" << s.events.str() << "],\"images\":[" << s.images.str() << "]}\n";
  out.close();
  if (!out) return tp::unavailable("cannot write the timeline to " + path);
  return {};
}

// REQUIRES: `s` outlives its registry's events (it owns the registry).
void subscribe_watch(Session& s) {
  const auto start = s.query();
  std::cerr << "[" << std::fixed << std::setprecision(2) << s.t() << "s] start: " << s.memory(start) << "\n";
  s.start_used = s.peak_used = Session::used_bytes(start);
  s.registry->subscribe([&s](const tp::ResidencyEvent& e) {
    const auto now = s.query();
    {
      std::lock_guard lock(s.mu);
      if (!e.failed && e.to == tp::Tier::kDevice) {
        ++s.loads;
        s.bytes_loaded += static_cast<int64_t>(e.bytes);
      } else if (e.from == tp::Tier::kDevice) {
        ++s.unloads;
        s.bytes_returned += e.bytes_returned;
      }
      s.peak_used = std::max(s.peak_used, Session::used_bytes(now));
    }
    std::ostringstream line;
    line << std::fixed << std::setprecision(2) << "[" << s.t() << "s] " << e.model << ": " << tp::tier_name(e.from)
         << " -> " << tp::tier_name(e.to) << " (" << tp::reason_name(e.reason) << ") " << mib(static_cast<int64_t>(e.bytes))
         << " in " << e.ms << " ms";
    if (e.to != tp::Tier::kDevice && e.from == tp::Tier::kDevice)
      line << ", " << mib(e.bytes_returned) << " returned to the driver";
    if (e.failed) line << " FAILED: " << e.error;
    line << "; " << s.memory(now);
    std::cerr << line.str() << "\n";
  });
}

int run_list(Session& s) {
  std::printf("%-28s %-18s %-6s %-10s %-8s %-10s %12s %12s %6s\n", "MODEL", "TYPE", "DTYPE", "STATE", "TIER", "ON",
              "DEVICE", "HOST", "LOADS");
  for (const tp::ModelInfo& m : s.registry->list())
    std::printf("%-28s %-18s %-6s %-10s %-8s %-10s %12s %12s %6llu\n", m.name.c_str(), m.pipeline_type.c_str(),
                std::string(tp::dtype_config_name(m.dtype)).c_str(), std::string(tp::state_name(m.state)).c_str(),
                std::string(tp::tier_name(m.tier)).c_str(), m.device.c_str(),
                mib(static_cast<int64_t>(m.device_bytes)).c_str(), mib(static_cast<int64_t>(m.host_bytes)).c_str(),
                static_cast<unsigned long long>(m.load_count));
  // The devices: what each holds, what others hold, what the policy keeps free.
  const tp::RegistryStats st = s.registry->stats();
  std::printf("\n%-10s %12s %12s %12s %12s %12s %12s\n", "DEVICE", "TOTAL", "FREE", "MODELS", "SCRATCH", "OTHERS",
              "HEADROOM");
  for (const tp::DeviceStats& d : st.devices)
    std::printf("%-10s %12s %12s %12s %12s %12s %12s\n", d.name.c_str(), mib(static_cast<int64_t>(d.total_bytes)).c_str(),
                mib(static_cast<int64_t>(d.free_bytes)).c_str(), mib(static_cast<int64_t>(d.held_bytes)).c_str(),
                mib(static_cast<int64_t>(d.scratch_bytes)).c_str(),
                mib(static_cast<int64_t>(d.other_process_bytes)).c_str(),
                mib(static_cast<int64_t>(d.headroom_bytes)).c_str());
  return 0;
}

// "a red circle" -> "a_red_circle"
std::string slug(const std::string& prompt) {
  std::string s;
  for (char c : prompt) {
    if (std::isalnum(static_cast<unsigned char>(c))) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!s.empty() && s.back() != '_') s += '_';
    if (s.size() >= 60) break;
  }
  while (!s.empty() && s.back() == '_') s.pop_back();
  return s.empty() ? "image" : s;
}

int run_generate(const Cli& cli, Session& s, ProgressBar& bar) {
  auto pipeline = tp::Pipeline::create(*s.registry, cli.model);
  if (!pipeline) return fail(pipeline.error());
  std::map<std::string, std::string> options;
  for (const std::string& o : cli.options) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) return fail(tp::invalid_argument("--option '" + o + "': write KEY=VALUE").value());
    options[o.substr(0, eq)] = o.substr(eq + 1);
  }
  if (!cli.scheduler.empty()) options["scheduler"] = cli.scheduler;
  const size_t images = cli.prompts.size() * static_cast<size_t>(cli.count);
  const bool one_file = images == 1 && std::filesystem::path(cli.out).extension() == ".png";
  if (!one_file) std::filesystem::create_directories(cli.out);
  for (size_t p = 0; p < cli.prompts.size(); ++p) {
    for (int i = 0; i < cli.count; ++i) {
      tp::GenerateRequest r;
      r.prompts = {cli.prompts[p]};
      if (!cli.negative.empty()) r.negative_prompts = {cli.negative};
      r.steps = cli.steps;  // 0: the model's default
      if (cli.guidance >= 0) r.guidance_scale = cli.guidance;
      r.width = cli.width;
      r.height = cli.height;
      r.seed = cli.seed + static_cast<uint64_t>(i);
      r.max_sequence_length = cli.max_sequence_length;
      r.options = options;
      r.on_step = [&](const tp::StepProgress& sp) {
        if (!cli.timeline.empty()) s.sample();
        bar.draw("denoising", static_cast<double>(sp.step) / sp.steps,
                 std::to_string(sp.step) + "/" + std::to_string(sp.steps));
        return true;
      };
      auto result = (*pipeline)->generate(r);
      if (!result) return fail(result.error());
      const std::filesystem::path path =
          one_file ? std::filesystem::path(cli.out)
                   : std::filesystem::path(cli.out) / (slug(cli.prompts[p]) + "__seed" + std::to_string(r.seed) + ".png");
      if (auto w = tp::write_png(result->images[0], path); !w) return fail(w.error());
      {
        std::lock_guard lock(s.mu);
        s.images << (s.images.tellp() > 0 ? "," : "") << "{\"path\":" << json_string(path.string())
                 << ",\"prompt\":" << json_string(cli.prompts[p]) << ",\"seed\":" << r.seed << "}";
      }
      std::printf("%s  (%dx%d, seed %llu, %d steps, guidance %g, %.2f s: encode %.2f, denoise %.2f, decode %.2f)\n",
                  path.c_str(), result->images[0].width, result->images[0].height,
                  static_cast<unsigned long long>(r.seed), result->steps, result->guidance_scale,
                  result->timings.total_s, result->timings.encode_s, result->timings.denoise_s,
                  result->timings.decode_s);
      for (const std::string& w : result->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Cli cli;
  CLI::App app{"twistedpic " TP_VERSION_STRING ": text-to-image that shares the GPU politely"};
  app.set_version_flag("--version", TP_VERSION_STRING);
  app.add_option("--config", cli.config_file, "registry config (JSON); default: one pipeline from --model-dir");
  app.add_option("--model-dir", cli.model_dir, "a diffusers folder or HF id (without --config)")
      ->default_str(cli.model_dir);
  app.add_option("--dtype", cli.dtype, "fp32, fp16 or bf16 (without --config)")->default_str(cli.dtype);
  app.add_option("--preset", cli.preset, "memory policy preset (without --config)")->default_str(cli.preset);
  app.add_flag("--watch,-w", cli.watch, "print residency transitions and device memory as they happen");
  app.add_flag("--quiet,-q", cli.quiet, "no progress bars");
  app.add_option("--idle-timeout", cli.idle_timeout, "seconds idle before a model leaves the device (without --config)");
  app.add_option("--linger", cli.linger, "seconds to stay after the work, so that idle timeouts show")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--timeline", cli.timeline, "write device memory over time and the events to this JSON file");
  app.add_flag("!--keep-text-encoders", cli.offload_text_encoders,
               "keep the text encoders on the device (default: offload them to pinned host memory after encoding)");
  app.require_subcommand(1);

  CLI::App* list = app.add_subcommand("list", "the registry's models and where they are");
  CLI::App* gen = app.add_subcommand("generate", "generate images from prompts");
  gen->add_option("prompts", cli.prompts, "one or more prompts")->required();
  gen->add_option("--model,-m", cli.model, "the pipeline to use")->default_str(cli.model);
  gen->add_option("--negative,-n", cli.negative, "negative prompt");
  gen->add_option("--steps,-s", cli.steps, "denoising steps (default: the model's, else 28)")->check(CLI::Range(1, 1000));
  gen->add_option("--guidance,-g", cli.guidance, "classifier-free guidance scale (default: the model's, else 7)")->check(CLI::Range(0.0, 100.0));
  gen->add_option("--seed", cli.seed, "noise seed (image i of a prompt uses seed + i)");
  gen->add_option("--width,-W", cli.width, "pixels (default: the model's)");
  gen->add_option("--height,-H", cli.height, "pixels (default: the model's)");
  gen->add_option("--count,-c", cli.count, "images per prompt")->check(CLI::Range(1, 1000));
  gen->add_option("--max-sequence-length", cli.max_sequence_length,
                  "T5 tokens (default: the model's, 256 for SD3, 512 for Flux; SDXL has no T5)")
      ->check(CLI::Range(1, 512));
  gen->add_option("--option,-O", cli.options,
                  "KEY=VALUE, a request option of the pipeline (Flux: true_cfg_scale; SDXL: scheduler, "
                  "guidance_rescale); repeatable");
  gen->add_option("--scheduler", cli.scheduler,
                  "SDXL's sampler: euler, euler_a, dpmpp_2m, dpmpp_2m_karras or a diffusers scheduler class "
                  "(default: the model's scheduler_config.json)");
  gen->add_option("--out,-o", cli.out, "a .png file for one image, else a folder")->default_str(cli.out);
  tp::server::ServerOptions serve_options;
  CLI::App* serve = app.add_subcommand("serve", "serve the pipelines over HTTP (OpenAI Images, /api/ps, /metrics)");
  serve->add_option("--host", serve_options.host, "address to bind (default: loopback)")
      ->default_str(serve_options.host);
  serve->add_option("--port", serve_options.port, "port (0: any free one)")
      ->check(CLI::Range(0, 65535))
      ->default_str(std::to_string(serve_options.port));
  serve->add_option("--api-key", serve_options.api_key, "require Authorization: Bearer KEY")
      ->envname("TWISTEDPIC_API_KEY");
  serve->add_option("--concurrency", serve_options.concurrency, "generations each pipeline runs at once")
      ->check(CLI::Range(1, 1024))
      ->default_str(std::to_string(serve_options.concurrency));
  serve->add_option("--queue", serve_options.queue_depth, "requests each pipeline lets wait; more get 429")
      ->check(CLI::Range(0, 100000))
      ->default_str(std::to_string(serve_options.queue_depth));
  serve->add_option("--max-body-bytes", serve_options.max_body_bytes, "request body limit")
      ->check(CLI::Range(1024, 1 << 30))
      ->capture_default_str();
  serve->add_option("--max-prompt-bytes", serve_options.max_prompt_bytes, "prompt limit")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  serve->add_option("--read-timeout", serve_options.read_timeout_s, "seconds a request may stall")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  serve->add_option("--drain-grace", serve_options.drain_grace_s, "seconds SIGTERM lets generations finish")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  serve->add_option("--keep-alive", serve_options.default_keep_alive_s,
                    "default keep_alive in seconds (negative: the policy's)");
  serve->add_option("--write-timeout", serve_options.write_timeout_s, "seconds a response may stall")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  serve->add_option("--max-images", serve_options.max_images, "images per request (OpenAI's n)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  serve->add_option("--max-event-clients", serve_options.max_event_clients, "open /api/events streams at once")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  serve->add_option("--event-buffer", serve_options.event_buffer,
                    "events an /api/events client may fall behind before it is dropped")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  serve->add_option("--ollama", serve_options.ollama.url, "Ollama on the same GPU, e.g. http://127.0.0.1:11434");
  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) tp::server::block_stop_signals();  // before the registry starts its threads
  if (serve->parsed() && !cli.config_file.empty()) {
    // The config's "server" object first, then the flags given on the command line over it.
    tp::server::ServerOptions merged;
    if (auto st = tp::server::read_server_config(cli.config_file, merged); !st) return fail(st.error());
    auto given = [&](const char* flag) { return serve->get_option(flag)->count() > 0; };
    if (given("--host")) merged.host = serve_options.host;
    if (given("--port")) merged.port = serve_options.port;
    if (given("--api-key")) merged.api_key = serve_options.api_key;
    if (given("--concurrency")) merged.concurrency = serve_options.concurrency;
    if (given("--queue")) merged.queue_depth = serve_options.queue_depth;
    if (given("--max-body-bytes")) merged.max_body_bytes = serve_options.max_body_bytes;
    if (given("--max-prompt-bytes")) merged.max_prompt_bytes = serve_options.max_prompt_bytes;
    if (given("--read-timeout")) merged.read_timeout_s = serve_options.read_timeout_s;
    if (given("--write-timeout")) merged.write_timeout_s = serve_options.write_timeout_s;
    if (given("--drain-grace")) merged.drain_grace_s = serve_options.drain_grace_s;
    if (given("--keep-alive")) merged.default_keep_alive_s = serve_options.default_keep_alive_s;
    if (given("--max-images")) merged.max_images = serve_options.max_images;
    if (given("--max-event-clients")) merged.max_event_clients = serve_options.max_event_clients;
    if (given("--event-buffer")) merged.event_buffer = serve_options.event_buffer;
    if (given("--ollama")) merged.ollama.url = serve_options.ollama.url;
    serve_options = std::move(merged);
  }

  ProgressBar bar(!cli.quiet && isatty(STDERR_FILENO));
  auto session = std::make_unique<Session>();
  if (auto st = open_session(cli, bar, *session); !st) return fail(st.error());
  if (cli.watch) subscribe_watch(*session);
  if (!cli.timeline.empty()) subscribe_timeline(*session);
  int rc = list->parsed()    ? run_list(*session)
           : serve->parsed() ? tp::server::serve(*session->registry, serve_options)
                             : run_generate(cli, *session, bar);
  if (rc != 0) return rc;
  // Stay a while (the background thread applies idle timeouts), sampling memory.
  for (auto until = Clock::now() + std::chrono::duration<double>(cli.linger); Clock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!cli.timeline.empty()) session->sample();
  }
  if (cli.watch) {
    Session& s = *session;
    const auto end = s.query();
    std::lock_guard lock(s.mu);
    std::cerr << "[" << std::fixed << std::setprecision(2) << s.t() << "s] end: " << s.memory(end) << "\n"
              << "lifecycle: " << s.loads << " loads (" << mib(s.bytes_loaded) << "), " << s.unloads << " unloads ("
              << mib(s.bytes_returned) << " returned to the driver); device used " << mib(s.start_used)
              << " at start, " << mib(s.peak_used) << " at peak, " << mib(Session::used_bytes(end)) << " at the end\n";
  }
  if (!cli.timeline.empty())
    if (auto st = write_timeline(*session, cli.timeline); !st) return fail(st.error());
  return 0;
}
