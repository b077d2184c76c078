// The "server" object of a registry config (server_config.h).
#include "server/server_config.h"

#include "server/wire.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <sstream>

namespace tp::server {
namespace {

using json = nlohmann::json;

class Fields {
 public:
  Fields(std::string_view origin, std::string path, const json& obj) : origin_(origin), path_(std::move(path)), obj_(obj) {}

  Error error(std::string_view field, const std::string& problem) const {
    return Error{ErrorCode::kInvalidArgument, std::string(origin_) + ": " + path_ + "." + std::string(field) + ": " + problem};
  }
  const json* get(std::string_view field) const {
    auto it = obj_.find(std::string(field));
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  Status known(std::initializer_list<std::string_view> names) const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      bool ok = false;
      for (auto n : names) ok = ok || it.key() == n;
      if (!ok) {
        std::string list;
        for (auto n : names) list += (list.empty() ? "" : ", ") + std::string(n);
        return tl::unexpected(error(it.key(), "unknown field; known: " + list));
      }
    }
    return {};
  }
  Status string(std::string_view field, std::string& out) const {
    const json* v = get(field);
    if (!v) return {};
    if (!v->is_string()) return tl::unexpected(error(field, "expected a string, got " + v->dump()));
    out = v->get<std::string>();
    return {};
  }
  Status boolean(std::string_view field, bool& out) const {
    const json* v = get(field);
    if (!v) return {};
    if (!v->is_boolean()) return tl::unexpected(error(field, "expected true or false, got " + v->dump()));
    out = v->get<bool>();
    return {};
  }
  template <class Int>
  Status integer(std::string_view field, Int& out, int64_t lo, int64_t hi) const {
    const json* v = get(field);
    if (!v) return {};
    const bool in = v->is_number_integer() &&
                    (v->is_number_unsigned() ? v->get<uint64_t>() <= static_cast<uint64_t>(hi)
                                             : v->get<int64_t>() >= lo && v->get<int64_t>() <= hi);
    if (!in || (v->is_number_unsigned() && static_cast<int64_t>(v->get<uint64_t>()) < lo))
      return tl::unexpected(
          error(field, "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + v->dump()));
    out = static_cast<Int>(v->get<int64_t>());
    return {};
  }
  // Bytes: an integer, or "16KiB" / "1MiB" / "2GiB".
  Status bytes(std::string_view field, uint64_t& out, uint64_t lo, uint64_t hi) const {
    const json* v = get(field);
    if (!v) return {};
    uint64_t b = 0;
    bool ok = false;
    if (v->is_number_unsigned()) {
      b = v->get<uint64_t>();
      ok = true;
    } else if (v->is_string()) {
      const std::string s = v->get<std::string>();
      size_t end = 0;
      while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
      const std::string unit = s.substr(end);
      const uint64_t mult = unit.empty() || unit == "B" ? 1
                            : unit == "KiB"             ? 1ull << 10
                            : unit == "MiB"             ? 1ull << 20
                            : unit == "GiB"             ? 1ull << 30
                                                        : 0;
      if (end > 0 && end <= 12 && mult) {
        b = std::stoull(s.substr(0, end)) * mult;
        ok = true;
      }
    }
    if (!ok || b < lo || b > hi)
      return tl::unexpected(error(field, "expected a byte size in " + std::to_string(lo) + ".." + std::to_string(hi) +
                                             " (an integer, or a string like \"1MiB\"), got " + v->dump()));
    out = b;
    return {};
  }
  Status seconds(std::string_view field, double& out, double lo, double hi) const {
    const json* v = get(field);
    if (!v) return {};
    if (!v->is_number() || !std::isfinite(v->get<double>()) || v->get<double>() < lo || v->get<double>() > hi) {
      std::ostringstream range;
      range << lo << ".." << hi;
      return tl::unexpected(error(field, "expected seconds in " + range.str() + ", got " + v->dump()));
    }
    out = v->get<double>();
    return {};
  }
  const json& raw() const { return obj_; }
  const std::string& path() const { return path_; }

 private:
  std::string_view origin_;
  std::string path_;
  const json& obj_;
};

Status check_url(const Fields& f, std::string_view field, const std::string& url) {
  if (url.rfind("http://", 0) != 0 || url.size() <= 7)
    return tl::unexpected(f.error(field, "expected an http:// URL such as \"http://127.0.0.1:11434\", got \"" + url + "\""));
  return {};
}

}  // namespace

Status apply_server_config(const json& server, std::string_view origin, ServerOptions& o,
                           const char* (*getenv_fn)(const char*)) {
  if (!server.is_object())
    return tl::unexpected(Error{ErrorCode::kInvalidArgument,
                                std::string(origin) + ": server: expected an object, got " + server.dump()});
  Fields f(origin, "server", server);
  TP_TRY(f.known({"host", "port", "api_key_env", "queue_depth", "concurrency", "max_body_bytes", "max_prompt_bytes",
                  "max_images", "read_timeout_s", "write_timeout_s", "drain_grace_s", "keep_alive",
                  "max_event_clients", "event_buffer", "neighbours"}));
  TP_TRY(f.string("host", o.host));
  TP_TRY(f.integer("port", o.port, 0, 65535));
  std::string key_env;
  TP_TRY(f.string("api_key_env", key_env));
  if (!key_env.empty()) {
    const char* key = getenv_fn ? getenv_fn(key_env.c_str()) : std::getenv(key_env.c_str());
    if (!key || !*key)
      return tl::unexpected(f.error("api_key_env", "the environment variable " + key_env +
                                                       " is not set (or empty); set it, or remove api_key_env"));
    o.api_key = key;
  }
  TP_TRY(f.integer("queue_depth", o.queue_depth, 0, 100000));
  TP_TRY(f.integer("concurrency", o.concurrency, 1, 1024));
  TP_TRY(f.bytes("max_body_bytes", o.max_body_bytes, 1024, 1ull << 30));
  TP_TRY(f.bytes("max_prompt_bytes", o.max_prompt_bytes, 1, 1ull << 24));
  TP_TRY(f.integer("max_images", o.max_images, 1, 10000));
  TP_TRY(f.seconds("read_timeout_s", o.read_timeout_s, 0.01, 3600));
  TP_TRY(f.seconds("write_timeout_s", o.write_timeout_s, 0.01, 3600));
  TP_TRY(f.seconds("drain_grace_s", o.drain_grace_s, 0, 3600));
  if (const json* v = f.get("keep_alive")) {
    auto s = parse_keep_alive(*v);
    if (!s)
      return tl::unexpected(
          f.error("keep_alive", "expected seconds or a duration such as \"5m\" (negative: the policy's), got " + v->dump()));
    o.default_keep_alive_s = *s;
  }
  TP_TRY(f.integer("max_event_clients", o.max_event_clients, 0, 256));
  TP_TRY(f.integer("event_buffer", o.event_buffer, 1, 1000000));
  if (const json* n = f.get("neighbours")) {
    if (!n->is_object()) return tl::unexpected(f.error("neighbours", "expected an object, got " + n->dump()));
    Fields nf(origin, "server.neighbours", *n);
    TP_TRY(nf.known({"ollama"}));
    if (const json* ol = nf.get("ollama")) {
      if (ol->is_string()) {
        o.ollama.url = ol->get<std::string>();
        TP_TRY(check_url(nf, "ollama", o.ollama.url));
      } else if (ol->is_object()) {
        Fields of(origin, "server.neighbours.ollama", *ol);
        TP_TRY(of.known({"url", "unload_idle", "busy_window_s", "timeout_s", "unload_wait_s"}));
        TP_TRY(of.string("url", o.ollama.url));
        TP_TRY(check_url(of, "url", o.ollama.url));
        TP_TRY(of.boolean("unload_idle", o.ollama.unload_idle));
        TP_TRY(of.seconds("busy_window_s", o.ollama.busy_window_s, 0, 86400));
        TP_TRY(of.seconds("timeout_s", o.ollama.timeout_s, 0.05, 60));
        TP_TRY(of.seconds("unload_wait_s", o.ollama.unload_wait_s, 0, 600));
      } else {
        return tl::unexpected(nf.error("ollama", "expected a URL string or an object {\"url\", \"unload_idle\", "
                                                 "\"busy_window_s\", \"timeout_s\", \"unload_wait_s\"}, got " +
                                                     ol->dump()));
      }
    }
  }
  return {};
}

Status read_server_config(const std::filesystem::path& file, ServerOptions& options) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return tl::unexpected(Error{ErrorCode::kNotFound, file.string() + ": cannot be read"});
  std::ostringstream text;
  text << in.rdbuf();
  const json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  // The registry already parsed this file (and named its errors); only the "server" object is read here.
  if (doc.is_discarded() || !doc.is_object())
    return tl::unexpected(Error{ErrorCode::kInvalidArgument, file.string() + ": not a JSON object"});
  auto it = doc.find("server");
  if (it == doc.end() || it->is_null()) return {};
  return apply_server_config(*it, file.string(), options);
}

}  // namespace tp::server
