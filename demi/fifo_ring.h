// A first-in first-out queue of small, trivially copyable values (tokens,
// descriptors) in one power-of-two array that grows by doubling. Unlike
// std::deque, which allocates and frees a block every few hundred values
// and walks a map of blocks at each end, a push or a pop here is an index
// and a store once the ring has reached its working size.
#ifndef DEMI_DEMI_FIFO_RING_H_
#define DEMI_DEMI_FIFO_RING_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace demi {

template <typename T>
class FifoRing {
  static_assert(std::is_trivially_copyable_v<T>, "values are copied freely");

 public:
  bool empty() const { return head_ == tail_; }
  size_t size() const { return static_cast<size_t>(tail_ - head_); }
  // Both need a value in the ring.
  const T& front() const { return slots_[head_ & mask_]; }
  void pop_front() { ++head_; }

  void push_back(T value) {
    if (size() == capacity_) Grow();
    slots_[tail_++ & mask_] = value;
  }

  // Keeps, in order, only the values for which `keep(value)` is true.
  template <typename Keep>
  void RetainIf(Keep keep) {
    uint64_t kept = head_;
    for (uint64_t i = head_; i != tail_; ++i) {
      T value = slots_[i & mask_];
      if (keep(value)) slots_[kept++ & mask_] = value;
    }
    tail_ = kept;
  }

 private:
  void Grow() {
    std::vector<T> grown(slots_.empty() ? 16 : 2 * slots_.size());
    size_t n = size();
    for (size_t i = 0; i < n; ++i) grown[i] = slots_[(head_ + i) & mask_];
    slots_ = std::move(grown);
    capacity_ = slots_.size();
    mask_ = capacity_ - 1;
    head_ = 0;
    tail_ = n;
  }

  std::vector<T> slots_;
  size_t capacity_ = 0;  // slots_.size(), without its division.
  uint64_t mask_ = 0;    // capacity_ - 1 once it has grown.
  uint64_t head_ = 0;    // The front value's position, modulo the size.
  uint64_t tail_ = 0;    // One past the back value's.
};

}  // namespace demi

#endif  // DEMI_DEMI_FIFO_RING_H_
