// Private (util): byte sizes as people write and read them.
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "twistedpic/expected.h"

namespace tp::detail {

// "4GiB", "512 MB", "1.5kb", "1024" -> bytes (decimal and binary units, case
// ignored, fractions rounded). Anything else, or more than UINT64_MAX bytes, is
// kInvalidArgument quoting the text.
Expected<uint64_t> parse_byte_size(std::string_view text);

// "1.50 GiB (1610612736)", "12.0 MiB (12582912)", "512 B (512)": for messages.
std::string format_bytes(uint64_t bytes);

}  // namespace tp::detail
