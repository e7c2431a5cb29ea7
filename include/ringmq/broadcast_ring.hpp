// ringmq::broadcast_ring: one bounded buffer that every reader reads in full, each at its own
// cursor, in the style of the LMAX Disruptor. For fan-out without a copy per reader, such as a
// game engine's frame events read by several systems.
//
//   ringmq::broadcast_ring<event> events(1024);         // one writer, waiting calls park
//   std::optional<ringmq::broadcast_ring<event>::reader> input = events.try_join();
//   events.publish(event{...});                         // waits while a reader is 1024 behind
//   input->try_read_batch([](const event& e) { handle(e); }, 64);   // no copy
//
// Every reader reads every element published after it joined, in publish order, with no gap and
// no duplicate. The slowest reader gates the writer: a publish fails or waits while some reader
// has not yet read the element that the publish would overwrite. A reader that leaves (its handle
// is destroyed) stops gating. With no reader joined, publishing never waits, and the oldest
// elements are overwritten.
//
// Options, as tags in any order: producers<single> (default) or producers<multi>, wait<P>
// (default park), capacity<N> (storage inline, where without it the capacity is a constructor
// argument) and slot_layout<padded> (default: each element on its own cache line) or
// slot_layout<packed> (elements back to back). The capacity is a power of two.
// docs/broadcast_ring.md is the reference for every call, and the protocol comment on the class
// gives the algorithm.
//
// Requirements on T: its move constructor and destructor are noexcept. Readers get elements as
// const T&, so T need not be copyable. Only reader::try_read() without a visitor makes a copy.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/slot_storage.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"

namespace ringmq {

// Numbers of a broadcast ring, fixed at construction.
struct broadcast_config {
  // Elements in the buffer: a power of two. With the capacity<N> option, leave it 0 or pass N.
  std::size_t capacity = 0;
  // Readers that can be joined at the same time. Their cursors are allocated up front, one cache
  // line each, so that joining never allocates.
  std::size_t max_readers = 64;
};

namespace detail {

// Fails to compile for an option that a broadcast ring does not take. The instantiation note
// names O.
template <class O>
constexpr bool check_broadcast_option() {
  using kind = typename option_kind<O>::type;
  static_assert(std::is_same_v<kind, capacity_kind> || std::is_same_v<kind, producers_kind> ||
                    std::is_same_v<kind, wait_kind> || std::is_same_v<kind, layout_kind>,
                "ringmq::broadcast_ring: unknown option; expected capacity<N>, producers<R>, "
                "wait<P> or slot_layout<L> (each reader is a handle used by one thread, so "
                "consumers<R> does not apply)");
  return true;
}

// The parsed option list of a broadcast ring: each option kind given, or its default.
template <class... Options>
struct broadcast_options {
  static constexpr bool all_known = (check_broadcast_option<Options>() && ...);
  static_assert(count_of_kind<capacity_kind, Options...> <= 1 &&
                    count_of_kind<producers_kind, Options...> <= 1 &&
                    count_of_kind<wait_kind, Options...> <= 1 &&
                    count_of_kind<layout_kind, Options...> <= 1,
                "ringmq::broadcast_ring: an option kind is given more than once; give each of "
                "capacity, producers, wait and slot_layout at most once");

  static constexpr std::size_t capacity_value =
      count_of_kind<capacity_kind, Options...> == 1
          ? find_option<capacity_kind, capacity<1>, Options...>::type::value
          : runtime_capacity;
  using producer_role =
      typename find_option<producers_kind, producers<single>, Options...>::type::type;
  using wait_policy = typename find_option<wait_kind, wait<park>, Options...>::type::type;
  using layout = typename find_option<layout_kind, slot_layout<padded>, Options...>::type::type;
};

// Largest capacity. Sequence numbers stay below 2^63, so `sequence < gate + capacity` cannot
// overflow, and the slot array rejects 2^62 and above.
inline constexpr std::size_t max_broadcast_capacity = std::size_t{1} << 61;

}  // namespace detail

// Protocol.
//
// Elements are numbered by sequence 0, 1, 2, ... in publish order, and element s lives in slot
// s % N (N = capacity). A reader's cursor is the sequence of the next element it reads, so the
// reader has read every element below it.
//
// Shared fields and writers:
//   head_        producers<single>: the count of published elements, stored only by the writer:
//                (P) with release after constructing element head_, and readers load it with
//                acquire (P') before reading. producers<multi>: the count of claimed sequences,
//                with the closed flag in the top bit. A producer claims s by a CAS of head_ from s
//                to s + 1, and close() sets the flag with fetch_or, so claims and close() are
//                totally ordered.
//   marker       producers<multi> only, one per slot in an array beside the slots: s + 1 once
//                element s is in the slot, 0 before the first. (P) the producer of s stores it with
//                release after constructing. Readers load it with acquire (P') before reading
//                element s, and the producer of s + N loads it with acquire (M') before destroying
//                element s.
//   cursor       one per joined reader, in a table of max_readers entries, `vacant` when free.
//                (C) the reader stores it with release after reading the elements below it, and
//                (L) stores `vacant` with release when it leaves. (C') a producer loads it with
//                acquire before reusing slots.
//   gate_        a lower bound of every joined reader's cursor, now and later. It only grows.
//                Writer-private with producers<single>. With producers<multi> it is an atomic
//                that producers raise with a CAS (G, release) and load with acquire (G').
//   high_water_  one past the highest table entry ever used, so that a scan of cursors stops
//                there. Raised by joins.
//   joined_      the count of readers joined or joining, at most max_readers. Joins reserve a
//                place with a CAS before taking an entry, and leaves release it after vacating one.
//
// Invariant: a producer writes sequence s only when s < gate + N, so it never overwrites an
// element that a joined reader has not read (every cursor is at least gate). To raise the gate, a
// producer refreshes it: (F_w) light_fence, then it takes the minimum of the sequence it wants
// and every cursor in [0, high_water_).
//
// Join. A reader makes itself visible to producers before it chooses where it starts:
//   (J1) CAS a vacant entry to c1 = the current head, and raise high_water_
//   (F_j) heavy_fence
//   (J2) load head: c2, the reader's first sequence
//   (J3) store c2 to the entry, and wake producers that wait for room, which c1 may have held.
// The classic race is a producer whose refresh ran before J1 and which then keeps writing up to
// its gate + N without looking at the table again. F_w and F_j act as a full fence on each side
// (detail/wait.hpp), so either the refresh saw J1 and its gate is at most c1 <= c2, or J2 sees the
// head that the producer had when it refreshed, which is at least that gate. Either way every
// gate in use is at most c2, and the element c2 and all later ones stay in the buffer until the
// reader has read them. A cursor c1 below a gate already in force was missed by that gate's
// refresh, so c2 is at or above it. That is why a refresh keeps the larger of the old gate and
// its new minimum, and why a reader between J1 and J3 gates no producer whose gate is past c1.
// Leave. (L) vacates the entry. A refresh that still reads the old cursor only gates lower than
// needed, and the next refresh skips the entry. A leave wakes producers that wait for room.
//
// Linearization points: a publish at (P), close() at its store or fetch_or, a join at J2, a read
// at (C), a leave at (L). A join sees exactly the elements with a sequence of at least c2: all
// elements claimed after J2, none claimed before it.
//
// Progress. With producers<single>, try_publish and reader calls are wait-free: a refresh reads
// at most max_readers cursors. With producers<multi>, try_publish is lock-free (a CAS loop). A
// producer preempted between its claim and (P) delays the readers that wait for its element and
// the producer of the same slot one lap later, nobody else. try_join is lock-free. The slowest
// reader gates every producer by design: a joined reader that stops reading stops the writer.
template <class T, class... Options>
class broadcast_ring {
  static_assert(std::is_object_v<T> && !std::is_array_v<T> && !std::is_const_v<T> &&
                    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "ringmq::broadcast_ring<T>: T's move constructor and destructor must be noexcept, "
                "and T must be a non-const, non-array object type; a producer destroys the old "
                "element of a slot and moves the new one in after it has claimed the slot");

  using options = detail::broadcast_options<Options...>;
  static_assert(options::all_known);

  using wait_type = typename options::wait_policy;
  static constexpr bool can_sleep = wait_type::can_sleep;
  static constexpr bool multi_producer = std::is_same_v<typename options::producer_role, multi>;
  static constexpr std::size_t static_capacity = options::capacity_value;
  static constexpr bool has_static_capacity = static_capacity != detail::runtime_capacity;
  static_assert(!has_static_capacity || std::has_single_bit(static_capacity),
                "ringmq::broadcast_ring: capacity<N> must be a power of two");
  static_assert(!has_static_capacity || static_capacity <= detail::max_broadcast_capacity,
                "ringmq::broadcast_ring: capacity<N> must be at most 2^61");

  // With slot_layout<padded>, a reader right behind the writer does not read a cache line that
  // the writer is still filling.
  static constexpr std::size_t slot_alignment = std::is_same_v<typename options::layout, padded>
                                                    ? std::max(detail::cache_line, alignof(T))
                                                    : alignof(T);
  struct alignas(slot_alignment) slot {
    detail::element_storage<T> element;
  };
  using slots_type = detail::slot_array<slot, static_capacity, std::allocator<slot>>;
  // Each element takes a slot and, with producers<multi>, an 8-byte marker.
  static_assert(!has_static_capacity ||
                    static_capacity <= static_cast<std::size_t>(PTRDIFF_MAX) / (sizeof(slot) + 8),
                "ringmq::broadcast_ring: capacity<N> is too large: N slots of T do not fit in one "
                "object; pass a smaller N, or leave out capacity<N> and pass the capacity in the "
                "config, which allocates the slots");

  // The published markers of producers<multi>, in an array of their own, back to back, so that
  // a batch read checks eight of them per cache line. A single writer needs none.
  struct marker {
    std::atomic<std::uint64_t> value{0};
  };
  struct no_markers {
    no_markers(std::size_t, const std::allocator<marker>&) noexcept {}
  };
  using markers_type =
      std::conditional_t<multi_producer,
                         detail::slot_array<marker, static_capacity, std::allocator<marker>>,
                         no_markers>;

  struct alignas(detail::cache_line) reader_entry {
    std::atomic<std::uint64_t> cursor{vacant};
  };

  static constexpr std::uint64_t vacant = std::numeric_limits<std::uint64_t>::max();
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 63;

 public:
  using value_type = T;
  class reader;

  // Creates an empty, open ring. Throws std::invalid_argument for a capacity that is 0 or not a
  // power of two, for max_readers 0, and, with capacity<N>, for a config.capacity other than 0
  // and N. Throws std::length_error when the storage size overflows. Each message names the value.
  explicit broadcast_ring(const broadcast_config& config)
      : slots_(checked_capacity(config), std::allocator<slot>()),
        markers_(checked_capacity(config), std::allocator<marker>()),
        mask_(checked_capacity(config) - 1),
        max_readers_(checked_max_readers(config)),
        readers_(std::make_unique<reader_entry[]>(max_readers_)) {}

  // Creates an empty ring with room for `capacity` elements, a power of two.
  explicit broadcast_ring(
      std::size_t capacity,
      std::size_t max_readers = broadcast_config{}.max_readers) requires(!has_static_capacity)
      : broadcast_ring(broadcast_config{.capacity = capacity, .max_readers = max_readers}) {}

  // Creates an empty ring with the capacity of the capacity<N> option, stored inline.
  broadcast_ring() requires(has_static_capacity) : broadcast_ring(broadcast_config{}) {}

  broadcast_ring(const broadcast_ring&) = delete;
  broadcast_ring& operator=(const broadcast_ring&) = delete;

  // Destroys the elements still in the buffer. Every reader must have left or been destroyed.
  ~broadcast_ring() {
    if constexpr (multi_producer) {
      for (std::size_t index = 0; index < capacity(); ++index) {
        if (markers_[index].value.load(std::memory_order_acquire) != 0) {
          std::destroy_at(slots_[index].element.get());
        }
      }
    } else {
      const std::uint64_t published = head_.load(std::memory_order_acquire);
      const std::uint64_t oldest = published > capacity() ? published - capacity() : 0;
      for (std::uint64_t sequence = oldest; sequence < published; ++sequence) {
        std::destroy_at(slot_at(sequence).element.get());
      }
    }
  }

  // ---- publishing -----------------------------------------------------------------------------
  //
  // Each call returns false, and publishes nothing, when the slowest reader would lose an
  // element (the ring is full) or the ring is closed. is_closed() distinguishes the two. With
  // producers<single>, only one thread at a time may call them.

  [[nodiscard]] bool try_publish(T&& value) noexcept { return try_emplace(std::move(value)); }
  [[nodiscard]] bool try_publish(const T& value) { return try_emplace(value); }

  // Constructs the element from args. An exception from that constructor publishes nothing and
  // leaves the ring unchanged. With producers<multi> and a constructor that may throw, the
  // element is built before a sequence is claimed, from copies of args so that a call that
  // finds the ring full leaves them unchanged, and is then moved in.
  template <class... Args>
    requires std::constructible_from<T, Args...>
  [[nodiscard]] bool try_emplace(Args&&... args) {
    if constexpr (std::is_nothrow_constructible_v<T, Args...> || !multi_producer) {
      std::uint64_t sequence = 0;
      if (!try_claim(sequence)) return false;
      fill(sequence, std::forward<Args>(args)...);
      return true;
    } else if constexpr (std::is_constructible_v<T, const std::remove_reference_t<Args>&...>) {
      T element(std::as_const(args)...);
      return try_publish(std::move(element));
    } else {
      // NOTE: T can only be built by moving from args and that may throw, so args are moved
      // from before a sequence is claimed, and a call that finds the ring full leaves them empty.
      T element(std::forward<Args>(args)...);
      return try_publish(std::move(element));
    }
  }

  // Waiting calls: they wait as the wait policy chooses while the ring is full, and return false
  // once it is closed. The _for forms also give up when the timeout, measured on
  // std::chrono::steady_clock, passes. A zero or negative timeout makes one attempt.

  bool publish(T&& value) { return emplace_until(detail::steady_time::max(), std::move(value)); }
  bool publish(const T& value) { return emplace_until(detail::steady_time::max(), value); }

  template <class... Args>
    requires std::constructible_from<T, Args...>
  bool emplace(Args&&... args) {
    return emplace_until(detail::steady_time::max(), std::forward<Args>(args)...);
  }

  template <class Rep, class Period>
  bool publish_for(T&& value, std::chrono::duration<Rep, Period> timeout) {
    return emplace_until(detail::deadline_after(timeout), std::move(value));
  }

  template <class Rep, class Period>
  bool publish_for(const T& value, std::chrono::duration<Rep, Period> timeout) {
    return emplace_until(detail::deadline_after(timeout), value);
  }

  // ---- readers --------------------------------------------------------------------------------

  // Joins a new reader, which starts at the next element published: it reads exactly the
  // elements claimed after this call's linearization point (see the protocol). Returns an empty
  // optional when max_readers readers are joined or the ring is closed. Never allocates.
  [[nodiscard]] std::optional<reader> try_join() noexcept {
    // Reserve a place. Acquire pairs with the release in a leave, so that the entry it vacated
    // is seen as vacant below.
    std::size_t joined = joined_.load(std::memory_order_acquire);
    do {
      if (joined >= max_readers_) return std::nullopt;
    } while (!joined_.compare_exchange_weak(joined, joined + 1, std::memory_order_acquire,
                                            std::memory_order_acquire));

    // (J1) Take a vacant entry with a provisional cursor, which gates producers from now on.
    // The reservation guarantees a vacant entry, but concurrent joins may take the ones seen first.
    const std::uint64_t provisional = head_position(head_.load(std::memory_order_acquire));
    std::size_t index = 0;
    for (;; index = index + 1 == max_readers_ ? 0 : index + 1) {
      std::uint64_t expected = vacant;
      if (readers_[index].cursor.load(std::memory_order_relaxed) == vacant &&
          readers_[index].cursor.compare_exchange_strong(expected, provisional,
                                                         std::memory_order_seq_cst)) {
        break;
      }
    }
    std::size_t used = high_water_.load(std::memory_order_relaxed);
    while (used < index + 1 &&
           !high_water_.compare_exchange_weak(used, index + 1, std::memory_order_seq_cst)) {
    }

    RINGMQ_PREEMPTION_POINT();
    detail::heavy_fence();  // (F_j) pairs with (F_w) in refresh_gate
    const std::uint64_t head = head_.load(std::memory_order_acquire);  // (J2)
    if (closed(head)) {
      vacate(readers_[index]);
      return std::nullopt;
    }
    const std::uint64_t start = head_position(head);
    RINGMQ_PREEMPTION_POINT();
    readers_[index].cursor.store(start, std::memory_order_release);  // (J3)
    wake_producers();  // a producer may wait for room that c1 held back
    return reader(*this, readers_[index], start);
  }

  // ---- observers and close --------------------------------------------------------------------

  std::size_t capacity() const noexcept {
    if constexpr (has_static_capacity) return static_capacity;
    return static_cast<std::size_t>(mask_ + 1);
  }

  std::size_t max_readers() const noexcept { return max_readers_; }

  // Readers joined now, counting joins in progress. A snapshot while joins and leaves run.
  std::size_t reader_count() const noexcept { return joined_.load(std::memory_order_relaxed); }

  // Closes the ring: publishing fails from then on, readers read what was published and then
  // find the ring drained, and try_join returns nothing. Wakes every waiting call. Idempotent.
  void close() noexcept {
    if constexpr (multi_producer) {
      head_.fetch_or(closed_bit, std::memory_order_seq_cst);
    } else {
      closed_.store(true, std::memory_order_seq_cst);
    }
    if constexpr (can_sleep) {
      not_empty_.wake();
      not_full_.wake();
    }
  }

  bool is_closed() const noexcept { return closed(head_.load(std::memory_order_seq_cst)); }

 private:
  // ---- construction checks --------------------------------------------------------------------

  static std::size_t checked_capacity(const broadcast_config& config) {
    const auto fail = [](const std::string& what) {
      throw std::invalid_argument("ringmq::broadcast_ring: " + what);
    };
    const std::size_t requested = config.capacity;
    if constexpr (has_static_capacity) {
      if (requested != 0 && requested != static_capacity) {
        fail("capacity " + std::to_string(requested) + " differs from the capacity<" +
             std::to_string(static_capacity) + "> option; leave capacity at 0 or pass " +
             std::to_string(static_capacity));
      }
      return static_capacity;
    } else {
      if (requested == 0) fail("capacity 0 is invalid; pass a power of two such as 1024");
      constexpr std::size_t bytes_per_element =
          sizeof(slot) + (multi_producer ? sizeof(marker) : 0);
      if (requested > detail::max_broadcast_capacity ||
          requested > std::numeric_limits<std::size_t>::max() / bytes_per_element) {
        throw std::length_error("ringmq::broadcast_ring: capacity " + std::to_string(requested) +
                                " is too large: its storage of " +
                                std::to_string(bytes_per_element) +
                                " bytes per element overflows std::size_t, or it is above 2^61; "
                                "pass a smaller power of two");
      }
      if (!std::has_single_bit(requested)) {
        fail("capacity " + std::to_string(requested) +
             " is not a power of two; pass one, such as " +
             std::to_string(std::bit_floor(requested)) + " or " +
             std::to_string(std::bit_ceil(requested)));
      }
      return requested;
    }
  }

  static std::size_t checked_max_readers(const broadcast_config& config) {
    if (config.max_readers == 0) {
      throw std::invalid_argument(
          "ringmq::broadcast_ring: max_readers 0 is invalid; pass at least 1");
    }
    if (config.max_readers > std::numeric_limits<std::size_t>::max() / sizeof(reader_entry)) {
      throw std::length_error("ringmq::broadcast_ring: max_readers " +
                              std::to_string(config.max_readers) +
                              " is too large: " + std::to_string(sizeof(reader_entry)) +
                              " bytes per reader overflow std::size_t; pass a smaller count");
    }
    return config.max_readers;
  }

  // ---- shared helpers -------------------------------------------------------------------------

  std::size_t index_of(std::uint64_t sequence) const noexcept {
    if constexpr (has_static_capacity) {
      return static_cast<std::size_t>(sequence & (static_capacity - 1));
    } else {
      return static_cast<std::size_t>(sequence & mask_);
    }
  }

  slot& slot_at(std::uint64_t sequence) noexcept { return slots_[index_of(sequence)]; }

  std::atomic<std::uint64_t>& marker_at(std::uint64_t sequence) noexcept requires multi_producer {
    return markers_[index_of(sequence)].value;
  }

  // The sequence part of a head_ value.
  static std::uint64_t head_position(std::uint64_t head) noexcept {
    return multi_producer ? head & ~closed_bit : head;
  }

  bool closed(std::uint64_t head) const noexcept {
    if constexpr (multi_producer) {
      return (head & closed_bit) != 0;
    } else {
      return closed_.load(std::memory_order_seq_cst);
    }
  }

  void vacate(reader_entry& entry) noexcept {
    entry.cursor.store(vacant, std::memory_order_release);  // (L)
    RINGMQ_PREEMPTION_POINT();
    // Release: a join that reserves this place finds the entry vacant.
    joined_.fetch_sub(1, std::memory_order_release);
    wake_producers();
  }

  void wake_producers() noexcept {
    if constexpr (can_sleep) not_full_.wake();
  }

  // ---- producer side --------------------------------------------------------------------------

  // Raises the gate as far as the readers allow and returns it. `next_sequence` is the sequence
  // this producer is about to write, from a head_ value that this thread loaded before the fence,
  // as the join argument in the protocol requires.
  std::uint64_t refresh_gate(std::uint64_t next_sequence) noexcept {
    RINGMQ_PREEMPTION_POINT();
    detail::light_fence();  // (F_w) pairs with (F_j) in try_join
    std::uint64_t lowest = next_sequence;
    const std::size_t used = high_water_.load(std::memory_order_relaxed);  // ordered by F_w
    for (std::size_t index = 0; index < used; ++index) {
      // A vacant entry reads as the largest value, so the minimum skips it.
      lowest = std::min(lowest, readers_[index].cursor.load(std::memory_order_acquire));  // (C')
    }
    if constexpr (multi_producer) {
      std::uint64_t gate = gate_.load(std::memory_order_acquire);  // (G')
      while (gate < lowest && !gate_.compare_exchange_weak(gate, lowest, std::memory_order_acq_rel,
                                                           std::memory_order_acquire)) {  // (G)
      }
      return std::max(gate, lowest);
    } else {
      gate_ = std::max(gate_, lowest);
      return gate_;
    }
  }

  std::uint64_t current_gate() const noexcept {
    if constexpr (multi_producer) {
      return gate_.load(std::memory_order_acquire);  // (G')
    } else {
      return gate_;
    }
  }

  // Whether writing `sequence` keeps every joined reader's unread elements, refreshing the gate
  // when the cached one is too low.
  bool has_room(std::uint64_t sequence) noexcept {
    if (sequence < current_gate() + capacity()) return true;
    return sequence < refresh_gate(sequence) + capacity();
  }

  // Claims the next sequence without waiting. Returns false when the ring is full or closed.
  bool try_claim(std::uint64_t& sequence) noexcept {
    if constexpr (multi_producer) {
      std::uint64_t head = head_.load(std::memory_order_relaxed);
      for (;;) {
        if (closed(head) || !has_room(head)) return false;
        const std::uint64_t previous_lap = head >= capacity() ? head - capacity() + 1 : 0;
        const std::uint64_t marker = marker_at(head).load(std::memory_order_acquire);  // (M')
        if (marker < previous_lap) {
          return false;  // the producer of head - capacity is still writing its element
        }
        if (marker > previous_lap) {
          head = head_.load(std::memory_order_relaxed);  // another producer took this sequence
          continue;
        }
        // Relaxed: element accesses are ordered by the markers and the gate, not by head_.
        if (head_.compare_exchange_weak(head, head + 1, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
          sequence = head;
          return true;
        }
      }
    } else {
      // NOTE: close() from another thread is not ordered with this check. A publish that passed
      // it completes after close() returns, and a reader that found the ring drained before then
      // reads the element on a later call. Closing from the writer thread rules this out.
      if (closed_.load(std::memory_order_relaxed)) return false;
      // Relaxed: only the writer stores head_.
      const std::uint64_t head = head_.load(std::memory_order_relaxed);
      if (!has_room(head)) return false;
      sequence = head;
      return true;
    }
  }

  // Whether a claim could succeed now, or the ring is closed: the recheck of a sleeping producer.
  bool claim_ready_or_closed() noexcept {
    const std::uint64_t head = head_.load(std::memory_order_seq_cst);
    if (closed(head)) return true;
    if (!has_room(head_position(head))) return false;
    if constexpr (multi_producer) {
      const std::uint64_t previous_lap = head >= capacity() ? head - capacity() + 1 : 0;
      return marker_at(head).load(std::memory_order_seq_cst) >= previous_lap;
    } else {
      return true;
    }
  }

  // Replaces the old element of the claimed sequence's slot with one built from args, which must
  // not throw for producers<multi>, and publishes it. With producers<single> and a throwing
  // constructor, the element is built before the old one is destroyed, so an exception leaves
  // the ring unchanged: a single writer's claim changes nothing that others see.
  template <class... Args>
  void fill(std::uint64_t sequence, Args&&... args) {
    RINGMQ_PREEMPTION_POINT();
    slot& target = slot_at(sequence);
    if constexpr (std::is_nothrow_constructible_v<T, Args...>) {
      if (sequence >= capacity()) std::destroy_at(target.element.get());
      ::new (target.element.raw()) T(std::forward<Args>(args)...);
    } else {
      static_assert(!multi_producer);
      T element(std::forward<Args>(args)...);
      if (sequence >= capacity()) std::destroy_at(target.element.get());
      ::new (target.element.raw()) T(std::move(element));
    }

    RINGMQ_PREEMPTION_POINT();
    if constexpr (multi_producer) {
      marker_at(sequence).store(sequence + 1, std::memory_order_release);  // (P)
    } else {
      head_.store(sequence + 1, std::memory_order_release);  // (P)
    }
    if constexpr (can_sleep) {
      not_empty_.wake();
      // A producer may wait for this slot's marker (see claim_ready_or_closed).
      if constexpr (multi_producer) not_full_.wake();
    }
  }

  // Claims a sequence, waiting while the ring is full. Returns false on close or at the deadline.
  bool claim_until(std::uint64_t& sequence, detail::steady_time deadline) {
    return wait_until(
        not_full_, [&] { return try_claim(sequence); }, [&] { return is_closed(); },
        [&] { return claim_ready_or_closed(); }, deadline);
  }

  template <class... Args>
  bool emplace_until(detail::steady_time deadline, Args&&... args) {
    if constexpr (std::is_nothrow_constructible_v<T, Args...> || !multi_producer) {
      std::uint64_t sequence = 0;
      if (!claim_until(sequence, deadline)) return false;
      fill(sequence, std::forward<Args>(args)...);
      return true;
    } else {
      T element(std::forward<Args>(args)...);
      std::uint64_t sequence = 0;
      if (!claim_until(sequence, deadline)) return false;
      fill(sequence, std::move(element));
      return true;
    }
  }

  // ---- reader side ----------------------------------------------------------------------------

  // Extends `available`, the end of the elements known to be published from `cursor` on, by at
  // most `max` past cursor, and returns it.
  std::uint64_t published_end(std::uint64_t cursor, std::uint64_t available,
                              std::size_t max) noexcept {
    if (available - cursor >= max) return available;
    if constexpr (multi_producer) {
      // Each marker is checked once: `available` only grows. A slot whose marker is not
      // sequence + 1 contains an older element or one still being written.
      while (available - cursor < max &&
             marker_at(available).load(std::memory_order_acquire) == available + 1) {  // (P')
        ++available;
      }
      return available;
    } else {
      return head_.load(std::memory_order_acquire);  // (P')
    }
  }

  // Whether an element at `cursor` is published, or the ring is closed and nothing is left for a
  // reader at `cursor`: the recheck of a sleeping reader.
  bool read_ready_or_drained(std::uint64_t cursor) noexcept {
    if constexpr (multi_producer) {
      if (marker_at(cursor).load(std::memory_order_seq_cst) == cursor + 1) return true;
    } else {
      if (head_.load(std::memory_order_seq_cst) != cursor) return true;
    }
    return drained(cursor);
  }

  // Whether the ring is closed and a reader at `cursor` has read every element published.
  bool drained(std::uint64_t cursor) const noexcept {
    if constexpr (multi_producer) {
      const std::uint64_t head = head_.load(std::memory_order_seq_cst);
      return closed(head) && head_position(head) == cursor;
    } else {
      // The flag first: a writer that closes after its last publish makes that publish visible.
      if (!closed_.load(std::memory_order_seq_cst)) return false;
      return head_.load(std::memory_order_seq_cst) == cursor;
    }
  }

  std::uint64_t lag_of(std::uint64_t cursor) const noexcept {
    return head_position(head_.load(std::memory_order_acquire)) - cursor;
  }

  // ---- waiting --------------------------------------------------------------------------------

  // Calls attempt() until it succeeds, gave_up() returns true, or the deadline passes, waiting
  // between attempts as the wait policy chooses. A sleeper sleeps on `channel` unless ready()
  // returns true. Returns whether an attempt succeeded.
  template <class Attempt, class GaveUp, class Ready>
  bool wait_until([[maybe_unused]] detail::wake_channel& channel, Attempt&& attempt,
                  GaveUp&& gave_up, [[maybe_unused]] Ready&& ready, detail::steady_time deadline) {
    const bool timed = deadline != detail::steady_time::max();
    for (std::uint32_t round = 0;; round += (round != UINT32_MAX) ? 1 : 0) {
      if (attempt()) return true;
      if (gave_up()) return false;
      if (timed && std::chrono::steady_clock::now() >= deadline) return false;

      switch (wait_type::step(round)) {
        case wait_step::spin:
          detail::cpu_relax();
          break;
        case wait_step::yield:
          std::this_thread::yield();
          break;
        case wait_step::sleep:
          if constexpr (can_sleep) {
            channel.sleep_unless(ready, deadline);
          } else {
            std::this_thread::yield();
          }
          break;
      }
    }
  }

  // ---- fields ---------------------------------------------------------------------------------

  // Producer line: head_ is stored on every publish, and the gate is read on every publish.
  alignas(detail::cache_line) std::atomic<std::uint64_t> head_{0};
  std::conditional_t<multi_producer, std::atomic<std::uint64_t>, std::uint64_t> gate_{0};
  // Written by joins, leaves and close(), and read by refreshes and by reads of a drained ring.
  alignas(detail::cache_line) std::atomic<bool> closed_{false};  // producers<single> only
  std::atomic<std::size_t> joined_{0};
  std::atomic<std::size_t> high_water_{0};
  // Read-only after construction.
  alignas(std::max(detail::cache_line, alignof(slots_type))) slots_type slots_;
  [[no_unique_address]] markers_type markers_;
  std::uint64_t mask_;
  std::size_t max_readers_;
  std::unique_ptr<reader_entry[]> readers_;
  // Producers sleep on not_full_ and readers on not_empty_, each channel on its own line. They
  // are unused unless the wait policy sleeps.
  alignas(detail::cache_line) detail::wake_channel not_full_;
  alignas(detail::cache_line) detail::wake_channel not_empty_;
};

// A joined reader: a move-only handle whose cursor gates the ring's producers until it leaves.
// One thread at a time may call it, and different readers may run on different threads. It must
// be destroyed, or leave(), before the ring is destroyed.
//
// Every read call hands elements to a visitor as const T&, without a copy. When the visitor
// throws, the elements it returned from are read, the one it threw on is the next one again, and
// the exception propagates. A visitor may call try_ calls of the same ring, but a waiting
// publish from a visitor can wait for its own reader and never return.
template <class T, class... Options>
class broadcast_ring<T, Options...>::reader {
 public:
  reader(reader&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)),
        entry_(other.entry_),
        cursor_(other.cursor_),
        available_(other.available_) {}

  reader& operator=(reader&& other) noexcept {
    if (this != &other) {
      leave();
      ring_ = std::exchange(other.ring_, nullptr);
      entry_ = other.entry_;
      cursor_ = other.cursor_;
      available_ = other.available_;
    }
    return *this;
  }

  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  ~reader() { leave(); }

  // Leaves the ring: this reader no longer gates producers and reads nothing. Idempotent.
  void leave() noexcept {
    if (ring_ == nullptr) return;
    ring_->vacate(*entry_);
    ring_ = nullptr;
  }

  // False after leave() and for a moved-from reader.
  bool joined() const noexcept { return ring_ != nullptr; }

  // The sequence number of the next element this reader reads: the count of elements published
  // (with producers<multi>, claimed) before it. At join, the join's starting point.
  std::uint64_t position() const noexcept { return cursor_; }

  // Elements published and not yet read by this reader, or 0 once it has left. With
  // producers<multi> it also counts claimed elements still being written.
  std::size_t lag() const noexcept {
    return ring_ == nullptr ? 0 : static_cast<std::size_t>(ring_->lag_of(cursor_));
  }

  // Calls visit(const T&) on the next element and advances past it. Returns false, without
  // calling visit, when no element is ready.
  template <class Visit>
  [[nodiscard]] bool try_read(Visit&& visit) requires std::invocable<Visit&, const T&> {
    return visit_ready(visit, 1) == 1;
  }

  // Returns a copy of the next element and advances past it, or an empty optional when no element
  // is ready. An exception from the copy leaves the element unread.
  [[nodiscard]] std::optional<T> try_read() requires std::copy_constructible<T> {
    std::optional<T> copy;
    static_cast<void>(try_read([&copy](const T& element) { copy.emplace(element); }));
    return copy;
  }

  // Calls visit on each of up to `max` ready elements in order, then advances the cursor once
  // for all of them. Returns how many it visited.
  template <class Visit>
  std::size_t try_read_batch(Visit&& visit,
                             std::size_t max) requires std::invocable<Visit&, const T&> {
    return visit_ready(visit, max);
  }

  // Waiting calls: they wait as the wait policy chooses while no element is ready, and return
  // false (0 for the batch form) on timeout or once the ring is closed and this reader has read
  // every element published. A zero or negative timeout makes one attempt.

  template <class Visit>
  bool read(Visit&& visit) requires std::invocable<Visit&, const T&> {
    return read_until(visit, 1, detail::steady_time::max()) == 1;
  }

  template <class Visit, class Rep, class Period>
  bool read_for(Visit&& visit, std::chrono::duration<Rep, Period> timeout) requires
      std::invocable<Visit&, const T&> {
    return read_until(visit, 1, detail::deadline_after(timeout)) == 1;
  }

  // Waits until at least one element is ready, then visits up to `max` as try_read_batch does.
  template <class Visit, class Rep, class Period>
  std::size_t read_batch_for(
      Visit&& visit, std::size_t max,
      std::chrono::duration<Rep, Period> timeout) requires std::invocable<Visit&, const T&> {
    return read_until(visit, max, detail::deadline_after(timeout));
  }

 private:
  friend class broadcast_ring;

  reader(broadcast_ring& ring, reader_entry& entry, std::uint64_t start) noexcept
      : ring_(&ring), entry_(&entry), cursor_(start), available_(start) {}

  // Stores the owner's cursor at `position` when a visit loop ends, by return or by exception.
  struct cursor_commit {
    reader& owner;
    std::uint64_t position;

    ~cursor_commit() {
      if (position == owner.cursor_) return;
      owner.cursor_ = position;
      RINGMQ_PREEMPTION_POINT();
      owner.entry_->cursor.store(position, std::memory_order_release);  // (C)
      owner.ring_->wake_producers();
    }
  };

  template <class Visit>
  std::size_t visit_ready(Visit& visit, std::size_t max) {
    if (ring_ == nullptr || max == 0) return 0;
    available_ = ring_->published_end(cursor_, available_, max);
    const std::uint64_t end = cursor_ + std::min<std::uint64_t>(available_ - cursor_, max);
    if (end == cursor_) return 0;

    const std::uint64_t start = cursor_;
    cursor_commit commit{*this, start};
    for (; commit.position < end; ++commit.position) {
      visit(std::as_const(*ring_->slot_at(commit.position).element.get()));
    }
    return static_cast<std::size_t>(end - start);
  }

  template <class Visit>
  std::size_t read_until(Visit& visit, std::size_t max, detail::steady_time deadline) {
    if (ring_ == nullptr || max == 0) return 0;
    std::size_t count = 0;
    ring_->wait_until(
        ring_->not_empty_, [&] { return (count = visit_ready(visit, max)) != 0; },
        [&] { return ring_->drained(cursor_); },
        [&] { return ring_->read_ready_or_drained(cursor_); }, deadline);
    return count;
  }

  broadcast_ring* ring_;
  reader_entry* entry_;
  std::uint64_t cursor_;     // mirrors entry_->cursor, which only this reader stores
  std::uint64_t available_;  // elements below it are known to be published
};

}  // namespace ringmq
