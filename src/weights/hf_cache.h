// Private (weights): finding a Hugging Face model in the local hub cache, with no
// network access ever.
//
// The hub cache is laid out as
//   <cache>/models--<org>--<name>/refs/<revision>      holds a commit hash
//   <cache>/models--<org>--<name>/snapshots/<commit>/  the model's files
// where <cache> is, first set and non-empty wins: $HF_HUB_CACHE,
// $HUGGINGFACE_HUB_CACHE (legacy), $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub,
// $HOME/.cache/huggingface/hub (huggingface_hub's own order).
//
// Errors: kInvalidArgument for a malformed model id or revision, kNotFound
// naming the id and the path looked at when something is not in the cache,
// kDataLoss for a refs file that does not hold a commit hash.
//
// Threading: safe from any thread, except that reading the environment races
// with a concurrent setenv() in the host.
#pragma once

#include <filesystem>
#include <string_view>

#include "twistedpic/expected.h"
#include "twistedpic/export.h"

namespace tp {
inline namespace v0 {

// The hub cache folder from the environment (it need not exist).
// kFailedPrecondition when no variable, not even HOME, is set.
[[nodiscard]] TP_EXPORT Expected<std::filesystem::path> hf_hub_cache_dir();

// Checks a model id as the hub does: "name" or "org/name", each part 1-96 of
// [A-Za-z0-9_.-], starting and ending with a letter, digit or '_', and no
// "--" or "..". kInvalidArgument saying what is wrong.
[[nodiscard]] TP_EXPORT Status validate_hf_model_id(std::string_view model_id);

// The snapshot folder of `model_id` at `revision`: a branch or tag name read
// through refs/<revision>, or a 40-hex commit hash used directly.
// Default: revision "main".
[[nodiscard]] TP_EXPORT Expected<std::filesystem::path> resolve_hf_snapshot(std::string_view model_id,
                                                                            std::string_view revision = "main");

// A model source as a user writes it: an existing directory is returned as
// is; an existing non-directory is kInvalidArgument; something that looks like
// a path (starts with '/', '.' or '~') but does not exist is kNotFound;
// anything else is a model id resolved with resolve_hf_snapshot(id, "main").
[[nodiscard]] TP_EXPORT Expected<std::filesystem::path> resolve_model_source(std::string_view source);

}  // namespace v0
}  // namespace tp
