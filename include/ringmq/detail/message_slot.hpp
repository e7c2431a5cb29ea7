// ringmq internals: the per-message slot of a work queue and the encoding of its state word.
#pragma once

#include <atomic>
#include <cstdint>

#include "ringmq/detail/slot_storage.hpp"
#include "ringmq/detail/time.hpp"
#include "ringmq/detail/wait.hpp"

namespace ringmq::detail {

// The state of a message slot. Every slot is in exactly one of these states at a time.
enum class slot_kind : std::uint64_t {
  free = 0,      // no message; the index is in the free list
  visible = 1,   // waiting for a receiver; the index is in the ready list or held by a receiver
  delayed = 2,   // invisible until `due`; the reaper makes it visible
  leased = 3,    // handed out; the lease ends at `due`
  settling = 4,  // owned by one thread that is acking, nacking, expiring or dead-lettering it
};

// The state word: bits 0-3 the kind, bits 4-31 a version that extend() makes odd while it
// rewrites the deadline and even again after, bits 32-63 the slot's delivery number, which
// grows by one with every hand-out of any message in the slot. A receipt names the delivery
// number, so a receipt from an earlier delivery never matches a later lease.
struct slot_state {
  static constexpr std::uint64_t kind_mask = 0xF;
  static constexpr std::uint64_t version_mask = 0x0FFF'FFF0;

  static constexpr std::uint64_t make(slot_kind kind, std::uint32_t delivery,
                                      std::uint64_t version = 0) noexcept {
    return (std::uint64_t{delivery} << 32U) | ((version << 4U) & version_mask) |
           static_cast<std::uint64_t>(kind);
  }
  static constexpr slot_kind kind(std::uint64_t state) noexcept {
    return static_cast<slot_kind>(state & kind_mask);
  }
  static constexpr std::uint32_t delivery(std::uint64_t state) noexcept {
    return static_cast<std::uint32_t>(state >> 32U);
  }
  static constexpr std::uint64_t version(std::uint64_t state) noexcept {
    return (state & version_mask) >> 4U;
  }
  // The same state with the version advanced by one; the version wraps within its bits, and
  // because the number of versions is even, wrapping keeps odd and even apart.
  static constexpr std::uint64_t next_version(std::uint64_t state) noexcept {
    return (state & ~version_mask) | ((state + (1U << 4U)) & version_mask);
  }
  static constexpr bool writing_deadline(std::uint64_t state) noexcept {
    return (version(state) & 1U) != 0;
  }
};

// A counter with a single writer at a time: the thread that owns the slot. Ownership passes
// with release/acquire, so load-then-store is exact, and stats() may read it at any time.
struct owned_counter {
  std::atomic<std::uint64_t> value{0};

  void bump() noexcept {
    value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::uint64_t read() const noexcept { return value.load(std::memory_order_relaxed); }
};

// Counters of the events that happened to the messages of one slot. stats() sums them over
// all slots, so that counting costs the hot path no shared cache line.
struct slot_counters {
  owned_counter sent;
  owned_counter received;
  owned_counter redelivered;
  owned_counter acked;
  owned_counter nacked;
  owned_counter released;
  owned_counter expired_leases;
  owned_counter rejected;
  owned_counter evicted;
};

// One message and its bookkeeping. Fields marked "owner" are read and written only by the
// thread that owns the slot: the sender that popped it from the free list, the receiver that
// popped it from the ready list, the thread whose CAS moved it to settling, or the reaper for a
// delayed slot. The atomics are also read by threads that do not own the slot.
template <class T>
struct alignas(cache_line) message_slot {
  std::atomic<std::uint64_t> state{slot_state::make(slot_kind::free, 0)};
  std::atomic<nanos> due{nanos_max};  // lease end or visible-at time, on the queue's clock
  std::atomic<std::uint64_t> id{0};   // the message's id; checked against receipts
  std::atomic<nanos> sent_at{0};      // read by stats() for the oldest visible message
  std::atomic<bool> noticed{false};   // the index is in the reaper's notice list
  std::uint32_t receive_count = 0;    // owner
  std::uint32_t failure_count = 0;    // owner
  std::uint64_t sends = 0;            // owner: messages sent into this slot, for ids
  slot_counters counters;
  element_storage<T> body;  // a live T whenever the kind is not free
};

}  // namespace ringmq::detail
