// ringmq internals: the reply cells of a request_reply channel. Each request that is out owns
// one cell, where a responder writes the request's outcome and the requester waits for it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>

#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/reply_options.hpp"
#include "ringmq/detail/slot_storage.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"
#include "ringmq/ring.hpp"

namespace ringmq::detail {

// The phase of a reply cell. A cell is in exactly one phase at a time.
enum class reply_phase : std::uint64_t {
  free = 0,        // no request; the index is in the free list, or on its way there
  pending = 1,     // a request is out and has no outcome yet
  writing = 2,     // one responder has won the cell and is writing the outcome
  replied = 3,     // `value` contains the reply
  failed = 4,      // `error` contains the responder's exception
  unanswered = 5,  // a responder destroyed the request without replying or failing it
};

constexpr bool is_outcome(reply_phase phase) noexcept {
  return phase == reply_phase::replied || phase == reply_phase::failed ||
         phase == reply_phase::unanswered;
}

// The state word of a cell: bits 0-7 the phase, bits 8-63 the generation. The generation grows by
// one each time the cell is freed. So an answer (a reply, a failure or the note that a request
// went unanswered) that carries an older generation finds the word changed, and is discarded. At
// one free every nanosecond, 56 bits last two years per cell.
struct reply_state {
  static constexpr std::uint64_t phase_mask = 0xFF;

  static constexpr std::uint64_t make(reply_phase phase, std::uint64_t generation) noexcept {
    return (generation << 8U) | static_cast<std::uint64_t>(phase);
  }
  static constexpr reply_phase phase(std::uint64_t state) noexcept {
    return static_cast<reply_phase>(state & phase_mask);
  }
  static constexpr std::uint64_t generation(std::uint64_t state) noexcept { return state >> 8U; }
};

// A counter with one writer at a time: the thread that owns the cell for the event it counts.
// Ownership passes with release/acquire, so load-then-store is exact, and stats() may read the
// counter at any time.
struct cell_counter {
  std::atomic<std::uint64_t> value{0};

  void bump() noexcept {
    value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::uint64_t read() const noexcept { return value.load(std::memory_order_relaxed); }
};

// Stands in for the wake channel of a wait policy that never sleeps.
struct no_wake_channel {
  void wake() noexcept {}
};

// One reply cell. A round trip touches the first cache line on both sides: the state, the
// requester's count of sends, and a reply of up to 32 bytes. The other counters are written by
// the responder that won the cell, or on the rare paths that give a request up, so they sit on
// a line of their own.
template <class Reply, bool CanSleep>
struct alignas(cache_line) reply_cell {
  std::atomic<std::uint64_t> state{reply_state::make(reply_phase::free, 0)};
  [[no_unique_address]] std::conditional_t<CanSleep, wake_channel, no_wake_channel> waiters;
  cell_counter sent;             // written by the requester that owns the cell
  std::exception_ptr error;      // set when the phase is failed
  element_storage<Reply> value;  // a live Reply when the phase is replied

  // Written by the responder that won the cell.
  alignas(cache_line) cell_counter replied;
  cell_counter failed;
  cell_counter unanswered;
  // Written by the requester that gives the request up.
  cell_counter timed_out;
  cell_counter abandoned;
};

// The table of reply cells of one channel, with the free list of cell indices.
//
// Protocol. Shared fields: each cell's state word (phase and generation), its value and error,
// the free list (a ring of indices), closed_ and late_replies_. A requester owns a cell from the
// pop of its index from the free list until it pushes the index back; a responder owns it from
// its winning CAS (A) until its release store (R).
//   take:     (T1) pop the index from the free list, acquire through the ring, which shows the
//             previous owner's writes  (T2) store (g, pending) relaxed. The request queue's push
//             (release) and the responder's pop (acquire) order T2 before the responder's (A).
//   answer:   (A) CAS (g, pending) -> (g, writing), relaxed: the request queue already ordered
//             every earlier write to the cell before it, and the CAS only has to pick one winner
//             between the answer and the requester's abandon (B)  (W) construct the value or
//             store the error  (R) store (g, outcome), release  (K) wake the cell's waiter.
//             A failed (A) means the requester gave the request up: the answer is late.
//   collect:  (R') load the state, acquire, pairs with (R): the value is visible  (C) move the
//             value out and destroy it, store (g + 1, free), relaxed, and push the index to the
//             free list, release through the ring, which orders C before the next take.
//   abandon:  (B) CAS (g, pending) -> (g + 1, free), relaxed, then push the index as in (C).
//             When (B) fails, an answer won at (A), and the requester waits for (R).
// Invariants: an index is in the free list only in phase free; the value is live exactly in
// phase replied; the generation grows at each free, so a token names one request for good.
// Linearization points: an answer at (A); an abandon at (B); a collect at (R').
// Progress: take, answer, collect and abandon are lock-free. A requester whose abandon lost
// waits for the winning responder to reach (R), a few instructions after (A).
template <class Reply, class Wait>
class reply_cells {
  static constexpr bool can_sleep = Wait::can_sleep;
  using cell_type = reply_cell<Reply, can_sleep>;
  // The free list has room for every index, so a push into it waits only while another thread
  // finishes with the same ring slot. Yielding lets that thread run on a shared core.
  using free_list = ring<std::uint32_t, wait<yield>>;

 public:
  // The ways a wait for an outcome ends.
  enum class wait_outcome : std::uint8_t { answered, closed, timed_out };

  // Counts summed over every cell, and the cells in each phase. See request_reply_stats.
  struct totals {
    std::size_t awaiting = 0;
    std::size_t outstanding = 0;
    std::uint64_t sent = 0;
    std::uint64_t replied = 0;
    std::uint64_t failed = 0;
    std::uint64_t unanswered = 0;
    std::uint64_t timed_out = 0;
    std::uint64_t abandoned = 0;
  };

  explicit reply_cells(std::size_t count)
      : cells_(std::make_unique<cell_type[]>(count)), count_(count), free_(count) {
    for (std::uint32_t index = 0; index < count; ++index) {
      const bool pushed = free_.try_push(std::uint32_t{index});
      (void)pushed;  // the free list has room for every index
    }
  }

  reply_cells(const reply_cells&) = delete;
  reply_cells& operator=(const reply_cells&) = delete;

  // Destroys the replies that no requester collected. Every reply handle must be gone by now,
  // and a handle frees its cell when it goes, so this finds none unless one outlived its channel.
  ~reply_cells() {
    for (std::size_t index = 0; index < count_; ++index) {
      cell_type& cell = cells_[index];
      if (reply_state::phase(cell.state.load(std::memory_order_acquire)) == reply_phase::replied) {
        std::destroy_at(cell.value.get());
      }
    }
  }

  std::size_t size() const noexcept { return count_; }

  // ---- requester side ------------------------------------------------------------------------

  // (T1), (T2): takes a free cell and marks it pending, or returns nothing when all are in use.
  std::optional<reply_token> try_take() noexcept {
    std::uint32_t index = 0;
    if (!free_.try_pop(index)) return std::nullopt;  // (T1)
    RINGMQ_PREEMPTION_POINT();
    cell_type& cell = cells_[index];
    // Relaxed: the cell is ours, and (T1) ordered the previous owner's store of this word.
    const std::uint64_t generation =
        reply_state::generation(cell.state.load(std::memory_order_relaxed));
    cell.state.store(reply_state::make(reply_phase::pending, generation),
                     std::memory_order_relaxed);  // (T2)
    return reply_token{generation, index};
  }

  // Counts a request as sent, after the request queue accepted it.
  void confirm_sent(reply_token token) noexcept { cells_[token.cell].sent.bump(); }

  // Frees a cell whose request the queue did not accept. No responder has seen its token, so
  // the generation stays.
  void give_back_unsent(reply_token token) noexcept {
    cells_[token.cell].state.store(reply_state::make(reply_phase::free, token.generation),
                                   std::memory_order_relaxed);
    push_free(token.cell);
  }

  // (R'): the phase of the cell of a request that a handle still holds. Only that handle frees
  // the cell, so the generation is the token's.
  reply_phase phase(reply_token token) const noexcept {
    return reply_state::phase(cells_[token.cell].state.load(std::memory_order_acquire));
  }

  // (C): hands the outcome to take(phase, Reply* value, std::exception_ptr& error), then destroys
  // the value and frees the cell. take must not throw. It may move from *value, which is null
  // unless the phase is replied, and from error. Call only after phase(token) returned an outcome.
  template <class Take>
  void collect(reply_token token, Take&& take) noexcept {
    cell_type& cell = cells_[token.cell];
    // Relaxed: the caller's phase(token) was the acquire load (R').
    const reply_phase outcome = reply_state::phase(cell.state.load(std::memory_order_relaxed));
    Reply* value = outcome == reply_phase::replied ? cell.value.get() : nullptr;
    take(outcome, value, cell.error);
    RINGMQ_PREEMPTION_POINT();
    if (value != nullptr) std::destroy_at(value);
    cell.error = nullptr;
    cell.state.store(reply_state::make(reply_phase::free, token.generation + 1),
                     std::memory_order_relaxed);  // ordered for the next owner by push_free
    push_free(token.cell);
  }

  // The reason a requester gives a request up.
  enum class abandon_reason : std::uint8_t { timed_out, dropped };

  // (B): gives the request up unless an answer has won its cell, and returns whether it did.
  bool try_abandon(reply_token token, abandon_reason reason) noexcept {
    cell_type& cell = cells_[token.cell];
    std::uint64_t expected = reply_state::make(reply_phase::pending, token.generation);
    if (!cell.state.compare_exchange_strong(
            expected, reply_state::make(reply_phase::free, token.generation + 1),
            std::memory_order_relaxed)) {
      return false;
    }
    // No responder can win the cell any more, and the index is not yet in the free list, so
    // this thread is its only owner.
    RINGMQ_PREEMPTION_POINT();
    (reason == abandon_reason::timed_out ? cell.timed_out : cell.abandoned).bump();
    push_free(token.cell);
    return true;
  }

  // Waits until the request of `token` has an outcome; until close() when stop_at_close; or
  // until the deadline (on steady_clock), when it gives the request up. An answer that won the
  // cell before the deadline or close is waited for, since it takes a few instructions more.
  wait_outcome wait_until(reply_token token, steady_time deadline, bool stop_at_close) noexcept {
    cell_type& cell = cells_[token.cell];
    const bool timed = deadline != steady_time::max();
    for (std::uint32_t round = 0;; round += (round != UINT32_MAX) ? 1 : 0) {
      const std::uint64_t seen = cell.state.load(std::memory_order_acquire);  // (R')
      const reply_phase current = reply_state::phase(seen);
      if (is_outcome(current)) return wait_outcome::answered;

      const wait_step step = Wait::step(round);
      if (current == reply_phase::pending) {
        if (stop_at_close && is_closed()) return wait_outcome::closed;
        // While spinning, read the clock only every clock_rounds rounds: a read costs more than
        // a spin round, and the timeout may pass that much late.
        const bool read_clock = step != wait_step::spin || round % clock_rounds == 0;
        if (timed && read_clock && std::chrono::steady_clock::now() >= deadline) {
          if (try_abandon(token, abandon_reason::timed_out)) return wait_outcome::timed_out;
          continue;  // an answer won the cell after the load above
        }
      }

      switch (step) {
        case wait_step::spin:
          cpu_relax();
          break;
        case wait_step::yield:
          std::this_thread::yield();
          break;
        case wait_step::sleep:
          if constexpr (can_sleep) {
            // A cell that is being written has won its race with the deadline, so its waiter
            // sleeps until the answer, however late.
            const steady_time until =
                current == reply_phase::pending ? deadline : steady_time::max();
            cell.waiters.sleep_unless(
                [&] {
                  return cell.state.load(std::memory_order_seq_cst) != seen ||
                         (stop_at_close && is_closed());
                },
                until);
          } else {
            std::this_thread::yield();
          }
          break;
      }
    }
  }

  // ---- responder side ------------------------------------------------------------------------

  // (A), (W), (R), (K): writes an outcome to the cell of `token` unless the requester has given
  // the request up. write(void* value, std::exception_ptr& error) must not throw. Returns whether
  // the outcome reached the cell; a late reply or failure is counted when count_late is set.
  template <class Write>
  bool answer(reply_token token, reply_phase outcome, bool count_late, Write&& write) noexcept {
    cell_type& cell = cells_[token.cell];
    std::uint64_t expected = reply_state::make(reply_phase::pending, token.generation);
    if (!cell.state.compare_exchange_strong(
            expected, reply_state::make(reply_phase::writing, token.generation),
            std::memory_order_relaxed)) {  // (A)
      // Relaxed: a tally that nothing else is ordered by.
      if (count_late) late_replies_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    RINGMQ_PREEMPTION_POINT();
    write(cell.value.raw(), cell.error);  // (W)
    RINGMQ_PREEMPTION_POINT();
    if (outcome == reply_phase::replied) {
      cell.replied.bump();
    } else if (outcome == reply_phase::failed) {
      cell.failed.bump();
    } else {
      cell.unanswered.bump();
    }
    cell.state.store(reply_state::make(outcome, token.generation),
                     std::memory_order_release);  // (R)
    RINGMQ_PREEMPTION_POINT();
    cell.waiters.wake();                          // (K)
    return true;
  }

  // Counts a reply that a responder did not even write, because awaits_answer() was false.
  void count_late_reply() noexcept {
    late_replies_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a tally
  }

  // Whether the requester of `token` still waits for an outcome, so that an answer would reach it.
  bool awaits_answer(reply_token token) const noexcept {
    // Acquire: a reader that finds the request given up reads the cell as the requester left it.
    return cells_[token.cell].state.load(std::memory_order_acquire) ==
           reply_state::make(reply_phase::pending, token.generation);
  }

  // ---- room for senders ----------------------------------------------------------------------

  bool has_free_cell() const noexcept { return !free_.empty(); }

  // Wakes senders that sleep until a cell is free or the request queue has room. Call after the
  // release that made the room: a push to the free list or a pop from the request queue.
  void wake_senders() noexcept {
    if constexpr (can_sleep) room_waiters_.wake();
  }

  // Sleeps until woken, until ready() holds, or until the deadline.
  template <class Ready>
  void sleep_for_room(Ready&& ready, steady_time deadline) noexcept {
    if constexpr (can_sleep) {
      room_waiters_.sleep_unless(std::forward<Ready>(ready), deadline);
    } else {
      std::this_thread::yield();
    }
  }

  // ---- close and statistics ------------------------------------------------------------------

  // Marks the channel closed and wakes every sleeping requester and sender. Idempotent.
  void close() noexcept {
    closed_.store(true, std::memory_order_seq_cst);
    if constexpr (can_sleep) {
      for (std::size_t index = 0; index < count_; ++index) cells_[index].waiters.wake();
      room_waiters_.wake();
    }
  }

  // Seq_cst: the recheck of a sleeping waiter reads it after its fence, see wake_channel.
  bool is_closed() const noexcept { return closed_.load(std::memory_order_seq_cst); }

  std::uint64_t late_replies() const noexcept {
    return late_replies_.load(std::memory_order_relaxed);
  }

  // Sums the counters and counts the phases of every cell: O(size()).
  totals count() const noexcept {
    totals sum;
    for (std::size_t index = 0; index < count_; ++index) {
      const cell_type& cell = cells_[index];
      // Relaxed: a snapshot, exact only when no call is in progress.
      const reply_phase current = reply_state::phase(cell.state.load(std::memory_order_relaxed));
      if (current != reply_phase::free) ++sum.outstanding;
      if (current == reply_phase::pending || current == reply_phase::writing) ++sum.awaiting;
      sum.sent += cell.sent.read();
      sum.replied += cell.replied.read();
      sum.failed += cell.failed.read();
      sum.unanswered += cell.unanswered.read();
      sum.timed_out += cell.timed_out.read();
      sum.abandoned += cell.abandoned.read();
    }
    return sum;
  }

 private:
  // How many rounds of a spinning wait pass between two reads of the clock.
  static constexpr std::uint32_t clock_rounds = 64;

  void push_free(std::uint32_t index) noexcept {
    const bool pushed = free_.push(std::uint32_t{index});  // release: orders the cell's reset
    (void)pushed;  // the free list has room for every index and is never closed
    wake_senders();
  }

  std::unique_ptr<cell_type[]> cells_;
  std::size_t count_;
  free_list free_;
  alignas(cache_line) std::atomic<bool> closed_{false};
  alignas(cache_line) std::atomic<std::uint64_t> late_replies_{0};
  [[no_unique_address]] std::conditional_t<can_sleep, wake_channel, no_wake_channel> room_waiters_;
};

}  // namespace ringmq::detail
