// src/util/system.cpp: facts about the host machine.
#include "util/system.h"

#include <gtest/gtest.h>

namespace tp::detail {
namespace {

TEST(SystemTest, PhysicalRamIsKnownOnLinux) {
#ifdef __linux__
  const uint64_t ram = physical_ram_bytes();
  EXPECT_GT(ram, 0u);
  EXPECT_EQ(ram % 4096, 0u) << "a whole number of pages";
#else
  GTEST_SKIP() << "only Linux promises an answer";
#endif
}

}  // namespace
}  // namespace tp::detail
