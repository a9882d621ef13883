#include "tools/thread_group.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace demi::tools {
namespace {

// No device here: the new threads need no libOS for these tests.
absl::Status NoInit() { return absl::OkStatus(); }

TEST(ThreadGroupTest, RunsEveryIndexOnceAndTheFirstOnTheCaller) {
  ThreadGroup group(4, nullptr, NoInit);
  std::atomic<int> runs[4] = {};
  std::thread::id first;
  EXPECT_TRUE(group
                  .Run([&](int index) {
                    runs[index].fetch_add(1);
                    if (index == 0) first = std::this_thread::get_id();
                    return absl::OkStatus();
                  })
                  .ok());
  for (const std::atomic<int>& n : runs) EXPECT_EQ(n.load(), 1);
  EXPECT_EQ(first, std::this_thread::get_id());
  EXPECT_FALSE(group.stop()->load());
}

// Between two Syncs every thread sees what all of them did before the
// first: the phases of a measurement do not overlap.
TEST(ThreadGroupTest, SyncSeparatesPhases) {
  constexpr int kThreads = 3;
  constexpr int kPhases = 50;
  ThreadGroup group(kThreads, nullptr, NoInit);
  std::atomic<int> done[kPhases] = {};
  std::atomic<int> overlaps{0};
  EXPECT_TRUE(group
                  .Run([&](int) {
                    for (int phase = 0; phase < kPhases; ++phase) {
                      done[phase].fetch_add(1);
                      if (!group.Sync()) return ThreadGroup::Cancelled();
                      if (done[phase].load() != kThreads) overlaps++;
                      if (!group.Sync()) return ThreadGroup::Cancelled();
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(overlaps.load(), 0);
}

// A thread that fails wakes those waiting for it, sets the stop flag, and
// its error, not their CANCELLED, is the group's.
TEST(ThreadGroupTest, AFailureCancelsTheOthers) {
  std::atomic<bool> stop{false};
  ThreadGroup group(3, &stop, NoInit);
  absl::Status status = group.Run([&](int index) {
    if (index == 2) return absl::UnavailableError("thread 2 failed");
    if (!group.Sync()) return ThreadGroup::Cancelled();
    return absl::InternalError("Sync passed without thread 2");
  });
  EXPECT_EQ(status, absl::UnavailableError("thread 2 failed"));
  EXPECT_TRUE(stop.load());
  EXPECT_FALSE(group.Sync());
}

TEST(ThreadGroupTest, AFailedInitSkipsTheBody) {
  std::atomic<int> bodies{0};
  ThreadGroup group(2, nullptr,
                    [] { return absl::UnavailableError("no device"); });
  absl::Status status = group.Run([&](int) {
    bodies.fetch_add(1);
    return absl::OkStatus();
  });
  EXPECT_EQ(status, absl::UnavailableError("no device"));
  EXPECT_EQ(bodies.load(), 1);  // Index 0's: its libOS was already up.
}

TEST(ThreadGroupTest, OneThreadNeverWaits) {
  ThreadGroup group(1, nullptr, NoInit);
  EXPECT_TRUE(group
                  .Run([&](int index) {
                    EXPECT_EQ(index, 0);
                    EXPECT_TRUE(group.Sync());
                    EXPECT_TRUE(group.Sync());
                    return absl::OkStatus();
                  })
                  .ok());
}

}  // namespace
}  // namespace demi::tools
