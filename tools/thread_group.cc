#include "tools/thread_group.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "tools/demi_tool.h"

namespace demi::tools {

ThreadGroup::ThreadGroup(int size, std::atomic<bool>* stop,
                         std::function<absl::Status()> init_thread)
    : size_(std::max(1, size)),
      stop_(stop != nullptr ? stop : &own_stop_),
      init_thread_(init_thread ? std::move(init_thread) : Init) {}

absl::Status ThreadGroup::Run(absl::FunctionRef<absl::Status(int index)> body) {
  auto run = [this, body](int index) {
    absl::Status status = index == 0 ? absl::OkStatus() : init_thread_();
    if (status.ok()) status = body(index);
    if (!status.ok()) Fail(status);
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < size_; ++i) threads.emplace_back(run, i);
  run(0);
  // Joined before returning: a libOS thread still running at exit() would
  // be left undelivered (libos.h).
  for (std::thread& thread : threads) thread.join();
  std::lock_guard<std::mutex> lock(mutex_);
  return first_error_;
}

bool ThreadGroup::Sync() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (cancelled_) return false;
  unsigned generation = generation_;
  if (++arrived_ == size_) {
    arrived_ = 0;
    ++generation_;
    synced_.notify_all();
    return true;
  }
  synced_.wait(lock, [&] { return cancelled_ || generation_ != generation; });
  // A Sync that completed just before a cancel still counts.
  return generation_ != generation;
}

void ThreadGroup::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = true;
  }
  stop_->store(true);
  synced_.notify_all();
}

absl::Status ThreadGroup::Cancelled() {
  return absl::CancelledError("another thread failed");
}

void ThreadGroup::Fail(const absl::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (first_error_.ok()) first_error_ = status;
  }
  Cancel();
}

}  // namespace demi::tools
