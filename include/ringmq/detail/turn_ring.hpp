// ringmq internals: the ring with a turn counter per slot (MPMC, MPSC and SPMC shapes).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "ringmq/detail/slot_storage.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"

namespace ringmq::detail {

// Protocol.
//
// Positions count pushes (tail) and pops (head) since construction. Position p lives in slot
// p % N and is on the slot's lap p / N. Each slot has a turn counter that says which position
// the slot serves next and whether it holds an element:
//   turn == 2p      the slot is empty and waits for the push of position p
//   turn == 2p + 1  the slot holds the element of position p and waits for its pop
// Slot i starts at turn 2i. A push of p sets 2p + 1; the pop of p sets 2(p + N), the push turn
// of the next lap. Two turn values per position keep the states apart for every N >= 1.
//
// Shared fields and writers:
//   tail_  producers. With producers<multi>, a producer claims p by a CAS of tail_ from p to
//          p + 1, and the top bit of tail_ is the closed flag, set by close() with fetch_or.
//          With producers<single>, only the producer stores tail_, and closed_ is the flag.
//   head_  consumers. With consumers<multi>, a consumer claims p by a CAS of head_; with
//          consumers<single>, only the consumer stores head_.
//   turn   (A) the producer of p stores 2p + 1 with release after constructing the element;
//          the consumer of p loads it with acquire (A') before reading the element.
//          (B) the consumer of p stores 2(p + N) with release after destroying the element;
//          the producer of p + N loads it with acquire (B') before constructing.
// Linearization: a push takes effect at (A), a pop at (B); a try_push that finds the slot of
// tail_ on an earlier lap reports full, and a try_pop that finds the slot of head_ without the
// element of head_ reports empty. The CAS on tail_ and head_ orders claims; it can be relaxed
// because every access to an element is ordered by its slot's turn.
//
// Progress: try calls are lock-free. A claimed position is always completed, because the
// element is constructed by a noexcept move and destroyed by a noexcept destructor; a thread
// preempted between its claim and (A) or (B) delays only the call that needs that slot.
//
// With producers<multi>, the closed flag shares the word with tail_, so a claim and close()
// are totally ordered: after close() no position is claimed, and every claimed position is
// published. A pop that sees the flag with head_ at the frozen tail knows the ring is drained.
template <class T, class ProducerRole, class ConsumerRole, std::size_t StaticCapacity, class Layout,
          class Alloc>
class turn_ring {
  static constexpr bool multi_producer = std::is_same_v<ProducerRole, multi>;
  static constexpr bool multi_consumer = std::is_same_v<ConsumerRole, multi>;
  static constexpr std::size_t slot_alignment =
      std::is_same_v<Layout, padded> ? std::max(cache_line, alignof(T))
                                     : std::max(alignof(std::atomic<std::uint64_t>), alignof(T));

  struct alignas(slot_alignment) slot {
    std::atomic<std::uint64_t> turn{0};
    element_storage<T> element;
  };

  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;

 public:
  explicit turn_ring(std::size_t capacity, const Alloc& alloc = Alloc())
      : slots_(capacity, alloc), index_(capacity) {
    for (std::size_t i = 0; i < capacity; ++i) {
      slots_[i].turn.store(2 * std::uint64_t{i}, std::memory_order_relaxed);
    }
  }

  turn_ring(const turn_ring&) = delete;
  turn_ring& operator=(const turn_ring&) = delete;

  ~turn_ring() {
    // No call is in progress, so every position in [head, tail) holds its element.
    const std::uint64_t tail = tail_position(tail_.load(std::memory_order_acquire));
    for (std::uint64_t p = head_.load(std::memory_order_acquire); p < tail; ++p) {
      slots_[index_(p)].element.get()->~T();
    }
  }

  std::size_t capacity() const noexcept { return index_.capacity(); }

  // With several producers a claimed position is visible to the others at once and cannot be
  // given back, so construction must not throw. A single producer claims nothing before (A).
  static constexpr bool construct_may_throw = !multi_producer;

  // Claims the next position and constructs its element with construct(void*). Returns false,
  // without calling construct, when the ring is full or closed. With producers<multi>,
  // construct must not throw; with producers<single>, an exception from it leaves the ring as
  // it was.
  template <class Construct>
  bool try_push_with(Construct&& construct) noexcept(!construct_may_throw ||
                                                     noexcept(construct(nullptr))) {
    std::uint64_t tail;
    slot* target;
    if constexpr (multi_producer) {
      tail = tail_.load(std::memory_order_relaxed);
      for (;;) {
        if (tail & closed_bit) return false;
        target = &slots_[index_(tail)];
        const std::uint64_t turn = target->turn.load(std::memory_order_acquire);  // (B')
        const auto lag = static_cast<std::int64_t>(turn - 2 * tail);
        if (lag == 0) {
          if (tail_.compare_exchange_weak(tail, tail + 1, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
            break;
          }
        } else if (lag < 0) {
          return false;  // the slot still holds the element of position tail - N
        } else {
          tail = tail_.load(std::memory_order_relaxed);  // another producer took this position
        }
      }
    } else {
      if (closed_.load(std::memory_order_relaxed)) return false;
      tail = tail_.load(std::memory_order_relaxed);  // only this producer stores tail_
      target = &slots_[index_(tail)];
      if (target->turn.load(std::memory_order_acquire) != 2 * tail) return false;  // (B')
    }
    construct(target->element.raw());
    target->turn.store(2 * tail + 1, std::memory_order_release);  // (A)
    if constexpr (!multi_producer) {
      tail_.store(tail + 1, std::memory_order_relaxed);  // read only by size() and drain checks
    }
    return true;
  }

  // Claims the next ready position and hands its element to consume(T&), which must not throw
  // and must leave the element destructible. Returns false when no element is ready.
  template <class Consume>
  bool try_pop_with(Consume&& consume) noexcept {
    std::uint64_t head;
    slot* source;
    if constexpr (multi_consumer) {
      head = head_.load(std::memory_order_relaxed);
      for (;;) {
        source = &slots_[index_(head)];
        const std::uint64_t turn = source->turn.load(std::memory_order_acquire);  // (A')
        const auto lag = static_cast<std::int64_t>(turn - (2 * head + 1));
        if (lag == 0) {
          if (head_.compare_exchange_weak(head, head + 1, std::memory_order_relaxed,
                                          std::memory_order_relaxed)) {
            break;
          }
        } else if (lag < 0) {
          return false;  // position head is not pushed yet, or its push is in progress
        } else {
          head = head_.load(std::memory_order_relaxed);  // another consumer took this position
        }
      }
    } else {
      head = head_.load(std::memory_order_relaxed);  // only this consumer stores head_
      source = &slots_[index_(head)];
      if (source->turn.load(std::memory_order_acquire) != 2 * head + 1) return false;  // (A')
      head_.store(head + 1, std::memory_order_relaxed);  // read only by size() and drain checks
    }
    T* element = source->element.get();
    consume(*element);
    element->~T();
    source->turn.store(2 * (head + capacity()), std::memory_order_release);  // (B)
    return true;
  }

  // Whether a push could claim a slot now, or the ring is closed. Loads are seq_cst for the
  // recheck step of wake_channel.
  bool push_ready_or_closed() const noexcept {
    const std::uint64_t raw_tail = tail_.load(std::memory_order_seq_cst);
    if (is_closed()) return true;
    const std::uint64_t tail = tail_position(raw_tail);
    return slots_[index_(tail)].turn.load(std::memory_order_seq_cst) == 2 * tail;
  }

  // Whether a pop could take an element now, or the ring is closed and drained.
  bool pop_ready_or_drained() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    if (slots_[index_(head)].turn.load(std::memory_order_seq_cst) == 2 * head + 1) return true;
    return drained();
  }

  // Whether the ring is closed and every element pushed before close() has been popped.
  bool drained() const noexcept {
    if (!is_closed()) return false;
    const std::uint64_t tail = tail_position(tail_.load(std::memory_order_seq_cst));
    return head_.load(std::memory_order_seq_cst) >= tail;
  }

  std::size_t size() const noexcept {
    // Tail first: the head read later can only be larger, so while calls are in progress the
    // result is a lower bound of the count at the moment of the head read. The work queue
    // relies on that: when its free list reads full, no thread has taken a slot. A head that
    // passed the tail read reads as empty.
    const std::uint64_t tail = tail_position(tail_.load(std::memory_order_acquire));
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    if (tail <= head) return 0;
    return static_cast<std::size_t>(std::min<std::uint64_t>(tail - head, capacity()));
  }

  void close() noexcept {
    if constexpr (multi_producer) {
      tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
    } else {
      closed_.store(true, std::memory_order_seq_cst);
    }
  }

  bool is_closed() const noexcept {
    if constexpr (multi_producer) {
      return (tail_.load(std::memory_order_seq_cst) & closed_bit) != 0;
    } else {
      return closed_.load(std::memory_order_seq_cst);
    }
  }

 private:
  using slots_type = slot_array<slot, StaticCapacity, Alloc>;


  static std::uint64_t tail_position(std::uint64_t raw_tail) noexcept {
    return multi_producer ? raw_tail & ~closed_bit : raw_tail;
  }

  // The producer and consumer counters sit on lines of their own, apart from the slots.
  alignas(cache_line) std::atomic<std::uint64_t> tail_{0};
  alignas(cache_line) std::atomic<std::uint64_t> head_{0};
  // Read-mostly fields: written once at construction or once by close().
  alignas(cache_line) std::atomic<bool> closed_{false};
  slots_type slots_;
  index_map<StaticCapacity> index_;
};

}  // namespace ringmq::detail
