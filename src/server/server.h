// twistedpic: `twistedpic serve`, an HTTP image server over one registry.
//
//   POST /v1/images/generations   OpenAI Images (b64_json PNGs), plus negative_prompt, steps,
//                                 guidance_scale, seed, options {...}, keep_alive
//   GET  /v1/models               the configured pipelines, in OpenAI's list format
//   GET  /api/ps                  every registry model: state, tier, bytes, leases, expires_at (Ollama's words)
//   POST /api/unload              {"model": pipeline or network, omitted: all, "to": "disk" | "host"}
//   GET  /api/events              server-sent events: residency transitions and each request's
//                                 queued/running/done and per-step progress, tagged with its
//                                 request id (X-Request-Id); ?request_id=ID: that request's only
//   GET  /healthz                 200 {"status": "ok"}; 503 while draining
//   GET  /metrics                 Prometheus text
//
// Each pipeline has a bounded queue: at most `concurrency` generations run at
// once and `queue_depth` more wait; beyond that the answer is 429 with
// Retry-After. Errors are OpenAI's JSON shape, {"error": {"message", "type",
// "param", "code"}}, with a 4xx or 5xx status; no input makes the server
// throw out of a handler or crash (docs/server.md).
//
// Threading: ImageServer is thread-safe. run() blocks the calling thread and
// serves requests on a pool of worker threads; drain() and stop() may be
// called from any other thread (a signal-waiting thread, a test) while run()
// blocks. The registry must outlive the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "twistedpic/expected.h"
#include "twistedpic/registry.h"

namespace tp::server {

// Ollama on the same GPU (docs/ollama.md). Before a load that does not fit
// even after our own evictions, the server reads Ollama's /api/ps and asks it
// to unload the models it holds but does not use ("keep_alive": 0).
struct OllamaNeighbour {
  // e.g. "http://127.0.0.1:11434"; empty: no neighbour.
  std::string url;
  // May we ask Ollama to unload its idle models? false: only watch and count. Default: true.
  bool unload_idle = true;
  // An Ollama model whose expires_at moved this recently (a request ended
  // and pushed it) counts as in use, and Ollama as busy. Default: 30 s.
  double busy_window_s = 30;
  // Each HTTP call to Ollama. Default: 2 s.
  double timeout_s = 2;
  // After asking, how long to wait for the models to leave /api/ps. Default: 10 s.
  double unload_wait_s = 10;
};

struct ServerOptions {
  // Default: loopback only.
  std::string host = "127.0.0.1";
  // 0: any free port (port() says which, after bind()).
  int port = 7860;
  // When non-empty, every route but /healthz needs "Authorization: Bearer <key>".
  std::string api_key;
  // Request bodies above this are refused (413). Default: 1 MiB.
  uint64_t max_body_bytes = uint64_t{1} << 20;
  // Prompts (and negative prompts) above this many bytes are refused (400). Default: 16 KiB.
  uint64_t max_prompt_bytes = 16 * 1024;
  // A request that sends nothing for this long is dropped (read timeout). Default: 10 s.
  double read_timeout_s = 10;
  double write_timeout_s = 30;
  // Generations each pipeline runs at once. Default: 1.
  int concurrency = 1;
  // Requests each pipeline lets wait beyond those running; more get 429. Default: 8.
  int queue_depth = 8;
  // Images per request (OpenAI's n). Default: 10, as OpenAI's.
  int max_images = 10;
  // On drain: how long running generations may go on before they are cancelled. Default: 30 s.
  double drain_grace_s = 30;
  // keep_alive when a request names none, in seconds; negative: the registry's
  // policy alone decides. Default: -1.
  double default_keep_alive_s = -1;
  // Open /api/events streams at once; more get 503. Each holds a worker thread. Default: 16.
  int max_event_clients = 16;
  // Events a stream may have waiting; a client that falls further behind is
  // dropped (its stream ends with "event: dropped"), so a slow reader never
  // blocks a generation. Default: 1024.
  int event_buffer = 1024;
  OllamaNeighbour ollama;
};

class ImageServer {
 public:
  // Builds a Pipeline for every configured pipeline of `registry` (reads no
  // file, loads nothing). Errors: kInvalidArgument for bad options;
  // kFailedPrecondition for a registry with no pipelines; Pipeline::create's errors.
  // REQUIRES: `registry` outlives the server.
  static Expected<std::unique_ptr<ImageServer>> create(ModelRegistry& registry, ServerOptions options);
  ~ImageServer();
  ImageServer(const ImageServer&) = delete;
  ImageServer& operator=(const ImageServer&) = delete;

  // Binds the listening socket. kUnavailable (naming host and port) when it cannot.
  Status bind();
  // The bound port (after bind()).
  int port() const;
  // Serves until stop(). REQUIRES: bind() succeeded.
  Status run();
  // Stops taking generations (503) and waits for those queued and running to
  // end; after drain_grace_s, cancels those still running. Then stops the
  // listener (run() returns) and unloads every model to disk.
  void drain();
  // Stops the listener now; run() returns.
  void stop();

 private:
  struct Impl;
  explicit ImageServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGTERM and SIGINT in the calling thread and the threads it starts
// afterwards, so that serve() can wait for them. Call it before any thread
// starts (before the registry is made).
void block_stop_signals();

// `twistedpic serve`: create(), bind(), prints "listening on http://HOST:PORT"
// on stdout, serves until SIGTERM or SIGINT, then drain()s. Returns the exit
// status: 0 after a clean drain, 1 (with the error on stderr) when the server
// cannot start. REQUIRES: block_stop_signals() was called first.
int serve(ModelRegistry& registry, const ServerOptions& options);

}  // namespace tp::server
