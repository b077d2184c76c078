// Ollama as a neighbour on the same GPU (ollama_neighbour.h).
#include "server/ollama_neighbour.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <thread>

#include "server/wire.h"
#include "twistedpic/log.h"

namespace tp::server {
namespace {

constexpr const char* kLog = "ollama";

std::unique_ptr<httplib::Client> client_for(const OllamaNeighbour& o) {
  auto c = std::make_unique<httplib::Client>(o.url);
  const auto whole = static_cast<time_t>(o.timeout_s);
  const auto micros = static_cast<time_t>((o.timeout_s - std::floor(o.timeout_s)) * 1e6);
  c->set_connection_timeout(whole, micros);
  c->set_read_timeout(whole, micros);
  c->set_write_timeout(whole, micros);
  return c;
}

int this_year() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm.tm_year + 1900;
}

uint64_t as_bytes(const json& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

}  // namespace

OllamaWatch::OllamaWatch(OllamaNeighbour options) : opt_(std::move(options)) {}

std::optional<std::vector<OllamaModel>> OllamaWatch::poll() {
  std::lock_guard call(call_mu_);
  return poll_locked();
}

std::optional<std::vector<OllamaModel>> OllamaWatch::poll_locked() {
  auto client = client_for(opt_);
  auto r = client->Get("/api/ps");
  json doc = r && r->status == 200 ? json::parse(r->body, nullptr, false) : json();
  std::lock_guard g(mu_);
  if (!doc.is_object() || !doc.contains("models") || !doc["models"].is_array()) {
    counters_.reachable = false;
    return std::nullopt;
  }
  const auto now = Steady::now();
  const auto window = std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(opt_.busy_window_s));
  const int year = this_year();
  std::vector<OllamaModel> out;
  std::map<std::string, Seen> next;
  for (const json& m : doc["models"]) {
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string()) continue;
    OllamaModel model;
    model.name = m["name"].get<std::string>();
    model.size = as_bytes(m, "size");
    model.size_vram = as_bytes(m, "size_vram");
    if (auto e = m.find("expires_at"); e != m.end() && e->is_string()) model.expires_at = e->get<std::string>();
    Seen s{model.expires_at, Steady::time_point::min()};
    if (auto old = seen_.find(model.name); old != seen_.end()) {
      s.changed = old->second.expires_at == model.expires_at ? old->second.changed : now;
    } else if (polls_ > 0) {
      s.changed = now;  // loaded since the last poll: a request brought it
    }
    model.in_use = s.changed != Steady::time_point::min() && now - s.changed < window;
    model.pinned = model.expires_at.size() >= 4 && std::atoi(model.expires_at.substr(0, 4).c_str()) > year + 1;
    next[model.name] = s;
    out.push_back(std::move(model));
  }
  seen_ = std::move(next);
  ++polls_;
  counters_.reachable = true;
  counters_.models = out.size();
  counters_.held_vram = 0;
  for (const auto& m : out) counters_.held_vram += m.size_vram;
  return out;
}

OllamaDecision OllamaWatch::make_room(uint64_t needed) {
  std::lock_guard call(call_mu_);
  OllamaDecision d;
  auto finish = [&](std::string outcome, std::string message) {
    d.outcome = std::move(outcome);
    d.message = std::move(message);
    std::lock_guard g(mu_);
    ++counters_.decisions[d.outcome];
    counters_.freed_vram += d.freed_vram;
    return d;
  };
  auto models = poll_locked();
  if (!models) return finish("unreachable", "Ollama at " + opt_.url + " did not answer GET /api/ps");
  for (const auto& m : *models) d.held_vram += m.size_vram;
  if (models->empty()) return finish("nothing_held", "Ollama holds no models");
  std::vector<OllamaModel> idle;
  std::string kept;
  for (const auto& m : *models) {
    if (m.in_use || m.pinned) {
      kept += (kept.empty() ? "" : ", ") + m.name + (m.pinned ? " (pinned)" : " (in use)");
    } else if (m.size_vram > 0) {
      idle.push_back(m);
    }
  }
  if (!opt_.unload_idle)
    return finish("not_allowed", "Ollama holds " + std::to_string(d.held_vram) + " device bytes (" +
                                     std::to_string(idle.size()) + " idle model(s)); unload_idle is false");
  if (idle.empty()) return finish("busy", "Ollama is busy: " + kept + "; nothing asked");
  std::sort(idle.begin(), idle.end(), [](const auto& a, const auto& b) { return a.size_vram > b.size_vram; });
  auto client = client_for(opt_);
  uint64_t asked_bytes = 0;
  std::string refused;
  for (const auto& m : idle) {
    if (asked_bytes >= needed && !d.asked.empty()) break;
    const std::string body = dump(json{{"model", m.name}, {"keep_alive", 0}, {"stream", false}});
    auto r = client->Post("/api/generate", body, "application/json");
    {
      std::lock_guard g(mu_);
      ++counters_.unload_requests;
    }
    if (!r || r->status != 200) {
      refused += (refused.empty() ? "" : ", ") + m.name + (r ? " (HTTP " + std::to_string(r->status) + ")" : " (no answer)");
      continue;
    }
    d.asked.push_back(m.name);
    asked_bytes += m.size_vram;
  }
  // Ollama unloads in the background: wait for the models to leave /api/ps.
  const auto until = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                         std::chrono::duration<double>(opt_.unload_wait_s));
  std::vector<std::string> gone;
  while (!d.asked.empty()) {
    auto now_held = poll_locked();
    gone.clear();
    d.freed_vram = 0;
    for (const auto& name : d.asked) {
      const bool there = now_held && std::any_of(now_held->begin(), now_held->end(),
                                                 [&](const OllamaModel& m) { return m.name == name; });
      if (!there && now_held) {
        gone.push_back(name);
        for (const auto& m : idle)
          if (m.name == name) d.freed_vram += m.size_vram;
      }
    }
    if (gone.size() == d.asked.size() || Steady::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string names;
  for (const auto& n : d.asked) names += (names.empty() ? "" : ", ") + n;
  if (d.asked.empty() || gone.size() < d.asked.size())
    return finish("unload_failed", "asked Ollama to unload " + (names.empty() ? std::string("nothing") : names) +
                                       (refused.empty() ? "" : "; refused: " + refused) + "; " +
                                       std::to_string(gone.size()) + " left within " +
                                       std::to_string(opt_.unload_wait_s) + " s");
  return finish("unloaded", "Ollama unloaded " + names + " (" + std::to_string(d.freed_vram) + " device bytes)" +
                                (kept.empty() ? "" : "; kept " + kept));
}

OllamaWatch::Counters OllamaWatch::counters() const {
  std::lock_guard g(mu_);
  return counters_;
}

}  // namespace tp::server
