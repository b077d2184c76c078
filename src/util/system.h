// Private (util): facts about the host machine.
//
// Threading: pure functions; safe from any thread.
#pragma once

#include <cstdint>

namespace tp::detail {

// The machine's physical RAM in bytes, or 0 when the system will not say.
uint64_t physical_ram_bytes();

}  // namespace tp::detail
