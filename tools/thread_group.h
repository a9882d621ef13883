// The threads of a tool run with --threads N: each has a libOS of its own
// (demi_init per thread; its queues and tokens are its own), and they meet
// between phases (all listening, all connected, each measured size).
#ifndef DEMI_TOOLS_THREAD_GROUP_H_
#define DEMI_TOOLS_THREAD_GROUP_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace demi::tools {

// Thread-safe: every member may be called from any thread of the group.
// std::mutex, not absl::Mutex: ThreadSanitizer cannot see the system absl's.
class ThreadGroup {
 public:
  // `size` threads (at least 1). `stop` (may be null: the group's own flag)
  // is set when the group is cancelled, so that serving loops watching it
  // (ServeOptions::stop) end too; a signal handler may set it as well.
  // `init_thread` runs first on each new thread: demi::tools::Init unless
  // given.
  explicit ThreadGroup(int size, std::atomic<bool>* stop = nullptr,
                       std::function<absl::Status()> init_thread = nullptr);
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  int size() const { return size_; }

  // Runs body(0) on the calling thread, which has its libOS already, and
  // body(1) .. body(size - 1) on new threads, each after `init_thread`.
  // The first thread to fail cancels the group. Returns, once every thread
  // has ended, that first failure (not the CANCELLED of those it stopped),
  // or OK. Call once.
  absl::Status Run(absl::FunctionRef<absl::Status(int index)> body);

  // A barrier: blocks until every thread of the group has called it as
  // many times as this one. False if the group is or gets cancelled: the
  // caller should end (see Cancelled()). Every thread of a group that is
  // not cancelled must call it equally often, or the others wait forever.
  bool Sync();

  // Wakes every Sync (false from now on) and sets the stop flag.
  void Cancel();

  // CANCELLED, for a thread that ends because Sync said so.
  static absl::Status Cancelled();

  // The stop flag: for ServeOptions::stop.
  const std::atomic<bool>* stop() const { return stop_; }

 private:
  // Records the first failure, then cancels.
  void Fail(const absl::Status& status);

  const int size_;
  std::atomic<bool> own_stop_{false};
  std::atomic<bool>* const stop_;
  const std::function<absl::Status()> init_thread_;
  std::mutex mutex_;
  std::condition_variable synced_;
  int arrived_ = 0;           // Guarded by mutex_: threads in this Sync.
  unsigned generation_ = 0;   // Guarded by mutex_: Syncs completed.
  bool cancelled_ = false;    // Guarded by mutex_.
  absl::Status first_error_;  // Guarded by mutex_.
};

}  // namespace demi::tools

#endif  // DEMI_TOOLS_THREAD_GROUP_H_
