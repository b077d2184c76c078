// Private (registry): the event bus, the registry's subscribers and the
// delivery of residency events to them.
//
// The registry collects the events of its transitions under its own lock and
// hands them to publish() after releasing it (RegistryState::flush()).
// publish() logs each event and calls every subscriber with it, in
// subscription order, on the publishing thread; a subscriber that throws is
// logged and the exception dropped. unsubscribe() and close() wait for
// deliveries in flight on other threads, so that after they return the
// callback is never called again; a callback may unsubscribe (itself or
// another) without waiting for its own delivery.
//
// Threading: thread-safe. The bus has its own mutex, never held while a
// callback runs; the registry never holds its own lock while calling the bus,
// so the two are never held together.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "twistedpic/registry.h"
#include "util/thread_annotations.h"

namespace tp::detail {

class EventBus {
 public:
  // Returns an id for unsubscribe().
  int subscribe(EventCallback callback) TP_EXCLUDES(mu_);
  // kNotFound for an unknown id.
  Status unsubscribe(int id) TP_EXCLUDES(mu_);
  // Logs and delivers `events`, in order, to every subscriber.
  void publish(const std::vector<ResidencyEvent>& events) TP_EXCLUDES(mu_);
  // Drops every subscriber and waits for deliveries in flight.
  void close() TP_EXCLUDES(mu_);

 private:
  // Waits until no event is being delivered (unless called from a callback).
  void wait_dispatch() TP_REQUIRES(mu_);

  Mutex mu_;
  CondVar dispatch_done_;  // waits on mu_
  std::map<int, std::shared_ptr<EventCallback>> subscribers_ TP_GUARDED_BY(mu_);
  int next_id_ TP_GUARDED_BY(mu_) = 1;
  int dispatching_ TP_GUARDED_BY(mu_) = 0;  // publish() calls delivering events now
};

}  // namespace tp::detail
