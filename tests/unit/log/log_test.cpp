#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "twistedpic/log.h"

namespace tp {
namespace {

struct Captured {
  std::mutex mu;
  std::vector<std::string> lines;
};

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { log::set_sink(nullptr, LogLevel::kWarn); }
};

TEST_F(LogTest, SinkReceivesWholeLinesAtOrAboveLevel) {
  Captured c;
  log::set_sink(
      [&c](LogLevel level, std::string_view logger, std::string_view msg) {
        std::lock_guard<std::mutex> lock(c.mu);
        c.lines.push_back(std::to_string(static_cast<int>(level)) + "|" + std::string(logger) + "|" + std::string(msg));
        EXPECT_EQ(msg.data()[msg.size()], '\0');  // NUL-terminated for C hosts
      },
      LogLevel::kInfo);
  TP_LOG(kDebug, "registry", "dropped " << 1);
  TP_LOG(kInfo, "registry", "loaded " << "sd3" << " in " << 12 << " ms");
  TP_LOG(kError, "weights", "bad file");
  ASSERT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(c.lines[0], "2|registry|loaded sd3 in 12 ms");
  EXPECT_EQ(c.lines[1], "4|weights|bad file");
}

TEST_F(LogTest, ResetRestoresWarnDefault) {
  log::set_sink([](LogLevel, std::string_view, std::string_view) {}, LogLevel::kTrace);
  EXPECT_TRUE(log::enabled(LogLevel::kTrace));
  log::set_sink(nullptr, LogLevel::kTrace);
  EXPECT_FALSE(log::enabled(LogLevel::kInfo));
  EXPECT_TRUE(log::enabled(LogLevel::kWarn));
  EXPECT_FALSE(log::enabled(LogLevel::kOff));
}

TEST_F(LogTest, ThrowingSinkIsContained) {
  log::set_sink([](LogLevel, std::string_view, std::string_view) { throw std::runtime_error("host bug"); },
                LogLevel::kInfo);
  EXPECT_NO_THROW(TP_LOG(kInfo, "x", "still fine"));
}

TEST_F(LogTest, ConcurrentWritersAndSwaps) {
  std::atomic<int> seen{0};
  auto counting = [&seen](LogLevel, std::string_view, std::string_view) { seen.fetch_add(1); };
  log::set_sink(counting, LogLevel::kInfo);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 200; ++i) TP_LOG(kInfo, t % 2 ? "a" : "b", "line " << i);
    });
  for (int i = 0; i < 20; ++i) log::set_sink(counting, LogLevel::kInfo);
  for (auto& th : threads) th.join();
  EXPECT_EQ(seen.load(), 800);
}

}  // namespace
}  // namespace tp
