// twistedpic: `twistedpic serve` (server.h): routes, the per-pipeline queues,
// keep_alive, metrics, draining. HTTP is Debian's cpp-httplib; JSON is
// nlohmann's, parsed without exceptions. The wire formats are in wire.h, the
// Prometheus text in metrics_text.h, disconnect detection in connection.h.
#include "server/server.h"

#include "server/connection.h"
#include "server/event_stream.h"
#include "server/metrics_text.h"
#include "server/ollama_neighbour.h"
#include "server/wire.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "twistedpic/image.h"
#include "twistedpic/log.h"
#include "twistedpic/pipeline.h"

namespace tp::server {
namespace {

constexpr const char* kLog = "server";
constexpr int kMaxSide = 4096;  // pixels, each side, before the pipeline's own checks
constexpr int kEventSocketBuffer = 16 * 1024;  // SO_SNDBUF of an /api/events connection (Linux doubles it)

// The request a generation thread is serving, for tagging the registry's
// events (which run on the thread that made the transition): null elsewhere.
thread_local const std::string* current_request = nullptr;

// Sets current_request for a scope (also when the scope is left by an exception).
class RequestScope {
 public:
  explicit RequestScope(const std::string& id) { current_request = &id; }
  ~RequestScope() { current_request = nullptr; }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
};

const char* stage_word(Stage s) {
  switch (s) {
    case Stage::kEncode: return "encode";
    case Stage::kDenoise: return "denoise";
    case Stage::kDecode: return "decode";
    case Stage::kWaiting: return "waiting";
  }
  return "unknown";
}

// What a residency transition is, in one word: load, reload, offload, unload, evict, drop.
const char* transition_word(const ResidencyEvent& e) {
  if (e.to == Tier::kDevice) return e.from == Tier::kHost ? "reload" : "load";
  if (e.from == Tier::kDevice) {
    if (e.reason == Reason::kExplicit) return "unload";
    return "evict";
  }
  return "drop";  // host -> disk
}

// A client's own X-Request-Id when it is a plain token, else ours.
bool plain_request_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  return true;
}

// Debian's cpp-httplib 0.11 listens with a backlog of 5 (compiled into the
// library): a burst of clients overflows it, and some of them are reset. A
// second listen() on the bound socket widens it (Linux allows it).
class HttpServer : public httplib::Server {
 public:
  void widen_backlog(int backlog) { ::listen(svr_sock_, backlog); }
};

// ---- per-pipeline queues ---------------------------------------------------

struct Lane {
  std::string name;
  std::string pipeline_type;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<std::string> networks;  // its registry models

  std::mutex mu;
  std::condition_variable cv;
  // All guarded by mu.
  int running = 0;
  int waiting = 0;
  uint64_t next_ticket = 0;                      // FIFO: the next ticket handed out
  uint64_t head = 0;                             // the ticket admitted next
  std::set<uint64_t> abandoned;                  // tickets whose clients left while queued
  std::set<std::atomic<bool>*> cancels;          // of the running generations
  std::optional<Steady::time_point> keep_until;  // the server's keep_alive deadline
  // Metrics, guarded by mu.
  uint64_t ok = 0, failed = 0, disconnected = 0, rejected = 0, images = 0;
  SecondsHistogram latency;
  double mean_s = 0;  // of the last generations, for Retry-After
};

}  // namespace

struct ImageServer::Impl {
  ModelRegistry& registry;
  ServerOptions opt;
  HttpServer http;
  std::vector<std::unique_ptr<Lane>> lanes;
  std::map<std::string, std::vector<std::string>, std::less<>> pipelines_of;  // network -> pipelines
  int port = 0;
  std::atomic<bool> draining{false};
  std::atomic<bool> cancel_all{false};
  std::atomic<bool> stopped{false};     // stop() or drain() was called: run() must not (go on) listen
  std::atomic<bool> run_active{false};  // run() is in (or about to enter) the listener
  std::atomic<uint64_t> request_ids{0};
  EventHub hub;
  int registry_subscription = -1;
  std::unique_ptr<OllamaWatch> ollama;  // when options name a neighbour
  const int64_t started_unix = static_cast<int64_t>(std::time(nullptr));

  std::mutex metrics_mu;
  std::map<std::pair<std::string, int>, uint64_t> http_requests;  // (route, status), guarded by metrics_mu

  std::mutex reaper_mu;
  std::condition_variable reaper_cv;
  bool reaper_stop = false;  // guarded by reaper_mu
  std::thread reaper;

  Impl(ModelRegistry& r, ServerOptions o)
      : registry(r),
        opt(std::move(o)),
        hub(static_cast<size_t>(opt.event_buffer), static_cast<size_t>(opt.max_event_clients)) {}

  // Registry transitions as "residency" events, tagged with the request that
  // caused them when a generation thread made them.
  void on_residency(const ResidencyEvent& e) {
    json d = {{"request_id", current_request ? json(*current_request) : json(nullptr)},
              {"event", transition_word(e)},
              {"model", e.model},
              {"from", std::string(tier_name(e.from))},
              {"to", std::string(tier_name(e.to))},
              {"reason", std::string(reason_name(e.reason))},
              {"bytes", e.bytes},
              {"ms", e.ms},
              {"failed", e.failed}};
    if (e.from == Tier::kDevice) d["bytes_returned"] = e.bytes_returned;
    if (e.failed) d["error"] = e.error;
    hub.publish("residency", std::move(d));
  }

  Lane* lane(std::string_view name) {
    for (auto& l : lanes)
      if (l->name == name) return l.get();
    return nullptr;
  }

  void routes();
  void generate(const httplib::Request& req, httplib::Response& res);
  void models(httplib::Response& res);
  void ps(httplib::Response& res);
  void unload(const httplib::Request& req, httplib::Response& res);
  void metrics(httplib::Response& res);
  void events(const httplib::Request& req, httplib::Response& res);

  // Unloads `lane`'s networks to disk (those leased elsewhere stay).
  void unload_lane(Lane& lane) {
    for (const std::string& n : lane.networks) {
      auto r = registry.unload(n, Tier::kDisk);
      if (!r && r.error().code != ErrorCode::kFailedPrecondition)
        TP_LOG(kWarn, kLog, "keep_alive: unloading " << n << ": " << r.error().to_string());
    }
  }

  // Before a load that does not fit even after our own evictions (the
  // registry's plan counts them: our models always yield first), ask the
  // neighbour for room. Called on the generating thread, before it waits.
  void before_load(const std::string& network, const std::string& request_id) {
    if (!ollama) return;
    auto plan = registry.plan(network);
    if (!plan || plan->resident || plan->fits) return;
    const uint64_t have = plan->free_bytes + plan->bytes_evicted;
    const uint64_t needed = plan->needed_bytes > have ? plan->needed_bytes - have : 0;
    const OllamaDecision d = ollama->make_room(needed);
    // At warning level, also when it worked: another program's model was unloaded.
    TP_LOG(kWarn, "ollama",
           request_id << ": loading " << network << " lacks " << needed << " bytes: " << d.outcome << ": " << d.message);
    hub.publish("neighbour", {{"request_id", request_id},
                              {"neighbour", "ollama"},
                              {"model", network},
                              {"needed_bytes", needed},
                              {"decision", d.outcome},
                              {"asked", d.asked},
                              {"freed_vram", d.freed_vram},
                              {"held_vram", d.held_vram},
                              {"message", d.message}});
  }

  void reap() {
    std::unique_lock lock(reaper_mu);
    auto next_poll = Steady::now();
    while (!reaper_stop) {
      reaper_cv.wait_for(lock, std::chrono::milliseconds(200));
      if (reaper_stop) break;
      lock.unlock();
      // The neighbour's use is inferred from how its /api/ps changes: look every 2 s.
      if (ollama && Steady::now() >= next_poll) {
        (void)ollama->poll();
        next_poll = Steady::now() + std::chrono::seconds(2);
      }
      for (auto& l : lanes) {
        bool due = false;
        {
          std::lock_guard g(l->mu);
          if (l->keep_until && Steady::now() >= *l->keep_until && l->running == 0 && l->waiting == 0) {
            l->keep_until.reset();
            due = true;
          }
        }
        if (due) unload_lane(*l);
      }
      lock.lock();
    }
  }

  // Stops the listener, also when run() is only about to start it.
  void stop_listener() {
    stopped = true;
    hub.close();  // ends the /api/events streams, which hold worker threads
    http.stop();
    while (run_active.load()) {
      http.stop();  // a no-op until the listener runs; then it ends it
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void stop_reaper() {
    std::thread t;
    {
      std::lock_guard g(reaper_mu);
      reaper_stop = true;
      t = std::move(reaper);
    }
    reaper_cv.notify_all();
    if (t.joinable()) t.join();
  }
};

namespace {

// A place in a lane: waits its turn, and frees it on destruction.
class Slot {
 public:
  Slot(Lane& lane, std::atomic<bool>* cancel) : lane_(&lane), cancel_(cancel) {}
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  ~Slot() {
    if (!admitted_) return;
    {
      std::lock_guard g(lane_->mu);
      --lane_->running;
      lane_->cancels.erase(cancel_);
    }
    lane_->cv.notify_all();
  }

  // Takes a running place, waiting in the queue if the lane is busy. An error
  // (429) when the queue is full; 499 when the client on `fd` (-1: unknown)
  // disconnects while queued; 503 when the server cancels everything.
  std::optional<HttpError> enter(const ServerOptions& opt, const std::atomic<bool>& cancel_all, int fd) {
    std::unique_lock lock(lane_->mu);
    if (lane_->running >= opt.concurrency || lane_->waiting > 0) {
      if (lane_->waiting >= opt.queue_depth) {
        ++lane_->rejected;
        const double ahead = lane_->running + lane_->waiting;
        const int retry =
            std::max(1, static_cast<int>(std::ceil(ahead * std::max(lane_->mean_s, 0.1) / opt.concurrency)));
        return HttpError{429,
                         "rate_limit_error",
                         "queue_full",
                         "pipeline '" + lane_->name + "' is busy: " + std::to_string(lane_->running) + " running, " +
                             std::to_string(lane_->waiting) + " queued (queue depth " +
                             std::to_string(opt.queue_depth) + "); retry after " + std::to_string(retry) + " s",
                         "",
                         retry};
      }
    }
    const uint64_t ticket = lane_->next_ticket++;
    ++lane_->waiting;
    auto ready = [&] { return cancel_all.load() || (lane_->head == ticket && lane_->running < opt.concurrency); };
    bool gone = false;
    while (!lane_->cv.wait_for(lock, std::chrono::milliseconds(100), ready)) {
      if (fd >= 0 && peer_gone(fd)) {  // a non-blocking peek
        gone = true;
        break;
      }
    }
    --lane_->waiting;
    if (gone) {
      ++lane_->disconnected;
      lane_->abandoned.insert(ticket);
      skip_abandoned();
      lock.unlock();
      lane_->cv.notify_all();
      return HttpError{499, "invalid_request_error", "client_closed_request", "the client disconnected while queued",
                       ""};
    }
    if (cancel_all.load()) {
      lane_->cv.notify_all();
      return HttpError{503, "server_error", "shutting_down", "the server is shutting down", ""};
    }
    ++lane_->head;
    skip_abandoned();
    ++lane_->running;
    lane_->cancels.insert(cancel_);
    admitted_ = true;
    lock.unlock();
    lane_->cv.notify_all();
    return std::nullopt;
  }

 private:
  // Moves the head past the tickets of clients that left. REQUIRES: lane_->mu held.
  void skip_abandoned() {
    while (lane_->abandoned.erase(lane_->head) > 0) ++lane_->head;
  }

  Lane* lane_;
  std::atomic<bool>* cancel_;
  bool admitted_ = false;
};

// A parsed /v1/images/generations body.
struct ImagesRequest {
  Lane* lane = nullptr;
  GenerateRequest request;
  std::optional<double> keep_alive_s;
};

// REQUIRES: `lanes` is not empty.
std::optional<HttpError> parse_images_request(const json& body, const ServerOptions& opt,
                                              const std::vector<std::unique_ptr<Lane>>& lanes, ImagesRequest& out) {
  static const std::set<std::string> kKnown = {
      "model",   "prompt",         "n",    "size",    "response_format", "negative_prompt",
      "steps",   "guidance_scale", "seed", "options", "keep_alive",      "user",
      "quality", "style"};
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!kKnown.count(it.key()))
      return bad_request("unknown field '" + clip(it.key()) +
                             "'; this server reads model, prompt, n, size, response_format, negative_prompt, steps, "
                             "guidance_scale, seed, options and keep_alive",
                         clip(it.key()), "unknown_parameter");

  // model: a configured pipeline; omitted: the first.
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return bad_request("'model' must be a string", "model");
    const std::string name = it->get<std::string>();
    out.lane = nullptr;
    for (const auto& l : lanes)
      if (l->name == name) out.lane = l.get();
    if (!out.lane)
      return HttpError{404, "invalid_request_error", "model_not_found",
                       "the model '" + clip(name) + "' does not exist; GET /v1/models lists the served models",
                       "model"};
  } else {
    out.lane = lanes.front().get();
  }
  GenerateRequest& r = out.request;

  auto text = [&](const char* key, bool required, std::string& into) -> std::optional<HttpError> {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) {
      if (required) return bad_request(std::string("'") + key + "' is required", key, "missing_required_parameter");
      return std::nullopt;
    }
    if (!it->is_string()) return bad_request(std::string("'") + key + "' must be a string", key);
    into = it->get<std::string>();
    if (required && into.empty()) return bad_request(std::string("'") + key + "' is empty", key);
    if (into.size() > opt.max_prompt_bytes)
      return bad_request(std::string("'") + key + "' is " + std::to_string(into.size()) + " bytes; the limit is " +
                             std::to_string(opt.max_prompt_bytes),
                         key, "prompt_too_long");
    return std::nullopt;
  };
  std::string prompt, negative;
  if (auto e = text("prompt", true, prompt)) return e;
  if (auto e = text("negative_prompt", false, negative)) return e;
  r.prompts = {prompt};
  if (!negative.empty()) r.negative_prompts = {negative};

  // An integer in [lo, hi], or absent.
  auto integer = [&](const char* key, int64_t lo, int64_t hi,
                     std::optional<int64_t>& into) -> std::optional<HttpError> {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer()) return bad_request(std::string("'") + key + "' must be an integer", key);
    const bool fits = it->is_number_unsigned() ? it->get<uint64_t>() <= static_cast<uint64_t>(hi)
                                               : it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
    if (!fits || (it->is_number_unsigned() && static_cast<int64_t>(it->get<uint64_t>()) < lo))
      return bad_request(std::string("'") + key + "' is " + it->dump() + "; it must be in " + std::to_string(lo) +
                             ".." + std::to_string(hi),
                         key);
    into = it->is_number_unsigned() ? static_cast<int64_t>(it->get<uint64_t>()) : it->get<int64_t>();
    return std::nullopt;
  };
  std::optional<int64_t> n, steps;
  if (auto e = integer("n", 1, std::min(opt.max_images, kMaxImagesPerCall), n)) return e;
  if (auto e = integer("steps", 1, kMaxSteps, steps)) return e;
  r.images_per_prompt = static_cast<int>(n.value_or(1));
  r.steps = static_cast<int>(steps.value_or(0));

  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0))
      return bad_request("'seed' must be a non-negative integer", "seed");
    r.seed = it->get<uint64_t>();
  } else {
    r.seed = std::random_device{}();
  }

  if (auto it = body.find("guidance_scale"); it != body.end() && !it->is_null()) {
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0 || it->get<double>() > 100)
      return bad_request("'guidance_scale' must be a number in 0..100", "guidance_scale");
    r.guidance_scale = it->get<double>();
  }

  if (auto it = body.find("size"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return bad_request("'size' must be a string \"WIDTHxHEIGHT\"", "size");
    const std::string size = it->get<std::string>();
    if (size != "auto") {
      const size_t x = size.find('x');
      auto number = [](const std::string& t) -> int {
        if (t.empty() || t.size() > 5) return -1;
        for (char c : t)
          if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
        return std::stoi(t);
      };
      const int w = x == std::string::npos ? -1 : number(size.substr(0, x));
      const int h = x == std::string::npos ? -1 : number(size.substr(x + 1));
      if (w <= 0 || h <= 0)
        return bad_request("'size' is \"" + clip(size) + "\"; use \"WIDTHxHEIGHT\", e.g. \"" +
                               std::to_string(out.lane->pipeline->default_width()) + "x" +
                               std::to_string(out.lane->pipeline->default_height()) + "\", or \"auto\"",
                           "size");
      const int m = out.lane->pipeline->size_multiple();
      if (w > kMaxSide || h > kMaxSide || w % m != 0 || h % m != 0)
        return bad_request("'size' is \"" + clip(size) + "\"; model '" + out.lane->name +
                               "' takes sides that are multiples of " + std::to_string(m) + ", at most " +
                               std::to_string(kMaxSide),
                           "size");
      r.width = w;
      r.height = h;
    }
  }

  if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "b64_json")
      return bad_request("'response_format' must be \"b64_json\" (this server keeps no files to link to)",
                         "response_format", "unsupported_value");
  }

  if (auto it = body.find("options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return bad_request("'options' must be an object of per-pipeline options", "options");
    for (auto o = it->begin(); o != it->end(); ++o) {
      if (o.value().is_string()) {
        r.options[o.key()] = o.value().get<std::string>();
      } else if (o.value().is_number() || o.value().is_boolean()) {
        r.options[o.key()] = o.value().dump();
      } else {
        return bad_request("option '" + clip(o.key()) + "' must be a string, a number or a boolean", "options");
      }
    }
  }

  if (auto it = body.find("keep_alive"); it != body.end() && !it->is_null()) {
    out.keep_alive_s = parse_keep_alive(*it);
    if (!out.keep_alive_s)
      return bad_request("'keep_alive' is " + clip(it->dump()) +
                             "; use seconds or a duration such as \"5m\", 0 to unload now, -1 to keep",
                         "keep_alive");
  } else if (opt.default_keep_alive_s >= 0) {
    out.keep_alive_s = opt.default_keep_alive_s;
  }
  return std::nullopt;
}

bool is_json(const httplib::Request& req) {
  const std::string type = lower(req.get_header_value("Content-Type"));
  return type.rfind("application/json", 0) == 0;
}

// The body as a JSON object, or the error to send.
std::optional<HttpError> read_json(const httplib::Request& req, json& out, bool allow_empty) {
  if (allow_empty && req.body.empty()) {
    out = json::object();
    return std::nullopt;
  }
  if (!is_json(req))
    return HttpError{415, "invalid_request_error", "unsupported_media_type",
                     "the body must be JSON with Content-Type: application/json, not '" +
                         clip(req.get_header_value("Content-Type")) + "'",
                     ""};
  out = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return bad_request("the body is not valid JSON", "", "invalid_json");
  if (!out.is_object()) return bad_request("the body must be a JSON object", "", "invalid_json");
  return std::nullopt;
}

const char* route_of(const std::string& path) {
  static constexpr const char* kRoutes[] = {
      "/v1/images/generations", "/v1/models", "/api/ps", "/api/unload", "/api/events", "/healthz", "/metrics"};
  for (const char* r : kRoutes)
    if (path == r) return r;
  return "other";
}

bool same_key(const std::string& a, const std::string& b) {
  // Constant time in the length of the configured key.
  unsigned diff = a.size() != b.size();
  for (size_t i = 0; i < b.size(); ++i) diff |= static_cast<unsigned>(i < a.size() ? a[i] ^ b[i] : b[i]);
  return diff == 0;
}

}  // namespace

void ImageServer::Impl::generate(const httplib::Request& req, httplib::Response& res) {
  const std::string client_id = req.get_header_value("X-Request-Id");
  const std::string id = plain_request_id(client_id) ? client_id : "req-" + std::to_string(++request_ids);
  res.set_header("X-Request-Id", id);
  if (draining.load())
    return send_error(res, {503, "server_error", "shutting_down", "the server is shutting down", ""});
  json body;
  if (auto e = read_json(req, body, false)) return send_error(res, *e);
  ImagesRequest parsed;
  if (auto e = parse_images_request(body, opt, lanes, parsed)) return send_error(res, *e);
  Lane& l = *parsed.lane;

  std::atomic<bool> cancel{false};
  // A client that disconnects cancels its generation (checked at every step).
  const int fd = connection_fd(req);
  bool gone = false;
  parsed.request.on_progress = [this, fd, &gone, &id, &l](const StepProgress& p, std::string_view network) {
    json d = {{"request_id", id},         {"model", l.name}, {"stage", stage_word(p.stage)},
              {"step", p.step},           {"steps", p.steps}, {"elapsed_s", p.elapsed_s}};
    if (!network.empty()) d["network"] = std::string(network);
    hub.publish("progress", std::move(d));
    if (p.stage == Stage::kWaiting && !network.empty()) before_load(std::string(network), id);
    if (fd >= 0 && peer_gone(fd)) gone = true;
    return !gone;
  };
  const auto start = Steady::now();
  Expected<GenerateResult> result = tl::unexpected(Error{ErrorCode::kInternal, "not run"});
  hub.publish("request", {{"request_id", id}, {"model", l.name}, {"state", "queued"}});
  {
    Slot slot(l, &cancel);
    if (auto e = slot.enter(opt, cancel_all, fd)) {
      hub.publish("request", {{"request_id", id}, {"model", l.name}, {"state", "refused"}, {"status", e->status}});
      return send_error(res, *e);
    }
    hub.publish("request", {{"request_id", id}, {"model", l.name}, {"state", "running"}});
    parsed.request.cancel = &cancel;
    RequestScope tag(id);
    result = l.pipeline->generate(parsed.request);
  }
  {
    const int status = gone ? 499 : result ? 200 : from_error(result.error()).status;
    hub.publish("request", {{"request_id", id},
                            {"model", l.name},
                            {"state", "done"},
                            {"status", status},
                            {"images", result ? result->images.size() : 0}});
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - start).count();

  // keep_alive: 0 unloads now (when nothing else runs on the pipeline), a
  // duration sets the server's deadline, negative leaves it to the registry.
  if (parsed.keep_alive_s) {
    bool now = false;
    {
      std::lock_guard g(l.mu);
      if (*parsed.keep_alive_s < 0) {
        l.keep_until.reset();
      } else {
        l.keep_until = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                           std::chrono::duration<double>(*parsed.keep_alive_s));
        now = *parsed.keep_alive_s == 0 && l.running == 0 && l.waiting == 0;
        if (now) l.keep_until.reset();
      }
    }
    if (now) {
      RequestScope tag(id);
      unload_lane(l);
    }
  }

  {
    std::lock_guard g(l.mu);
    if (result) {
      ++l.ok;
      l.images += result->images.size();
      l.latency.record(seconds);
      l.mean_s = l.mean_s == 0 ? seconds : 0.8 * l.mean_s + 0.2 * seconds;
    } else if (gone) {
      ++l.disconnected;
    } else {
      ++l.failed;
    }
  }
  if (gone) {
    TP_LOG(kInfo, kLog, id << " " << l.name << ": the client disconnected; generation cancelled");
    return send_error(res, {499, "invalid_request_error", "client_closed_request", "the client disconnected", ""});
  }
  if (!result) {
    TP_LOG(kWarn, kLog, id << " " << l.name << ": " << result.error().to_string());
    return send_error(res, from_error(result.error()));
  }

  json data = json::array();
  for (const Image& image : result->images) {
    auto png = encode_png(image);
    if (!png) return send_error(res, from_error(png.error()));
    data.push_back({{"b64_json", base64(*png)}});
  }
  json timings = {{"encode_s", result->timings.encode_s}, {"denoise_s", result->timings.denoise_s},
                  {"decode_s", result->timings.decode_s}, {"acquire_s", result->timings.acquire_s},
                  {"total_s", result->timings.total_s},   {"request_s", seconds}};
  json out = {{"created", static_cast<int64_t>(std::time(nullptr))},
              {"data", data},
              {"twistedpic",
               {{"request_id", id},
                {"model", l.name},
                {"width", result->width},
                {"height", result->height},
                {"steps", result->steps},
                {"guidance_scale", result->guidance_scale},
                {"seed", result->seed},
                {"warnings", result->warnings},
                {"timings", timings}}}};
  res.set_content(dump(out), "application/json");
  TP_LOG(kInfo, kLog, id << " " << l.name << ": " << result->images.size() << " image(s) in " << seconds << " s");
}

void ImageServer::Impl::models(httplib::Response& res) {
  json data = json::array();
  for (const auto& l : lanes)
    data.push_back({{"id", l->name},
                    {"object", "model"},
                    {"created", started_unix},
                    {"owned_by", "twistedpic"},
                    {"pipeline_type", l->pipeline_type},
                    {"default_size", std::to_string(l->pipeline->default_width()) + "x" +
                                         std::to_string(l->pipeline->default_height())}});
  res.set_content(dump(json{{"object", "list"}, {"data", data}}), "application/json");
}

void ImageServer::Impl::ps(httplib::Response& res) {
  // The server's keep_alive deadlines, by network.
  std::map<std::string, Steady::time_point, std::less<>> deadlines;
  for (auto& l : lanes) {
    std::lock_guard g(l->mu);
    if (!l->keep_until) continue;
    for (const std::string& n : l->networks) {
      auto [it, fresh] = deadlines.emplace(n, *l->keep_until);
      if (!fresh) it->second = std::max(it->second, *l->keep_until);
    }
  }
  json models = json::array();
  for (const ModelInfo& m : registry.list()) {
    std::optional<Steady::time_point> expires = m.expires_at;
    if (auto d = deadlines.find(m.name); d != deadlines.end())
      expires = expires ? std::min(*expires, d->second) : d->second;
    json pipelines = json::array();
    if (auto p = pipelines_of.find(m.name); p != pipelines_of.end()) pipelines = p->second;
    models.push_back({{"name", m.name},
                      {"model", m.name},
                      {"pipelines", pipelines},
                      {"state", std::string(state_name(m.state))},
                      {"tier", std::string(tier_name(m.tier))},
                      {"size", m.device_bytes + m.host_bytes},
                      {"size_vram", m.device_bytes},
                      {"device", m.device},
                      {"device_bytes", m.device_bytes},
                      {"host_bytes", m.host_bytes},
                      {"leases", m.leases},
                      {"pinned", m.pinned},
                      {"load_count", m.load_count},
                      {"expires_at", expires ? json(iso8601(*expires)) : json(nullptr)},
                      {"last_error", m.last_error.empty() ? json(nullptr) : json(m.last_error)}});
  }
  json devices = json::array();
  for (const DeviceStats& d : registry.stats().devices)
    devices.push_back({{"name", d.name},
                       {"total_bytes", d.total_bytes},
                       {"free_bytes", d.free_bytes},
                       {"held_bytes", d.held_bytes},
                       {"other_process_bytes", d.other_process_bytes},
                       {"headroom_bytes", d.headroom_bytes},
                       {"budget_bytes", d.budget_bytes},
                       {"scratch_bytes", d.scratch_bytes},
                       {"admission_queue", d.admission_queue},
                       {"resident_models", d.resident_models}});
  res.set_content(dump(json{{"models", models}, {"devices", devices}}), "application/json");
}

void ImageServer::Impl::unload(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = read_json(req, body, true)) return send_error(res, *e);
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "model" && it.key() != "to")
      return send_error(res, bad_request("unknown field '" + clip(it.key()) + "'; /api/unload reads model and to",
                                         clip(it.key()), "unknown_parameter"));
  Tier to = Tier::kDisk;
  if (auto it = body.find("to"); it != body.end() && !it->is_null()) {
    auto tier = it->is_string() ? tier_from_name(it->get<std::string>()) : std::nullopt;
    if (!tier || *tier == Tier::kDevice) return send_error(res, bad_request("'to' must be \"disk\" or \"host\"", "to"));
    to = *tier;
  }
  std::vector<std::string> names;
  bool named = false;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return send_error(res, bad_request("'model' must be a string", "model"));
    const std::string name = it->get<std::string>();
    named = true;
    if (Lane* l = lane(name)) {
      names = l->networks;
      std::lock_guard g(l->mu);
      l->keep_until.reset();
    } else if (registry.info(name)) {
      names = {name};
    } else {
      return send_error(
          res, {404, "invalid_request_error", "model_not_found",
                "no pipeline or registry model is named '" + clip(name) + "'; GET /api/ps lists them", "model"});
    }
  } else {
    for (const ModelInfo& m : registry.list()) names.push_back(m.name);
  }
  json unloaded = json::array(), busy = json::array();
  for (const std::string& n : names) {
    auto r = registry.unload(n, to);
    if (r) {
      unloaded.push_back({{"name", n},
                          {"from", std::string(tier_name(r->from))},
                          {"to", std::string(tier_name(r->to))},
                          {"bytes", r->bytes},
                          {"bytes_returned", r->bytes_returned}});
    } else if (r.error().code == ErrorCode::kFailedPrecondition) {
      busy.push_back({{"name", n}, {"message", r.error().message}});
    } else {
      return send_error(res, from_error(r.error()));
    }
  }
  if (named && unloaded.empty() && !busy.empty())
    return send_error(
        res,
        {409, "invalid_request_error", "model_busy",
         "'" + body["model"].get<std::string>() + "' is in use: " + busy[0]["message"].get<std::string>(), "model"});
  res.set_content(dump(json{{"unloaded", unloaded}, {"busy", busy}}), "application/json");
}

void ImageServer::Impl::metrics(httplib::Response& res) {
  const RegistryStats st = registry.stats();
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n" << name << " " << v << "\n";
  };
  auto gauge = [&](const char* name, const char* help, uint64_t v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n" << name << " " << v << "\n";
  };
  counter("twistedpic_loads_total", "Loads from disk to the device.", st.loads);
  counter("twistedpic_reloads_total", "Loads from the pinned host tier to the device.", st.reloads);
  counter("twistedpic_load_failures_total", "Loads that failed.", st.load_failures);
  counter("twistedpic_acquire_hits_total", "Acquires that found the model resident.", st.hits);
  counter("twistedpic_acquire_misses_total", "Acquires that loaded the model or waited for a load.", st.misses);
  counter("twistedpic_admission_failures_total", "Loads refused for lack of device memory.", st.admission_failures);
  counter("twistedpic_admission_waits_total", "Loads that waited in the admission queue.", st.admission_waits);
  counter("twistedpic_admission_cancels_total", "Admission waits ended by a cancel.", st.admission_cancels);
  gauge("twistedpic_admission_queue", "Loads waiting for device memory now, first come first served.",
        st.admission_queue);
  gauge("twistedpic_admission_queue_bytes", "Device bytes the waiting loads need.", st.admission_queue_bytes);
  out << "# HELP twistedpic_evictions_total Models moved off the device (or host copies dropped), by reason.\n"
         "# TYPE twistedpic_evictions_total counter\n";
  for (size_t r = 0; r < st.evictions_by_reason.size(); ++r)
    out << "twistedpic_evictions_total{reason=\"" << reason_name(static_cast<Reason>(r)) << "\"} "
        << st.evictions_by_reason[r] << "\n";
  out << "# HELP twistedpic_bytes_moved_total Weight bytes moved, by destination tier.\n"
         "# TYPE twistedpic_bytes_moved_total counter\n"
      << "twistedpic_bytes_moved_total{to=\"device\"} " << st.bytes_to_device << "\n"
      << "twistedpic_bytes_moved_total{to=\"host\"} " << st.bytes_to_host << "\n";
  counter("twistedpic_bytes_returned_total", "Device bytes measured as returned to the driver by unloads.",
          st.bytes_returned);
  gauge("twistedpic_device_bytes", "Device bytes held by models now.", st.device_bytes);
  gauge("twistedpic_peak_device_bytes", "The most device bytes held.", st.peak_device_bytes);
  gauge("twistedpic_host_bytes", "Pinned host bytes held by models now.", st.host_bytes);
  counter("twistedpic_cache_releases_total", "Times torch's cached device blocks were handed back.",
          st.cache_releases);
  counter("twistedpic_cache_bytes_returned_total", "Device bytes those cache releases returned to the driver.",
          st.cache_bytes_returned);
  gauge("twistedpic_device_total_bytes", "The device's memory, as its monitor reports it (0: unknown).",
        st.device_total_bytes);
  gauge("twistedpic_device_free_bytes", "Free device memory, as its monitor reports it.", st.device_free_bytes);
  gauge("twistedpic_device_bytes_other_processes", "Device bytes held by other processes (NVML).",
        st.other_process_bytes);
  gauge("twistedpic_device_headroom_bytes", "Device bytes the policy keeps free for others.", st.headroom_bytes);
  out << "# HELP twistedpic_device_memory_bytes Each device's memory, by what holds it: total, free, models"
         " (our weights), scratch (the weight engine's pool), others (other processes), headroom (kept free"
         " for others), budget (ours at most; 0: none).\n"
         "# TYPE twistedpic_device_memory_bytes gauge\n";
  for (const DeviceStats& d : st.devices) {
    const std::string dev = "device=\"" + label(d.name) + "\"";
    const std::pair<const char*, uint64_t> kinds[] = {
        {"total", d.total_bytes},       {"free", d.free_bytes},           {"models", d.held_bytes},
        {"scratch", d.scratch_bytes},   {"others", d.other_process_bytes}, {"headroom", d.headroom_bytes},
        {"budget", d.budget_bytes}};
    for (const auto& [kind, v] : kinds)
      out << "twistedpic_device_memory_bytes{" << dev << ",kind=\"" << kind << "\"} " << v << "\n";
  }
  std::array<double, Histogram::kBoundsMs.size()> bounds_s{};
  for (size_t i = 0; i < bounds_s.size(); ++i) bounds_s[i] = Histogram::kBoundsMs[i] / 1000.0;
  out << "# HELP twistedpic_load_duration_seconds Loads, by source tier.\n"
         "# TYPE twistedpic_load_duration_seconds histogram\n";
  write_histogram(out, "twistedpic_load_duration_seconds", "from=\"disk\"", bounds_s.data(), st.load_ms.buckets.data(),
                  bounds_s.size(), st.load_ms.count, st.load_ms.sum_ms / 1000.0);
  write_histogram(out, "twistedpic_load_duration_seconds", "from=\"host\"", bounds_s.data(),
                  st.reload_ms.buckets.data(), bounds_s.size(), st.reload_ms.count, st.reload_ms.sum_ms / 1000.0);

  std::ostringstream queue, running, generations, images, rejected, latency;
  for (auto& l : lanes) {
    std::lock_guard g(l->mu);
    const std::string p = "pipeline=\"" + label(l->name) + "\"";
    queue << "twistedpic_queue_depth{" << p << "} " << l->waiting << "\n";
    running << "twistedpic_generations_running{" << p << "} " << l->running << "\n";
    generations << "twistedpic_generations_total{" << p << ",outcome=\"ok\"} " << l->ok << "\n"
                << "twistedpic_generations_total{" << p << ",outcome=\"error\"} " << l->failed << "\n"
                << "twistedpic_generations_total{" << p << ",outcome=\"disconnected\"} " << l->disconnected << "\n";
    images << "twistedpic_images_total{" << p << "} " << l->images << "\n";
    rejected << "twistedpic_rejected_total{" << p << ",reason=\"queue_full\"} " << l->rejected << "\n";
    write_histogram(latency, "twistedpic_generation_duration_seconds", p, SecondsHistogram::kBounds.data(),
                    l->latency.buckets.data(), SecondsHistogram::kBounds.size(), l->latency.count, l->latency.sum);
  }
  out << "# HELP twistedpic_queue_depth Requests waiting for a generation slot.\n# TYPE twistedpic_queue_depth gauge\n"
      << queue.str()
      << "# HELP twistedpic_generations_running Generations running now.\n"
         "# TYPE twistedpic_generations_running gauge\n"
      << running.str()
      << "# HELP twistedpic_generations_total Generation requests that ran, by outcome.\n"
         "# TYPE twistedpic_generations_total counter\n"
      << generations.str()
      << "# HELP twistedpic_images_total Images generated.\n# TYPE twistedpic_images_total counter\n"
      << images.str()
      << "# HELP twistedpic_rejected_total Generation requests refused with 429.\n"
         "# TYPE twistedpic_rejected_total counter\n"
      << rejected.str()
      << "# HELP twistedpic_generation_duration_seconds Generation requests, queueing included.\n"
         "# TYPE twistedpic_generation_duration_seconds histogram\n"
      << latency.str();
  gauge("twistedpic_event_clients", "Open /api/events streams.", hub.clients());
  if (ollama) {
    const OllamaWatch::Counters c = ollama->counters();
    out << "# HELP twistedpic_ollama_decisions_total Loads that did not fit, by what was done about Ollama.\n"
           "# TYPE twistedpic_ollama_decisions_total counter\n";
    for (const char* o : {"unloaded", "busy", "not_allowed", "nothing_held", "unreachable", "unload_failed"}) {
      auto it = c.decisions.find(o);
      out << "twistedpic_ollama_decisions_total{outcome=\"" << o << "\"} " << (it == c.decisions.end() ? 0 : it->second)
          << "\n";
    }
    counter("twistedpic_ollama_unload_requests_total", "keep_alive 0 requests sent to Ollama.", c.unload_requests);
    counter("twistedpic_ollama_freed_bytes_total", "Ollama's size_vram of the models it unloaded when asked.",
            c.freed_vram);
    gauge("twistedpic_ollama_device_bytes", "Ollama's size_vram, summed, at the last look.", c.held_vram);
    gauge("twistedpic_ollama_models", "Models Ollama held at the last look.", c.models);
    gauge("twistedpic_ollama_up", "1 when Ollama answered the last look.", c.reachable ? 1 : 0);
  }
  counter("twistedpic_events_total", "Events sent to /api/events streams.", hub.published());
  counter("twistedpic_event_clients_dropped_total",
          "/api/events clients dropped because their buffer was full (slow readers).", hub.dropped_clients());
  {
    std::lock_guard g(metrics_mu);
    out << "# HELP twistedpic_http_requests_total HTTP requests answered, by route and status.\n"
           "# TYPE twistedpic_http_requests_total counter\n";
    for (const auto& [key, n] : http_requests)
      out << "twistedpic_http_requests_total{route=\"" << key.first << "\",status=\"" << key.second << "\"} " << n
          << "\n";
  }
  res.set_content(out.str(), "text/plain; version=0.0.4; charset=utf-8");
}

void ImageServer::Impl::events(const httplib::Request& req, httplib::Response& res) {
  std::string filter = req.get_param_value("request_id");
  if (!filter.empty() && !plain_request_id(filter))
    return send_error(res, bad_request("'request_id' must be 1..64 letters, digits, '-', '_', '.' or ':'",
                                       "request_id"));
  auto sub = hub.subscribe(std::move(filter));
  if (!sub)
    return send_error(res, {503, "server_error", "too_many_event_clients",
                            "at most " + std::to_string(opt.max_event_clients) +
                                " /api/events streams may be open at once (or the server is shutting down)",
                            "", 5});
  // The kernel's share of the per-client buffer: small and fixed (no autotuning), so a
  // stalled reader reaches event_buffer, and is dropped, after a bounded amount of memory.
  if (const int fd = connection_fd(req); fd >= 0) {
    const int bytes = kEventSocketBuffer;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto last_write = std::make_shared<Steady::time_point>(Steady::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, sub, last_write](size_t, httplib::DataSink& sink) {
        std::string out;
        const bool go_on = hub.next(*sub, out, std::chrono::milliseconds(500));
        if (out.empty() && Steady::now() - *last_write > std::chrono::seconds(15)) out = ": keep-alive\n\n";
        if (!out.empty()) {
          if (!sink.write(out.data(), out.size())) return false;  // the client left or stalled past the write timeout
          *last_write = Steady::now();
        }
        if (!go_on) sink.done();
        return true;
      },
      [this, sub](bool) { hub.unsubscribe(sub); });
}

void ImageServer::Impl::routes() {
  using httplib::Request;
  using httplib::Response;
  // Every handler answers in JSON, even when something throws.
  auto guarded = [this](void (Impl::*fn)(const Request&, Response&)) {
    return [this, fn](const Request& req, Response& res) {
      try {
        (this->*fn)(req, res);
      } catch (const std::exception& e) {
        send_error(res, {500, "server_error", "internal", std::string("internal error: ") + e.what(), ""});
      } catch (...) {
        send_error(res, {500, "server_error", "internal", "internal error", ""});
      }
    };
  };
  http.Post("/v1/images/generations", guarded(&Impl::generate));
  http.Post("/api/unload", guarded(&Impl::unload));
  http.Get("/v1/models", [this](const Request&, Response& res) { models(res); });
  http.Get("/api/ps", [this](const Request&, Response& res) { ps(res); });
  http.Get("/metrics", [this](const Request&, Response& res) { metrics(res); });
  http.Get("/api/events", guarded(&Impl::events));
  http.Get("/healthz", [this](const Request&, Response& res) {
    const bool ok = !draining.load();
    res.status = ok ? 200 : 503;
    res.set_content(dump(json{{"status", ok ? "ok" : "draining"}, {"models", lanes.size()}}), "application/json");
  });
  // The right path with the wrong method: 405.
  auto wrong_method = [](const char* allow) {
    return [allow](const Request& req, Response& res) {
      res.set_header("Allow", allow);
      send_error(res, {405, "invalid_request_error", "method_not_allowed",
                       clip(req.method) + " " + req.path + " is not served; use " + allow, ""});
    };
  };
  http.Get("/v1/images/generations", wrong_method("POST"));
  http.Get("/api/unload", wrong_method("POST"));
  for (const char* p : {"/v1/models", "/api/ps", "/api/events", "/metrics", "/healthz"})
    http.Post(p, wrong_method("GET"));

  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr) {
    send_error(res, {500, "server_error", "internal", "internal error", ""});
  });
  // Bearer auth before routing (so before the body is read).
  http.set_pre_routing_handler([this](const Request& req, Response& res) {
    if (opt.api_key.empty() || req.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.empty()) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, {401, "invalid_request_error", "missing_api_key",
                       "this server needs an API key: send \"Authorization: Bearer <key>\"", ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    if (auth.rfind("Bearer ", 0) != 0 || !same_key(auth.substr(7), opt.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      send_error(res, {401, "invalid_request_error", "invalid_api_key", "the API key is not valid", ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors the library answers itself (no route, a body too large, a read
  // that timed out) get OpenAI's JSON too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    HttpError e{res.status, "invalid_request_error", "", "", ""};
    switch (res.status) {
      case 404:
        e.code = "not_found";
        e.message = "no route " + clip(req.method) + " " + clip(req.path) +
                    "; this server answers /v1/images/generations, /v1/models, /api/ps, /api/unload, "
                    "/api/events, /healthz and /metrics";
        break;
      case 413:
        e.code = "body_too_large";
        e.message = "the request body is larger than " + std::to_string(opt.max_body_bytes) + " bytes";
        break;
      case 408:
        e.code = "timeout";
        e.message = "the request was not received in time";
        break;
      default:
        e.code = "bad_request";
        e.message = "the request could not be read (HTTP " + std::to_string(res.status) +
                    "): not HTTP, or not all sent within the read timeout of " +
                    [&] {
                      char b[32];
                      std::snprintf(b, sizeof b, "%g", opt.read_timeout_s);
                      return std::string(b);
                    }() +
                    " s";
        if (res.status >= 500) e.type = "server_error";
    }
    send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_logger([this](const Request& req, const Response& res) {
    {
      std::lock_guard g(metrics_mu);
      ++http_requests[{route_of(req.path), res.status}];
    }
    TP_LOG(kDebug, kLog, req.method << " " << req.path << " " << res.status);
  });
}

ImageServer::ImageServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ImageServer::~ImageServer() {
  impl_->stop_listener();
  impl_->stop_reaper();
  if (impl_->registry_subscription >= 0) (void)impl_->registry.unsubscribe(impl_->registry_subscription);
}

Expected<std::unique_ptr<ImageServer>> ImageServer::create(ModelRegistry& registry, ServerOptions options) {
  if (options.concurrency < 1 || options.concurrency > 1024)
    return invalid_argument("server: concurrency " + std::to_string(options.concurrency) + " is not in 1..1024");
  if (options.queue_depth < 0 || options.queue_depth > 100000)
    return invalid_argument("server: queue depth " + std::to_string(options.queue_depth) + " is not in 0..100000");
  if (options.port < 0 || options.port > 65535)
    return invalid_argument("server: port " + std::to_string(options.port) + " is not in 0..65535");
  if (options.max_images < 1) return invalid_argument("server: max_images must be positive");
  if (options.max_event_clients < 0 || options.max_event_clients > 256)
    return invalid_argument("server: max_event_clients " + std::to_string(options.max_event_clients) +
                            " is not in 0..256");
  if (options.event_buffer < 1 || options.event_buffer > 1000000)
    return invalid_argument("server: event_buffer " + std::to_string(options.event_buffer) + " is not in 1..1000000");
  if (!(options.read_timeout_s > 0) || !(options.write_timeout_s > 0))
    return invalid_argument("server: the read and write timeouts must be positive");
  const RegistryConfig& config = registry.config();
  if (config.pipelines.empty())
    return failed_precondition("server: the registry has no pipelines (a config with models of a pipeline_type)");
  if (!options.ollama.url.empty() && options.ollama.url.rfind("http://", 0) != 0)
    return invalid_argument("server: neighbours.ollama: expected an http:// URL such as \"http://127.0.0.1:11434\", "
                            "got \"" + options.ollama.url + "\"");
  auto impl = std::make_unique<Impl>(registry, std::move(options));
  if (!impl->opt.ollama.url.empty()) impl->ollama = std::make_unique<OllamaWatch>(impl->opt.ollama);
  for (const PipelineConfig& p : config.pipelines) {
    TP_ASSIGN_OR_RETURN(auto pipeline, Pipeline::create(registry, p.name));
    auto l = std::make_unique<Lane>();
    l->name = p.name;
    l->pipeline_type = p.pipeline_type;
    l->pipeline = std::move(pipeline);
    for (const auto& [component, model] : p.components) {
      if (std::find(l->networks.begin(), l->networks.end(), model) == l->networks.end()) l->networks.push_back(model);
      auto& users = impl->pipelines_of[model];
      if (std::find(users.begin(), users.end(), p.name) == users.end()) users.push_back(p.name);
    }
    impl->lanes.push_back(std::move(l));
  }
  const ServerOptions& o = impl->opt;
  // Every queued request holds a worker thread, plus a few for the other routes.
  // Every open /api/events stream holds one too.
  size_t threads = impl->lanes.size() * static_cast<size_t>(o.concurrency + o.queue_depth) +
                   static_cast<size_t>(o.max_event_clients) + 8;
  threads = std::clamp<size_t>(threads, 8, 1024);
  impl->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  auto split = [](double s) {
    return std::pair<time_t, time_t>(static_cast<time_t>(s), static_cast<time_t>((s - std::floor(s)) * 1e6));
  };
  impl->http.set_read_timeout(split(o.read_timeout_s).first, split(o.read_timeout_s).second);
  impl->http.set_write_timeout(split(o.write_timeout_s).first, split(o.write_timeout_s).second);
  // An idle keep-alive connection holds a worker thread (and delays a drain) this long.
  impl->http.set_keep_alive_timeout(2);
  impl->http.set_payload_max_length(o.max_body_bytes);
  impl->routes();
  Impl* raw = impl.get();
  impl->registry_subscription = registry.subscribe([raw](const ResidencyEvent& e) { raw->on_residency(e); });
  return std::unique_ptr<ImageServer>(new ImageServer(std::move(impl)));
}

Status ImageServer::bind() {
  const std::string& host = impl_->opt.host;
  int port = impl_->opt.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(host);
    if (port <= 0) return unavailable("server: cannot bind to " + host + " on any port");
  } else if (!impl_->http.bind_to_port(host, port)) {
    return unavailable("server: cannot bind to " + host + ":" + std::to_string(port) +
                       " (in use, or not an address of this machine)");
  }
  impl_->http.widen_backlog(1024);
  impl_->port = port;
  return {};
}

int ImageServer::port() const { return impl_->port; }

Status ImageServer::run() {
  Impl& s = *impl_;
  s.run_active = true;
  if (s.stopped.load()) {
    s.run_active = false;
    return {};
  }
  {
    std::lock_guard g(s.reaper_mu);
    if (!s.reaper_stop && !s.reaper.joinable()) s.reaper = std::thread([&s] { s.reap(); });
  }
  const bool ok = s.http.listen_after_bind();
  s.run_active = false;
  if (!ok && !s.stopped.load()) return unavailable("server: the listener stopped with an error");
  return {};
}

void ImageServer::drain() {
  Impl& s = *impl_;
  s.draining = true;
  auto busy = [&s] {
    int n = 0;
    for (auto& l : s.lanes) {
      std::lock_guard g(l->mu);
      n += l->running + l->waiting;
    }
    return n;
  };
  const auto grace = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                         std::chrono::duration<double>(std::max(0.0, s.opt.drain_grace_s)));
  TP_LOG(kInfo, kLog, "draining: " << busy() << " request(s) running or queued");
  while (busy() > 0 && Steady::now() < grace) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (busy() > 0) {
    TP_LOG(kWarn, kLog, "drain grace period over: cancelling " << busy() << " request(s)");
    s.cancel_all = true;
    for (auto& l : s.lanes) {
      {
        std::lock_guard g(l->mu);
        for (std::atomic<bool>* c : l->cancels) c->store(true);
      }
      l->cv.notify_all();
    }
    const auto limit = Steady::now() + std::chrono::seconds(10);
    while (busy() > 0 && Steady::now() < limit) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s.stop_listener();
  s.stop_reaper();
  if (auto st = s.registry.unload_all(Tier::kDisk); !st)
    TP_LOG(kWarn, kLog, "drain: " << st.error().to_string());
  else
    TP_LOG(kInfo, kLog, "drained: every model unloaded");
}

void ImageServer::stop() {
  impl_->stop_listener();
  impl_->stop_reaper();
}

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is an error return, not a signal
}

int serve(ModelRegistry& registry, const ServerOptions& options) {
  auto server = ImageServer::create(registry, options);
  if (!server) {
    std::fprintf(stderr, "twistedpic serve: %s\n", server.error().to_string().c_str());
    return 1;
  }
  if (auto st = (*server)->bind(); !st) {
    std::fprintf(stderr, "twistedpic serve: %s\n", st.error().to_string().c_str());
    return 1;
  }
  std::printf("listening on http://%s:%d\n", options.host.c_str(), (*server)->port());
  std::fflush(stdout);
  std::atomic<bool> failed{false};
  std::thread runner([&] {
    if (auto st = (*server)->run(); !st) {
      std::fprintf(stderr, "twistedpic serve: %s\n", st.error().to_string().c_str());
      failed = true;
      kill(getpid(), SIGTERM);  // wakes the sigwait below
    }
  });
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  if (!failed) {
    std::fprintf(stderr, "twistedpic serve: %s: draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    (*server)->drain();
  }
  runner.join();
  if (!failed) std::fprintf(stderr, "twistedpic serve: drained, every model unloaded; exiting\n");
  return failed ? 1 : 0;
}

}  // namespace tp::server
