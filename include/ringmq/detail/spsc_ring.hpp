// ringmq internals: the single-producer single-consumer ring with cached indices.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <type_traits>
#include <utility>

#include "ringmq/detail/slot_storage.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"

namespace ringmq::detail {

// Protocol.
//
// Positions count pushes (tail_) and pops (head_) since construction; position p lives in slot
// p % N. The ring holds tail_ - head_ elements, between 0 and N, so all N slots are usable.
//
// Shared fields and writers:
//   tail_  only the producer stores it: (A) with release after constructing the element of
//          position tail_; the consumer loads it with acquire (A') before reading elements.
//   head_  only the consumer stores it: (B) with release after destroying the element of
//          position head_; the producer loads it with acquire (B') before reusing slots.
// Each side keeps a private copy of the other side's counter (cached_head_, cached_tail_) and
// reloads it only when the copy says the ring is full or empty, so in steady state a push or a
// pop touches no cache line that the other side writes, apart from the slot itself.
//
// Linearization: a push takes effect at (A), a pop at (B). Both are wait-free.
//
// close() sets closed_. The producer reads closed_ before it pushes, so a push that starts after
// close() returned fails; a push already past that read when close() runs still completes.
// NOTE: a consumer may find the ring closed and drained just before such a push completes. The
// element then stays in the ring: a later pop returns it, or the ring destroys it. Calling
// close() from the producer thread, or after the producer's last push, avoids this.
template <class T, std::size_t StaticCapacity, class Layout, class Alloc>
class spsc_ring {
  static constexpr std::size_t slot_alignment =
      std::is_same_v<Layout, padded> ? std::max(cache_line, alignof(T)) : alignof(T);

  struct alignas(slot_alignment) slot {
    element_storage<T> element;
  };

 public:
  explicit spsc_ring(std::size_t capacity, const Alloc& alloc = Alloc())
      : slots_(capacity, alloc), index_(capacity) {}

  spsc_ring(const spsc_ring&) = delete;
  spsc_ring& operator=(const spsc_ring&) = delete;

  ~spsc_ring() {
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    for (std::uint64_t p = head_.load(std::memory_order_acquire); p < tail; ++p) {
      slots_[index_(p)].element.get()->~T();
    }
  }

  std::size_t capacity() const noexcept { return index_.capacity(); }

  // Nothing is claimed before (A), so an exception from construct leaves the ring as it was.
  static constexpr bool construct_may_throw = true;

  template <class Construct>
  bool try_push_with(Construct&& construct) noexcept(noexcept(construct(nullptr))) {
    if (closed_.load(std::memory_order_relaxed)) return false;
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // only we store tail_
    if (tail - cached_head_ == capacity()) {
      cached_head_ = head_.load(std::memory_order_acquire);  // (B')
      if (tail - cached_head_ == capacity()) return false;
    }
    construct(slots_[index_(tail)].element.raw());
    tail_.store(tail + 1, std::memory_order_release);  // (A)
    return true;
  }

  template <class Consume>
  bool try_pop_with(Consume&& consume) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // only we store head_
    if (head == cached_tail_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);  // (A')
      if (head == cached_tail_) return false;
    }
    T* element = slots_[index_(head)].element.get();
    consume(*element);
    element->~T();
    head_.store(head + 1, std::memory_order_release);  // (B)
    return true;
  }

  // Moves elements from [first, last) until the ring is full; one publish for the whole batch.
  // The caller guarantees that constructing T from *first and writing to out do not throw.
  template <class It, class End>
  std::size_t try_push_bulk(It first, End last) noexcept {
    if (closed_.load(std::memory_order_relaxed)) return 0;
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    cached_head_ = head_.load(std::memory_order_acquire);  // (B')
    const std::uint64_t room = capacity() - (tail - cached_head_);
    std::uint64_t count = 0;
    for (; count < room && first != last; ++count, ++first) {
      ::new (slots_[index_(tail + count)].element.raw()) T(std::ranges::iter_move(first));
    }
    if (count != 0)
      tail_.store(tail + count, std::memory_order_release);  // (A) for the whole batch
    return static_cast<std::size_t>(count);
  }

  // Moves up to max elements to out; one publish for the whole batch.
  template <class Out>
  std::size_t try_pop_bulk(Out& out, std::size_t max) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    cached_tail_ = tail_.load(std::memory_order_acquire);  // (A')
    const std::uint64_t available = std::min<std::uint64_t>(cached_tail_ - head, max);
    for (std::uint64_t i = 0; i < available; ++i) {
      T* element = slots_[index_(head + i)].element.get();
      *out = std::move(*element);
      ++out;
      element->~T();
    }
    if (available != 0)
      head_.store(head + available, std::memory_order_release);  // (B) for the whole batch
    return static_cast<std::size_t>(available);
  }

  bool push_ready_or_closed() const noexcept {
    if (closed_.load(std::memory_order_seq_cst)) return true;
    const std::uint64_t tail = tail_.load(std::memory_order_seq_cst);
    return tail - head_.load(std::memory_order_seq_cst) < capacity();
  }

  bool pop_ready_or_drained() const noexcept {
    const bool closed = closed_.load(std::memory_order_seq_cst);
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    return head != tail_.load(std::memory_order_seq_cst) || closed;
  }

  bool drained() const noexcept {
    if (!closed_.load(std::memory_order_seq_cst)) return false;
    return head_.load(std::memory_order_seq_cst) == tail_.load(std::memory_order_seq_cst);
  }

  std::size_t size() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    if (tail <= head) return 0;
    return static_cast<std::size_t>(std::min<std::uint64_t>(tail - head, capacity()));
  }

  void close() noexcept { closed_.store(true, std::memory_order_seq_cst); }
  bool is_closed() const noexcept { return closed_.load(std::memory_order_seq_cst); }

 private:
  using slots_type = slot_array<slot, StaticCapacity, Alloc>;


  // Producer line: written by the producer, tail_ read by the consumer on a cache miss.
  alignas(cache_line) std::atomic<std::uint64_t> tail_{0};
  std::uint64_t cached_head_ = 0;
  // Consumer line.
  alignas(cache_line) std::atomic<std::uint64_t> head_{0};
  std::uint64_t cached_tail_ = 0;
  // Read-mostly fields.
  alignas(cache_line) std::atomic<bool> closed_{false};
  slots_type slots_;
  index_map<StaticCapacity> index_;
};

}  // namespace ringmq::detail
