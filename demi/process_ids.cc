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

std::atomic<uint64_t> next_range{1};

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
  constexpr uint64_t kIds = uint64_t{1} << kTokenIdBits;
  // Ids 1 up to kIds - 2: none of the range is 0, none is UINT64_MAX.
  uint64_t id = next_range.fetch_add(1, std::memory_order_relaxed) % (kIds - 2);
  return (id + 1) << (64 - kTokenIdBits) | 1;
}

}  // namespace demi
