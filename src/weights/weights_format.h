// Private: file-name rules shared by the weights readers.
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <filesystem>

namespace tp::detail {

// True for the extensions of pickle checkpoints (.bin .ckpt .pt .pth .pkl
// .pickle, any case), which check_weights_file_format refuses.
bool has_pickle_extension(const std::filesystem::path& path);

}  // namespace tp::detail
