// The admission queue: loads that wait for device memory are served first
// come, first served, with the default (minutes-long) admission timeout; the
// wait is cancellable and shows in list() and stats(); admission_timeout 0
// still fails at once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "support/registry_harness.h"

namespace tp::testing {
namespace {

using ::testing::HasSubstr;

TEST(AdmissionQueueTest, DefaultTimeoutIsMinutes) {
  RegistryConfig c;
  EXPECT_EQ(c.admission_timeout, kDefaultAdmissionTimeout);
  EXPECT_GE(kDefaultAdmissionTimeout, std::chrono::minutes(1));
  auto parsed = parse_registry_config(R"({"models": {"a": {"model_id": "x"}}})");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->admission_timeout, kDefaultAdmissionTimeout);
  parsed = parse_registry_config(R"({"models": {"a": {"model_id": "x"}}, "admission_timeout_ms": 0})");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->admission_timeout.count(), 0);
}

// 8 threads x 3 models on a device that holds 2 of them: with the defaults
// every acquire is served, waiting its turn instead of being refused.
TEST(AdmissionQueueTest, EightThreadsThreeModelsTwoFitNoRefusalsWithDefaults) {
  RegistryConfig c = config_of({model("m0", 4 * kGiB), model("m1", 4 * kGiB), model("m2", 4 * kGiB)});
  Harness h(std::move(c), 10 * kGiB);
  constexpr int kThreads = 8, kRounds = 25;
  // m0 and m1 held here until someone queues for m2, so that the test does
  // not depend on the scheduler to produce a wait.
  auto m0 = h.registry->acquire("m0").value();
  auto m1 = h.registry->acquire("m1").value();
  std::atomic<int> served{0}, refused{0}, off_device{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        auto lease = h.registry->acquire("m" + std::to_string((t + i) % 3));
        if (!lease) {
          ++refused;
          ADD_FAILURE() << lease.error().to_string();
          continue;
        }
        ++served;
        if (!lease->weights().on_device()) ++off_device;
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    });
  EXPECT_TRUE(eventually([&] { return h.registry->stats().admission_queue > 0; }))
      << "no thread queued for m2 while m0 and m1 were held";
  m0.release();
  m1.release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load(), 0);
  EXPECT_EQ(served.load(), kThreads * kRounds);
  EXPECT_EQ(off_device.load(), 0);
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.admission_failures, 0u);
  EXPECT_GT(s.admission_waits, 0u) << "the device never had to make anyone wait: the test proves nothing";
  EXPECT_EQ(s.admission_queue, 0u);
  h.expect_accounting();
}

// A big model waiting for memory is served before small ones that come after
// it, even though they would fit at once; list() and stats() show the queue.
TEST(AdmissionQueueTest, BigWaitingModelIsServedBeforeLaterSmallOnes) {
  Harness h(config_of({model("small1", 3 * kGiB), model("big", 8 * kGiB), model("small2", 3 * kGiB)}), 10 * kGiB);
  auto held = h.registry->acquire("small1").value();
  h.take_events();

  auto big_lease = std::async(std::launch::async, [&] { return h.registry->acquire("big"); });
  ASSERT_TRUE(eventually([&] { return h.info("big").admission_position == 1; }));
  auto small_lease = std::async(std::launch::async, [&] { return h.registry->acquire("small2"); });
  ASSERT_TRUE(eventually([&] { return h.info("small2").admission_position == 2; }))
      << "small2 (3 GiB, 7 GiB free) did not queue behind big";
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.admission_queue, 2u);
  EXPECT_EQ(s.admission_queue_bytes, 11 * kGiB);  // big: 8, small2: 3
  EXPECT_EQ(s.admission_waits, 2u);
  EXPECT_EQ(h.state("small2"), ModelState::kLoading);  // claimed, waiting for admission
  EXPECT_EQ(h.info("small1").admission_position, 0u);

  held.release();  // big's turn: it evicts small1 and loads
  ASSERT_EQ(big_lease.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto big_held = big_lease.get();
  ASSERT_TRUE(big_held) << big_held.error().to_string();
  EXPECT_EQ(h.info("small2").admission_position, 1u);
  EXPECT_EQ(small_lease.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "small2 does not fit beside big (8 GiB held, 2 GiB free)";

  big_held->release();
  ASSERT_EQ(small_lease.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto small_held = small_lease.get();
  ASSERT_TRUE(small_held) << small_held.error().to_string();
  std::vector<std::string> loads;
  for (const auto& e : h.take_events())
    if (e.find("->device") != std::string::npos) loads.push_back(e);
  EXPECT_THAT(loads, ::testing::ElementsAre("big:disk->device:lazy", "small2:disk->device:lazy"));
  s = h.registry->stats();
  EXPECT_EQ(s.admission_queue, 0u);
  EXPECT_EQ(s.admission_queue_bytes, 0u);
  EXPECT_EQ(s.admission_failures, 0u);
  h.expect_accounting();
}

// The acquire's cancel flag (a generation's cancel) ends its admission wait,
// and the next load in the queue moves up.
TEST(AdmissionQueueTest, CancelEndsAnAdmissionWaitAndTheQueueMovesUp) {
  Harness h(config_of({model("held", 6 * kGiB), model("next", 6 * kGiB), model("after", 6 * kGiB)}), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  std::atomic<bool> cancel{false};
  AcquireOptions o;
  o.cancel = &cancel;
  auto next = std::async(std::launch::async, [&] { return h.registry->acquire("next", o); });
  ASSERT_TRUE(eventually([&] { return h.info("next").admission_position == 1; }));
  auto after = std::async(std::launch::async, [&] { return h.registry->acquire("after"); });
  ASSERT_TRUE(eventually([&] { return h.info("after").admission_position == 2; }));

  cancel = true;
  ASSERT_EQ(next.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the cancel did not end the wait";
  auto cancelled = next.get();
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(h.state("next"), ModelState::kUnloaded);
  EXPECT_EQ(h.info("next").admission_position, 0u);
  EXPECT_EQ(h.info("after").admission_position, 1u);
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.admission_cancels, 1u);
  EXPECT_EQ(s.admission_failures, 0u);
  EXPECT_EQ(s.admission_queue, 1u);

  held.release();
  ASSERT_EQ(after.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(after.get());
  EXPECT_EQ(h.registry->stats().admission_queue, 0u);
  h.expect_accounting();
}

// admission_timeout 0: a load that must wait fails at once, and never queues.
TEST(AdmissionQueueTest, ZeroTimeoutFailsAtOnce) {
  RegistryConfig c = config_of({model("held", 6 * kGiB), model("next", 6 * kGiB)});
  c.admission_timeout = std::chrono::milliseconds(0);
  Harness h(std::move(c), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  auto lease = h.registry->acquire("next");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  RegistryStats s = h.registry->stats();
  EXPECT_EQ(s.admission_waits, 0u);
  EXPECT_EQ(s.admission_failures, 1u);
  EXPECT_EQ(s.admission_queue, 0u);
}

// A model that could not fit even were every lease to end fails at once,
// without waiting out the (default, minutes-long) timeout.
TEST(AdmissionQueueTest, NeverFittingModelFailsAtOnceDespiteLeases) {
  Harness h(config_of({model("held", 4 * kGiB), model("huge", 11 * kGiB)}), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  const auto t0 = std::chrono::steady_clock::now();
  auto lease = h.registry->acquire("huge");
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code, ErrorCode::kResourceExhausted);
  EXPECT_THAT(lease.error().message, HasSubstr("cannot load 'huge'"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(h.registry->stats().admission_waits, 0u);
}

// A later load queued behind one that waits past the timeout fails too
// (small does not fit beside held either, whichever of them wakes first).
TEST(AdmissionQueueTest, QueuedLoadTimesOutBehindTheFront) {
  RegistryConfig c = config_of({model("held", 6 * kGiB), model("next", 6 * kGiB), model("small", 5 * kGiB)});
  c.admission_timeout = std::chrono::hours(1);
  Harness h(std::move(c), 10 * kGiB);
  auto held = h.registry->acquire("held").value();
  auto next = std::async(std::launch::async, [&] { return h.registry->acquire("next"); });
  ASSERT_TRUE(eventually([&] { return h.info("next").admission_position == 1; }));
  auto small = std::async(std::launch::async, [&] { return h.registry->acquire("small"); });
  ASSERT_TRUE(eventually([&] { return h.info("small").admission_position == 2; }));
  h.clock->advance(std::chrono::minutes(61));
  ASSERT_EQ(small.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_EQ(next.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto s = small.get();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kResourceExhausted);
  EXPECT_THAT(s.error().message, HasSubstr("cannot load 'small'"));
  EXPECT_FALSE(next.get());
  EXPECT_EQ(h.registry->stats().admission_queue, 0u);
}

}  // namespace
}  // namespace tp::testing
