// ringmq internals: the ring with a turn counter per slot, for every shape of ringmq::ring.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "ringmq/detail/preemption.hpp"
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
//   closed_ close(). With producers<multi> it copies the closed bit, stored after the fetch_or,
//          so that a waiting consumer can poll a line that no push writes (see drained()).
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
// Progress: try calls are lock-free, and wait-free on a side with a single thread. A claimed
// position is always completed, because the element is constructed by a noexcept move and
// destroyed by a noexcept destructor; a thread preempted between its claim and (A) or (B)
// delays only the call that needs that slot.
//
// Why a turn per slot, even for one producer and one consumer: a consumer that waits polls the
// turn of the slot it will take, which the producer writes once, when it fills that slot. With
// a shared tail counter instead, the waiting consumer polls the line the producer writes on
// every push, and each push then pays one more cache-line transfer between the cores.
//
// Runs (the bulk calls). A side claims a run of consecutive positions at once: it checks that
// the slot of each position in the run is ready, turn == 2p for a push and 2p + 1 for a pop,
// with the acquire loads (B') or (A'), and then claims the run with one CAS from its first
// position (or one store, for a single thread). A ready slot stays ready until the thread that
// claims its position uses it, and the CAS succeeds only if no other thread claimed a position
// of the run in between, so the whole run belongs to the caller. It then completes each
// position in order with (A) or (B), so the first elements of a run can be popped while the
// last are still being constructed.
//
// With producers<multi>, the closed flag shares the word with tail_, so a claim and close()
// are totally ordered: after close() no position is claimed, and every claimed position is
// published. A pop that sees the flag with head_ at the frozen tail knows the ring is drained.
//
// Atomic is std::atomic everywhere except in the interleaving check
// (tests/interleaving/turn_ring_check.cpp), which passes a type that lets a scheduler choose the
// thread that runs before each access, and enumerates every order of the accesses.
template <class T, class ProducerRole, class ConsumerRole, std::size_t StaticCapacity, class Layout,
          class Alloc, template <class> class Atomic = std::atomic>
class turn_ring {
  static constexpr bool multi_producer = std::is_same_v<ProducerRole, multi>;
  static constexpr bool multi_consumer = std::is_same_v<ConsumerRole, multi>;
  static constexpr std::size_t slot_alignment =
      std::is_same_v<Layout, padded> ? std::max(cache_line, alignof(T))
                                     : std::max(alignof(Atomic<std::uint64_t>), alignof(T));

  struct alignas(slot_alignment) slot {
    Atomic<std::uint64_t> turn{0};
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
    RINGMQ_PREEMPTION_POINT();
    construct(target->element.raw());
    target->turn.store(2 * tail + 1, std::memory_order_release);  // (A)
    RINGMQ_PREEMPTION_POINT();
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
    RINGMQ_PREEMPTION_POINT();
    T* element = source->element.get();
    consume(*element);
    element->~T();
    source->turn.store(2 * (head + capacity()), std::memory_order_release);  // (B)
    return true;
  }

  // Claims a run of up to `max_count` push positions and constructs their elements in order with
  // construct(void*), which must not throw. Returns the run's length: 0 when the ring is full
  // or closed.
  template <class Construct>
  std::size_t try_push_run(std::size_t max_count, Construct&& construct) noexcept {
    static_assert(noexcept(construct(nullptr)), "a run's elements are constructed after its claim");
    if (max_count == 0) return 0;
    std::uint64_t tail;
    std::size_t count;
    if constexpr (multi_producer) {
      tail = tail_.load(std::memory_order_relaxed);
      for (;;) {
        if (tail & closed_bit) return 0;
        count = ready_run(tail, max_count, 0);  // (B') for each slot
        if (count == 0) {
          const std::uint64_t turn = slots_[index_(tail)].turn.load(std::memory_order_relaxed);
          if (static_cast<std::int64_t>(turn - 2 * tail) < 0) return 0;  // full
          tail = tail_.load(std::memory_order_relaxed);  // another producer took this position
        } else if (tail_.compare_exchange_weak(tail, tail + count, std::memory_order_relaxed,
                                               std::memory_order_relaxed)) {
          break;
        }
      }
    } else {
      if (closed_.load(std::memory_order_relaxed)) return 0;
      tail = tail_.load(std::memory_order_relaxed);  // only this producer stores tail_
      count = ready_run(tail, max_count, 0);            // (B') for each slot
      if (count == 0) return 0;
    }
    RINGMQ_PREEMPTION_POINT();
    for (std::uint64_t p = tail; p != tail + count; ++p) {
      slot& target = slots_[index_(p)];
      construct(target.element.raw());
      target.turn.store(2 * p + 1, std::memory_order_release);  // (A)
      RINGMQ_PREEMPTION_POINT();
    }
    if constexpr (!multi_producer) {
      tail_.store(tail + count, std::memory_order_relaxed);
    }
    return count;
  }

  // Claims a run of up to `max_count` ready positions and hands their elements in order to
  // consume(T&), as try_pop_with does. Returns the run's length: 0 when no element is ready.
  template <class Consume>
  std::size_t try_pop_run(std::size_t max_count, Consume&& consume) noexcept {
    if (max_count == 0) return 0;
    std::uint64_t head;
    std::size_t count;
    if constexpr (multi_consumer) {
      head = head_.load(std::memory_order_relaxed);
      for (;;) {
        count = ready_run(head, max_count, 1);  // (A') for each slot
        if (count == 0) {
          const std::uint64_t turn = slots_[index_(head)].turn.load(std::memory_order_relaxed);
          if (static_cast<std::int64_t>(turn - (2 * head + 1)) < 0) return 0;  // empty
          head = head_.load(std::memory_order_relaxed);  // another consumer took this position
        } else if (head_.compare_exchange_weak(head, head + count, std::memory_order_relaxed,
                                               std::memory_order_relaxed)) {
          break;
        }
      }
    } else {
      head = head_.load(std::memory_order_relaxed);  // only this consumer stores head_
      count = ready_run(head, max_count, 1);            // (A') for each slot
      if (count == 0) return 0;
      head_.store(head + count, std::memory_order_relaxed);
    }
    RINGMQ_PREEMPTION_POINT();
    for (std::uint64_t p = head; p != head + count; ++p) {
      slot& source = slots_[index_(p)];
      T* element = source.element.get();
      consume(*element);
      element->~T();
      source.turn.store(2 * (p + capacity()), std::memory_order_release);  // (B)
      RINGMQ_PREEMPTION_POINT();
    }
    return count;
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
  // A blocked pop calls this after every failed attempt, so it reads closed_ first and tail_
  // only once the ring is closed. Reading tail_ on every round would keep a copy of the
  // producers' line in the waiting consumer's cache, and each claim would then have to take
  // that copy back, which costs one more cache-line transfer per push. With producers<multi>,
  // close() stores closed_ after it sets the closed bit in tail_, so once closed_ reads true the
  // tail read below is final.
  bool drained() const noexcept {
    if (!closed_.load(std::memory_order_seq_cst)) return false;
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

  // NOTE: with producers<single>, close() from a thread other than the producer races with a
  // push that already read closed_ as false. The push still publishes its element, possibly
  // after drained() returned true to a consumer, and the element then waits in the ring for a
  // later pop or the destructor. Closing this ring from the producer thread, or after its last
  // push, rules that out; the interleaving check's spsc_close_by_other_thread shows the
  // schedule. Closing the window would take a fence on every push of a single producer.
  void close() noexcept {
    RINGMQ_PREEMPTION_POINT();
    if constexpr (multi_producer) {
      tail_.fetch_or(closed_bit, std::memory_order_seq_cst);
    }
    RINGMQ_PREEMPTION_POINT();
    closed_.store(true, std::memory_order_seq_cst);
    RINGMQ_PREEMPTION_POINT();
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


  // The number of consecutive positions from `first`, at most `max_count`, whose slots have the
  // turn 2p + turn_offset: ready for their push (offset 0) or their pop (offset 1). Each turn is
  // loaded with acquire, which is (B') or (A') for the position.
  std::size_t ready_run(std::uint64_t first, std::size_t max_count,
                        std::uint64_t turn_offset) const noexcept {
    const std::size_t limit = std::min(max_count, capacity());
    std::size_t count = 0;
    while (count < limit) {
      const std::uint64_t p = first + count;
      if (slots_[index_(p)].turn.load(std::memory_order_acquire) != 2 * p + turn_offset) break;
      ++count;
    }
    return count;
  }

  static std::uint64_t tail_position(std::uint64_t raw_tail) noexcept {
    return multi_producer ? raw_tail & ~closed_bit : raw_tail;
  }

  // The producer and consumer counters sit on lines of their own, apart from the slots.
  alignas(cache_line) Atomic<std::uint64_t> tail_{0};
  alignas(cache_line) Atomic<std::uint64_t> head_{0};
  // Read-mostly fields: written once at construction or once by close().
  alignas(cache_line) Atomic<bool> closed_{false};
  slots_type slots_;
  index_map<StaticCapacity> index_;
};

}  // namespace ringmq::detail
