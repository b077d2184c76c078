// GET /api/events: the fan-out of server-sent events (event_stream.h).
#include "server/event_stream.h"

#include <algorithm>
#include <chrono>
#include <ctime>

namespace tp::server {

struct EventHub::Subscriber {
  std::string request_id;         // the filter; empty: all
  std::deque<std::string> queue;  // formatted events; guarded by the hub's mu_
  bool dropped = false;           // guarded by the hub's mu_
  uint64_t lost = 0;              // events not delivered because of the drop
};

EventHub::EventHub(size_t buffer_events, size_t max_clients)
    : buffer_events_(std::max<size_t>(buffer_events, 1)), max_clients_(max_clients) {}

void EventHub::publish(const std::string& type, json data) {
  data["type"] = type;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  data["time"] = std::chrono::duration<double>(now).count();
  const std::string rid = data.contains("request_id") && data["request_id"].is_string()
                              ? data["request_id"].get<std::string>()
                              : std::string();
  {
    std::lock_guard g(mu_);
    if (closed_ || subs_.empty()) return;
    const uint64_t id = ++next_id_;
    const std::string text = "id: " + std::to_string(id) + "\nevent: " + type + "\ndata: " + dump(data) + "\n\n";
    for (auto& s : subs_) {
      if (s->dropped || (!s->request_id.empty() && s->request_id != rid)) continue;
      if (s->queue.size() >= buffer_events_) {
        s->dropped = true;
        s->lost = s->queue.size() + 1;
        s->queue.clear();
        ++dropped_;
        continue;
      }
      s->queue.push_back(text);
    }
  }
  cv_.notify_all();
}

std::shared_ptr<EventHub::Subscriber> EventHub::subscribe(std::string request_id) {
  std::lock_guard g(mu_);
  if (closed_ || subs_.size() >= max_clients_) return nullptr;
  auto s = std::make_shared<Subscriber>();
  s->request_id = std::move(request_id);
  s->queue.push_back("retry: 1000\nevent: hello\ndata: " +
                     dump(json{{"type", "hello"}, {"request_id", s->request_id.empty() ? json(nullptr) : json(s->request_id)},
                               {"buffer_events", buffer_events_}}) +
                     "\n\n");
  subs_.push_back(s);
  return s;
}

void EventHub::unsubscribe(const std::shared_ptr<Subscriber>& s) {
  std::lock_guard g(mu_);
  subs_.erase(std::remove(subs_.begin(), subs_.end(), s), subs_.end());
}

bool EventHub::next(Subscriber& s, std::string& out, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return closed_ || s.dropped || !s.queue.empty(); });
  for (const std::string& e : s.queue) out += e;
  s.queue.clear();
  if (s.dropped) {
    out += "event: dropped\ndata: " +
           dump(json{{"type", "dropped"},
                     {"message", "this client read too slowly: its buffer of " + std::to_string(buffer_events_) +
                                     " events was full; reconnect and read /api/ps"},
                     {"lost", s.lost}}) +
           "\n\n";
    return false;
  }
  return !closed_;
}

void EventHub::close() {
  {
    std::lock_guard g(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

size_t EventHub::clients() const {
  std::lock_guard g(mu_);
  return subs_.size();
}

uint64_t EventHub::published() const {
  std::lock_guard g(mu_);
  return next_id_;
}

uint64_t EventHub::dropped_clients() const {
  std::lock_guard g(mu_);
  return dropped_;
}

}  // namespace tp::server
