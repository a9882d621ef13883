#include "demi/process_ids.h"

#include <atomic>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "demi/qd_counter.h"

namespace demi {
namespace {

// std::mutex, not absl::Mutex, wherever threads share state: the system's
// Abseil is not built for ThreadSanitizer, which cannot see its locks.
std::mutex qds_mutex;
// Guarded by qds_mutex. Never destroyed: a thread's libOS may give its qds
// back during the process's exit.
QdCounter* counter = nullptr;
absl::flat_hash_set<int>* live = nullptr;

void Create() {
  if (counter == nullptr) {
    counter = new QdCounter();
    live = new absl::flat_hash_set<int>();
  }
}

std::mutex ranges_mutex;
// Guarded by ranges_mutex. Never destroyed, as `live`.
absl::flat_hash_set<uint64_t>* live_ranges = nullptr;
uint64_t next_range = 0;

constexpr int kRangeShift = 64 - kTokenIdBits;

}  // namespace

int TakeQd() {
  std::lock_guard<std::mutex> lock(qds_mutex);
  Create();
  int qd = counter->Next([](int qd) { return live->contains(qd); });
  live->insert(qd);
  return qd;
}

void GiveBackQd(int qd) {
  std::lock_guard<std::mutex> lock(qds_mutex);
  Create();
  live->erase(qd);
}

uint64_t TakeTokenRange() {
  // Ids 1 up to kIds - 2: none of the range is 0, none is UINT64_MAX.
  constexpr uint64_t kIds = (uint64_t{1} << kTokenIdBits) - 2;
  std::lock_guard<std::mutex> lock(ranges_mutex);
  if (live_ranges == nullptr) live_ranges = new absl::flat_hash_set<uint64_t>();
  uint64_t id = 0;
  for (uint64_t tries = 0; tries < kIds; ++tries) {
    id = next_range++ % kIds + 1;
    if (live_ranges->insert(id).second) break;
  }
  return id << kRangeShift | 1;
}

void GiveBackTokenRange(uint64_t first) {
  std::lock_guard<std::mutex> lock(ranges_mutex);
  if (live_ranges != nullptr) live_ranges->erase(first >> kRangeShift);
}

}  // namespace demi
