// Private (server): Ollama as a neighbour on the same GPU (docs/ollama.md).
//
// OllamaWatch reads Ollama's documented GET /api/ps ({"models": [{"name",
// "size", "size_vram", "expires_at", ...}]}) and asks it to unload a model
// with its documented POST /api/generate {"model": NAME, "keep_alive": 0}.
// Ollama's /api/ps says nothing of which models run a request now, so use is
// inferred: Ollama pushes a model's expires_at forward (to now + keep_alive)
// each time a request for it ends, so a model whose expires_at moved within
// busy_window_s (seen across polls), or that appeared since the last poll,
// is IN USE; a model whose expires_at is over a year away was pinned by its
// user (keep_alive -1) and is left alone too.
//
// make_room() is called by the server before a load that does not fit even
// after the registry's own evictions (so our models always yield first):
//   not_allowed   unload_idle is false: nothing is asked
//   unreachable   Ollama did not answer /api/ps
//   busy          every model Ollama holds is in use (or pinned): nothing asked
//   nothing_held  Ollama holds no models
//   unloaded      idle models were asked to unload (largest first, until
//                 `needed` bytes are covered) and left /api/ps within unload_wait_s
//   unload_failed Ollama refused, or the models did not leave in time
//
// Threading: thread-safe; make_room() and poll() may run on several threads
// (one at a time inside: a second caller waits for the first's outcome).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/server.h"

namespace tp::server {

struct OllamaModel {
  std::string name;
  uint64_t size = 0;
  uint64_t size_vram = 0;
  std::string expires_at;
  bool in_use = false;
  bool pinned = false;
};

struct OllamaDecision {
  std::string outcome;              // one of the words above
  std::vector<std::string> asked;   // models asked to unload
  uint64_t freed_vram = 0;          // size_vram of those that left
  uint64_t held_vram = 0;           // Ollama's size_vram before
  std::string message;              // one line, for the log
};

class OllamaWatch {
 public:
  explicit OllamaWatch(OllamaNeighbour options);

  // Reads /api/ps and updates what is known of each model's use. nullopt
  // when Ollama does not answer (or answers something else).
  std::optional<std::vector<OllamaModel>> poll();

  // See the file comment. `needed`: the bytes the load lacks.
  OllamaDecision make_room(uint64_t needed);

  // For /metrics.
  struct Counters {
    std::map<std::string, uint64_t> decisions;  // by outcome
    uint64_t unload_requests = 0;
    uint64_t freed_vram = 0;
    uint64_t held_vram = 0;  // at the last poll
    uint64_t models = 0;     // at the last poll
    bool reachable = false;  // the last poll answered
  };
  Counters counters() const;
  const OllamaNeighbour& options() const { return opt_; }

 private:
  using Steady = std::chrono::steady_clock;
  std::optional<std::vector<OllamaModel>> poll_locked();

  const OllamaNeighbour opt_;
  std::mutex call_mu_;  // one conversation with Ollama at a time
  mutable std::mutex mu_;
  // Guarded by mu_.
  struct Seen {
    std::string expires_at;
    Steady::time_point changed;
  };
  std::map<std::string, Seen> seen_;
  uint64_t polls_ = 0;
  Counters counters_;
};

}  // namespace tp::server
