// Private (server): the "server" object of a registry config file, read into
// ServerOptions. The command line's flags override what it sets (src/cli).
//
//   "server": {"host": "127.0.0.1", "port": 7860, "api_key_env": "TWISTEDPIC_API_KEY",
//              "queue_depth": 8, "concurrency": 1, "max_body_bytes": "1MiB", "max_prompt_bytes": 16384,
//              "max_images": 10, "read_timeout_s": 10, "write_timeout_s": 30, "drain_grace_s": 30,
//              "keep_alive": "5m", "max_event_clients": 16, "event_buffer": 1024,
//              "neighbours": {"ollama": "http://127.0.0.1:11434"}}
//
// "neighbours.ollama" is a URL, or an object {"url", "unload_idle",
// "busy_window_s", "timeout_s", "unload_wait_s"} (OllamaNeighbour). Errors
// are kInvalidArgument as "<file>: server.<field>: <problem>". Pure
// functions; any thread.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "server/server.h"

namespace tp::server {

// Applies `server` (the object) onto `options`; absent fields keep their value.
// `getenv` reads api_key_env (a test may pass its own).
Status apply_server_config(const nlohmann::json& server, std::string_view origin, ServerOptions& options,
                           const char* (*getenv)(const char*) = nullptr);

// Reads `file` (a registry config) and applies its "server" object, if any.
Status read_server_config(const std::filesystem::path& file, ServerOptions& options);

}  // namespace tp::server
