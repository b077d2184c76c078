// Private (server): GET /api/events, server-sent events. An EventHub fans
// JSON events out to its subscribers (the open /api/events streams).
//
// publish() never blocks on a client: it appends to each subscriber's
// bounded buffer under the hub's lock and returns. A subscriber whose buffer
// is full (a slow or stalled client) is DROPPED: its buffer is cleared, its
// stream ends with one "event: dropped" and the connection closes; the
// client reconnects and reads /api/ps for the state it missed. Events are
// never dropped silently from a stream that goes on.
//
// Threading: EventHub is thread-safe; publish() may be called from any thread
// (generation threads, the registry's event callbacks); next() blocks the
// calling HTTP worker thread only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/wire.h"

namespace tp::server {

class EventHub {
 public:
  struct Subscriber;

  // `buffer_events`: events a subscriber may have waiting; `max_clients`: open streams at once.
  EventHub(size_t buffer_events, size_t max_clients);

  // Sends `data` (a JSON object; "type" is set to `type`) to every subscriber
  // whose filter matches data["request_id"]. Never blocks on a client.
  void publish(const std::string& type, json data);

  // A new stream, or nullptr when max_clients are open or the hub is closed.
  // `request_id`: empty for every event, else only the events of that request.
  std::shared_ptr<Subscriber> subscribe(std::string request_id);
  void unsubscribe(const std::shared_ptr<Subscriber>& s);

  // Waits up to `wait` for events and appends them, in SSE text, to `out`.
  // False when the stream must end (the hub closed, or the subscriber was
  // dropped: then `out` ends with the "dropped" event).
  bool next(Subscriber& s, std::string& out, std::chrono::milliseconds wait);

  // Ends every stream (their next() returns false); refuses new ones.
  void close();

  size_t clients() const;
  uint64_t published() const;
  uint64_t dropped_clients() const;

 private:
  const size_t buffer_events_;
  const size_t max_clients_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // All guarded by mu_.
  std::vector<std::shared_ptr<Subscriber>> subs_;
  bool closed_ = false;
  uint64_t next_id_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace tp::server
