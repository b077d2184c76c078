// EventBus: subscribers and event delivery (see event_bus.h).
#include "registry/event_bus.h"

#include <string>
#include <utility>

#include "twistedpic/log.h"

namespace tp::detail {

namespace {

// Set on a thread while it delivers events (for any registry), so that
// unsubscribe() from inside a callback does not wait for itself.
thread_local bool in_callback = false;

}  // namespace

int EventBus::subscribe(EventCallback callback) {
  MutexLock g(mu_);
  int id = next_id_++;
  subscribers_.emplace(id, std::make_shared<EventCallback>(std::move(callback)));
  return id;
}

Status EventBus::unsubscribe(int id) {
  MutexLock g(mu_);
  if (!subscribers_.erase(id)) return not_found("no event subscription with id " + std::to_string(id));
  wait_dispatch();
  return ok_status();
}

void EventBus::close() {
  MutexLock g(mu_);
  subscribers_.clear();
  wait_dispatch();
}

void EventBus::wait_dispatch() {
  if (in_callback) return;
  while (dispatching_ != 0) dispatch_done_.wait(mu_);
}

void EventBus::publish(const std::vector<ResidencyEvent>& events) {
  std::vector<std::pair<int, std::shared_ptr<EventCallback>>> subs;
  {
    MutexLock g(mu_);
    for (const auto& sub : subscribers_) subs.push_back(sub);
    ++dispatching_;
  }
  bool nested = in_callback;
  in_callback = true;
  for (const auto& ev : events) {
    TP_LOG(kInfo, "registry",
           ev.model << ": " << tier_name(ev.from) << " -> " << tier_name(ev.to) << " (" << reason_name(ev.reason) << ", "
                    << ev.bytes << " bytes, " << ev.ms << " ms" << (ev.failed ? ", failed: " + ev.error : "") << ")");
    for (const auto& [id, cb] : subs) {
      {
        MutexLock g(mu_);
        if (!subscribers_.count(id)) continue;  // unsubscribed meanwhile
      }
      try {
        (*cb)(ev);
      } catch (...) {
        TP_LOG(kError, "registry", "an event callback threw; the exception was dropped");
      }
    }
  }
  in_callback = nested;
  {
    MutexLock g(mu_);
    --dispatching_;
  }
  dispatch_done_.notify_all();
}

}  // namespace tp::detail
