// ringmq internals: an indexed binary min-heap of deadlines, one entry at most per message slot.
//
// The work queue's reaper owns it (under the reaper's mutex), so it is not thread-safe. All
// storage is allocated by the constructor; set(), erase() and pop() never allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "ringmq/detail/time.hpp"

namespace ringmq::detail {

class timer_heap {
 public:
  static constexpr std::uint32_t absent = std::numeric_limits<std::uint32_t>::max();

  // Creates an empty heap for slots 0 .. slots-1.
  explicit timer_heap(std::uint32_t slots)
      : order_(slots), keys_(slots, nanos_max), position_(slots, absent) {}

  bool empty() const noexcept { return size_ == 0; }
  std::uint32_t size() const noexcept { return size_; }

  // The earliest deadline, or nanos_max when empty.
  nanos top_key() const noexcept { return size_ == 0 ? nanos_max : keys_[order_[0]]; }
  std::uint32_t top_slot() const noexcept { return order_[0]; }

  bool contains(std::uint32_t slot) const noexcept { return position_[slot] != absent; }

  // Inserts slot with deadline key, or moves it to key when it is already present.
  void set(std::uint32_t slot, nanos key) noexcept {
    if (position_[slot] == absent) {
      keys_[slot] = key;
      position_[slot] = size_;
      order_[size_] = slot;
      ++size_;
      sift_up(size_ - 1);
      return;
    }
    const nanos old = keys_[slot];
    keys_[slot] = key;
    if (key < old) {
      sift_up(position_[slot]);
    } else {
      sift_down(position_[slot]);
    }
  }

  // Removes slot when present.
  void erase(std::uint32_t slot) noexcept {
    const std::uint32_t at = position_[slot];
    if (at == absent) return;
    const std::uint32_t last = size_ - 1;
    swap_positions(at, last);
    --size_;
    position_[slot] = absent;
    keys_[slot] = nanos_max;
    if (at != last) {
      sift_up(at);
      sift_down(at);
    }
  }

 private:
  void swap_positions(std::uint32_t a, std::uint32_t b) noexcept {
    std::swap(order_[a], order_[b]);
    position_[order_[a]] = a;
    position_[order_[b]] = b;
  }

  void sift_up(std::uint32_t at) noexcept {
    while (at > 0) {
      const std::uint32_t parent = (at - 1) / 2;
      if (keys_[order_[parent]] <= keys_[order_[at]]) return;
      swap_positions(at, parent);
      at = parent;
    }
  }

  void sift_down(std::uint32_t at) noexcept {
    for (;;) {
      const std::uint32_t left = 2 * at + 1;
      if (left >= size_) return;
      const std::uint32_t right = left + 1;
      std::uint32_t child = left;
      if (right < size_ && keys_[order_[right]] < keys_[order_[left]]) child = right;
      if (keys_[order_[at]] <= keys_[order_[child]]) return;
      swap_positions(at, child);
      at = child;
    }
  }

  std::vector<std::uint32_t> order_;     // heap order: order_[0] has the smallest key
  std::vector<nanos> keys_;              // deadline per slot
  std::vector<std::uint32_t> position_;  // index into order_ per slot, or absent
  std::uint32_t size_ = 0;
};

}  // namespace ringmq::detail
