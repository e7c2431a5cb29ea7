// ringmq::work_queue: competing consumers with visibility-timeout leases, retries and a
// dead-letter queue, in the model of SQS and Service Bus, made exact for one process.
//
//   ringmq::work_queue<job> queue{{.capacity = 4096, .visibility_timeout = 30s,
//                                  .max_receive_count = 5}};
//   queue.try_send(job{...});
//   if (auto delivery = queue.receive_for(100ms)) {
//     if (run(delivery->body())) queue.ack(delivery->receipt());
//     else queue.nack(delivery->receipt());     // visible again after the backoff delay
//   }
//
// A message is sent, then handed out by a receive as a delivery with a receipt. While its lease
// runs, no other receiver sees it. ack deletes it; nack, release, reject and lease expiry end the
// lease in the ways docs/work_queue.md describes, and a message that fails max_receive_count
// times, is rejected, or outlives the retention becomes a dead letter. A receipt works only for
// the delivery it came with, only while its lease runs, and only once.
//
// Protocol. Messages live in `capacity` slots (detail/message_slot.hpp). Three rings of slot
// indices move them: free_ (empty slots), ready_ (visible messages, oldest first) and notices_
// (slots whose deadline the reaper must look at). Each slot has a state word: kind, delivery
// number and a deadline version; a thread owns a slot when it popped its index from free_ or
// ready_, or when its CAS moved the state from leased to settling.
//   send:    (S1) pop free_  (S2) write body, id, counts  (S3) state = visible, push ready_
//            with release, or state = delayed and post a notice.
//   receive: (R1) pop ready_ with acquire, which makes S2 visible  (R2) copy the body
//            (R3) due = now + visibility timeout, state = leased with the next delivery
//            number, release  (R4) post a notice.
//   settle:  (A1) load state with acquire: leased, the receipt's delivery number, version even
//            (A2) due > now  (A3) CAS state leased -> settling, acq_rel. Exactly one CAS wins
//            among ack, nack, release, reject and the reaper's expiry of the same lease.
//   extend:  CAS the version odd, write due, store the version even with release. Settles and
//            the reaper read due between A1 and A3, so a deadline change makes their CAS fail.
//   reaper:  one thread at a time, chosen with try_lock, drains notices_ into a heap keyed by
//            deadline and handles the entries that are due: a leased slot whose due passed is
//            CASed to settling and made visible again or dead-lettered; a delayed slot is made
//            visible. Entries not yet due are not touched, so its cost does not grow with them.
//   notice:  the poster writes state and due, then sets the slot's noticed flag with an acq_rel
//            exchange and pushes the index only when the flag was clear. The reaper pops an
//            index, clears the flag with an acq_rel exchange and then reads state and due, so it
//            sees the latest deadline either through the flag or through a later notice.
//            A poster that pushed then lowers the hint after a seq_cst fence (N1); the reaper
//            resets the hint and takes a seq_cst fence (N2) before it drains. So either the drain
//            sees the push or the poster sees the reset and lowers the hint again: no deadline
//            is left in the list without a hint at or before it.
// Linearization points: send at S3's push or store; receive at R3's store; a settle at A3;
// extend at its CAS. Progress: send, receive and settles take no lock; like the ring, a call can
// wait for a thread that was preempted in the middle of a ring operation on the same slot.
//
// Reaping runs inside calls that already run: a receive whose clock reading is at or past the
// hint of the earliest deadline (the minimum of the heap's top and of the deadlines posted since
// the last drain), and stats(). A receive before that hint pays two loads for it.
//
// Requirements on T: copy-constructible, because a message stays in the queue until it is
// acknowledged and a receive hands out a copy; nothrow move-constructible and destructible.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "ringmq/backoff.hpp"
#include "ringmq/clock.hpp"
#include "ringmq/dead_letter_queue.hpp"
#include "ringmq/detail/message_slot.hpp"
#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/queue_options.hpp"
#include "ringmq/detail/time.hpp"
#include "ringmq/detail/timer_heap.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/ring.hpp"
#include "ringmq/work_queue_types.hpp"

namespace ringmq {

template <class T, class... Options>
class work_queue {
  static_assert(std::is_object_v<T> && !std::is_const_v<T> && std::copy_constructible<T> &&
                    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "ringmq::work_queue<T>: T must be copy-constructible, because a message stays "
                "queued until it is acknowledged and a receive hands out a copy, and its move "
                "constructor and destructor must be noexcept; for a move-only payload, send a "
                "std::shared_ptr to it");

  using options = detail::queue_options<Options...>;
  static_assert(options::all_known);

  using slot_type = detail::message_slot<T>;
  // Pushes into these rings wait only while another thread finishes with the same ring slot;
  // yielding lets that thread run when both share one core.
  using index_ring = ring<std::uint32_t, wait<yield>>;
  using state = detail::slot_state;
  using kind = detail::slot_kind;
  using nanos = detail::nanos;

 public:
  using value_type = T;
  using clock_type = typename options::clock_type;
  using backoff_type = typename options::backoff_type;
  using time_point = typename clock_type::time_point;
  using delivery_type = delivery<T, clock_type>;
  using dead_letter_type = dead_letter<T, clock_type>;
  using dead_letter_queue_type = dead_letter_queue<T, clock_type, typename options::overflow_type>;

  // Creates an empty queue that reads a clock with a static now(), such as steady_clock. Throws
  // std::invalid_argument (std::length_error for a huge capacity) for a config that cannot work.
  // A clock with state, such as manual_clock, must be passed to the other constructor.
  explicit work_queue(const queue_config& config = {}) requires requires {
    { clock_type::now() } -> std::same_as<time_point>;
  } : work_queue(config, default_clock()) {
  }

  // Creates an empty queue that reads time from `source`, which must outlive the queue.
  work_queue(const queue_config& config, clock_type& source)
      : config_(checked(config)),
        clock_(&source),
        backoff_(config.backoff),
        tag_(detail::next_queue_tag()),
        slots_(std::make_unique<slot_type[]>(config.capacity)),
        free_(config.capacity),
        ready_(config.capacity),
        notices_(config.capacity),
        timers_(static_cast<std::uint32_t>(config.capacity)),
        dead_letters_(config.dead_letter_capacity) {
    for (std::uint32_t index = 0; index < config.capacity; ++index) {
      const bool pushed = free_.try_push(std::uint32_t{index});
      (void)pushed;  // the free list has room for every index
    }
  }

  work_queue(const work_queue&) = delete;
  work_queue& operator=(const work_queue&) = delete;

  // Destroys every message still held: visible, delayed or leased.
  ~work_queue() {
    for (std::size_t index = 0; index < config_.capacity; ++index) {
      slot_type& slot = slots_[index];
      if (state::kind(slot.state.load(std::memory_order_acquire)) != kind::free) {
        std::destroy_at(slot.body.get());
      }
    }
  }

  // ---- send ----------------------------------------------------------------------------------

  // Adds a message unless the queue is full or closed. On failure `body` is left unchanged.
  send_result try_send(T&& body, send_options options = {}) {
    return try_send_with(options, std::move(body));
  }
  send_result try_send(const T& body, send_options options = {}) {
    return try_send_with(options, body);
  }

  // Adds a message, waiting while the queue is full. Returns closed once close() was called.
  send_result send(T&& body, send_options options = {}) {
    return send_until(detail::steady_time::max(), options, std::move(body));
  }
  send_result send(const T& body, send_options options = {}) {
    return send_until(detail::steady_time::max(), options, body);
  }

  // As send, waiting at most `timeout` (on steady_clock) for room; then returns timeout.
  template <class Rep, class Period>
  send_result send_for(T&& body, std::chrono::duration<Rep, Period> timeout,
                       send_options options = {}) {
    // Try once before reading the clock for the deadline: a send with room needs no deadline.
    send_result first = try_send_with(options, std::move(body));  // moves only on success
    if (first.status != send_status::full) return first;
    return send_until(detail::deadline_after(timeout), options, std::move(body));
  }
  template <class Rep, class Period>
  send_result send_for(const T& body, std::chrono::duration<Rep, Period> timeout,
                       send_options options = {}) {
    send_result first = try_send_with(options, body);
    if (first.status != send_status::full) return first;
    return send_until(detail::deadline_after(timeout), options, body);
  }

  // Sends *first, *(first + 1), ... until the range ends or a send fails; returns how many were
  // sent. The elements are forwarded as the iterator yields them: wrap the range in
  // std::make_move_iterator to move them in. The clock is read once, so every message of the
  // batch has the same sent_at.
  template <std::input_iterator It, std::sentinel_for<It> End>
  std::size_t try_send_batch(It first, End last, send_options options = {}) {
    const nanos at = now_ns();
    std::size_t count = 0;
    for (; first != last; ++first, ++count) {
      if (!try_send_at(at, options, *first)) break;
    }
    return count;
  }

  // ---- receive -------------------------------------------------------------------------------

  // Hands out the oldest visible message with a lease, or nothing when none is visible.
  std::optional<delivery_type> try_receive(receive_options options = {}) {
    return receive_now(lease_length(options));
  }

  // As try_receive, waiting up to `wait` (on steady_clock) for a message to become visible.
  // Returns nothing at once when the queue is drained: closed and holding no message.
  template <class Rep, class Period>
  std::optional<delivery_type> receive_for(std::chrono::duration<Rep, Period> wait,
                                           receive_options options = {}) {
    const nanos lease = lease_length(options);
    // Try once before reading the clock for the deadline: a visible message needs no deadline.
    if (std::optional<delivery_type> out = receive_now(lease)) return out;
    return receive_until(detail::deadline_after(wait), lease);
  }

  // Hands out up to `max` visible messages, writing each delivery to *out++; returns the count.
  template <class Out>
  std::size_t try_receive_batch(Out out, std::size_t max, receive_options options = {}) {
    const nanos lease = lease_length(options);
    const nanos at = now_ns();
    std::size_t count = 0;
    while (count < max) {
      std::optional<delivery_type> next = receive_at(at, lease);
      if (!next) break;
      *out = std::move(*next);
      ++out;
      ++count;
    }
    return count;
  }

  // As try_receive_batch, waiting up to `wait` for the first message.
  template <class Out, class Rep, class Period>
  std::size_t receive_batch_for(Out out, std::size_t max, std::chrono::duration<Rep, Period> wait,
                                receive_options options = {}) {
    if (max == 0) return 0;
    const nanos lease = lease_length(options);
    std::optional<delivery_type> first = receive_until(detail::deadline_after(wait), lease);
    if (!first) return 0;
    *out = std::move(*first);
    ++out;
    std::size_t count = 1;
    const nanos at = now_ns();
    while (count < max) {
      std::optional<delivery_type> next = receive_at(at, lease);
      if (!next) break;
      *out = std::move(*next);
      ++out;
      ++count;
    }
    return count;
  }

  // ---- settle --------------------------------------------------------------------------------
  // Each returns true when it took effect, and false, changing nothing, for a receipt that is not
  // the message's latest delivery, whose lease has ended, that was already settled, or that
  // belongs to another queue.

  // Deletes the message.
  bool ack(const receipt& r) { return ack_at(now_ns(), r); }

  // Acknowledges each receipt in [first, last), or each delivery's receipt, as ack() does.
  // Reads the clock once for the whole range. Skips receipts that do not work, and returns how
  // many acknowledgements took effect.
  template <std::input_iterator It, std::sentinel_for<It> End>
    requires std::convertible_to<std::iter_reference_t<It>, const receipt&> ||
             std::convertible_to<std::iter_reference_t<It>, const delivery_type&>
  std::size_t ack_batch(It first, End last) {
    const nanos at = now_ns();
    std::size_t count = 0;
    for (; first != last; ++first) {
      const auto& item = *first;
      bool acked = false;
      if constexpr (std::convertible_to<decltype(item), const receipt&>) {
        acked = ack_at(at, item);
      } else {
        acked = ack_at(at, static_cast<const delivery_type&>(item).receipt());
      }
      count += acked ? 1 : 0;
    }
    return count;
  }

  // Ends the lease as a failed attempt. The message is visible again after the backoff
  // policy's delay for its failure count, or becomes a dead letter when that count reaches
  // max_receive_count.
  bool nack(const receipt& r) { return nack_with(r, std::nullopt, {}); }

  // As nack(r); when this failure dead-letters the message, `detail` becomes the dead letter's
  // text in place of the standard one. A worker passes its exception's message this way.
  bool nack(const receipt& r, std::string_view detail) {
    return nack_with(r, std::nullopt, detail);
  }

  // As nack(r), with `delay` in place of the backoff delay; a delay <= 0 means at once.
  template <class Rep, class Period>
  bool nack(const receipt& r, std::chrono::duration<Rep, Period> delay) {
    return nack_with(r, detail::saturating_nanoseconds(delay), {});
  }

  // Gives the message back, visible at once, without counting a failed attempt.
  bool release(const receipt& r) {
    const std::optional<std::uint32_t> index = take_lease(r);
    if (!index) return false;
    slots_[*index].counters.released.bump();
    requeue(*index, now_ns(), 0);
    return true;
  }

  // Moves the end of the lease to now + timeout, capped by max_visibility_timeout. A timeout of
  // zero or less acts as release(r).
  template <class Rep, class Period>
  bool extend(const receipt& r, std::chrono::duration<Rep, Period> timeout) {
    const nanos length = std::min(detail::saturating_nanoseconds(timeout), max_lease());
    if (length <= 0) return release(r);
    slot_type* slot = slot_of(r);
    if (slot == nullptr) return false;

    // Make the version odd, which stops every settle and the reaper from acting on this lease
    // until the new deadline is written.
    std::uint64_t current = slot->state.load(std::memory_order_acquire);
    nanos old_due = 0;
    nanos at = 0;
    for (;;) {
      if (!matches(current, r)) return false;
      if (state::writing_deadline(current)) {
        detail::cpu_relax();  // another thread extends the same lease
        current = slot->state.load(std::memory_order_acquire);
        continue;
      }
      if (slot->id.load(std::memory_order_relaxed) != r.message_) return false;
      old_due = slot->due.load(std::memory_order_relaxed);
      at = now_ns();
      if (at >= old_due) return false;  // the lease has ended; the reaper will hand it out
      if (slot->state.compare_exchange_weak(current, state::next_version(current),
                                            std::memory_order_acq_rel, std::memory_order_acquire)) {
        break;
      }
    }
    const nanos due = detail::saturating_add(at, length);
    RINGMQ_PREEMPTION_POINT();
    slot->due.store(due, std::memory_order_relaxed);
    RINGMQ_PREEMPTION_POINT();
    // Release: a thread that reads the even version also reads the new deadline.
    slot->state.store(state::next_version(state::next_version(current)), std::memory_order_release);
    // The reaper's heap holds a deadline no later than the old one; it needs a notice only
    // when the lease got shorter.
    if (due < old_due) post_notice(r.slot_, due);
    return true;
  }

  // Dead-letters the message at once with reason rejected and `detail` as its text.
  bool reject(const receipt& r, std::string_view detail = {}) {
    const std::optional<std::uint32_t> index = take_lease(r);
    if (!index) return false;
    slots_[*index].counters.rejected.bump();
    dead_letter_owned(*index, dead_letter_reason::rejected, detail, now_ns());
    return true;
  }

  // Dead-letters the visible message that is next in line, with reason evicted and `detail` as
  // its text, to make room without waiting for a consumer. Leased and delayed messages are never
  // evicted. Returns false when no message is visible. A fan-out subscription whose overflow
  // policy is drop_oldest calls this when its queue is full, so that what it drops stays
  // recoverable in the dead-letter queue.
  bool try_evict_oldest(std::string_view detail = {}) {
    const nanos at = now_ns();
    if (at >= due_hint()) reap(at);
    std::uint32_t index = 0;
    if (!ready_.try_pop(index)) return false;
    slots_[index].counters.evicted.bump();
    dead_letter_owned(index, dead_letter_reason::evicted, detail, at);
    return true;
  }

  // ---- dead letters, state, close ------------------------------------------------------------

  dead_letter_queue_type& dead_letters() noexcept { return dead_letters_; }
  const dead_letter_queue_type& dead_letters() const noexcept { return dead_letters_; }

  // Moves up to `max` dead letters, oldest first, back into this queue as visible messages with
  // their ids kept, their receive and failure counts reset, and sent_at set to now. Stops when
  // the queue is full; returns how many moved. A closed queue takes none.
  std::size_t redrive(std::size_t max) {
    if (is_closed()) return 0;
    const nanos at = now_ns();
    const std::size_t moved = dead_letters_.take_front(max, [&](dead_letter_type& letter) {
      std::uint32_t index = 0;
      if (!claim_free_slot(index)) return false;
      slot_type& slot = slots_[index];
      std::construct_at(slot.body.get(), std::move(letter.body));
      slot.id.store(letter.id, std::memory_order_relaxed);
      slot.sent_at.store(at, std::memory_order_relaxed);
      slot.receive_count = 0;
      slot.failure_count = 0;
      make_visible(index);
      return true;
    });
    redriven_.fetch_add(moved, std::memory_order_relaxed);
    return moved;
  }

  // Hands expired leases and due delayed messages to the ready list, then counts. Reads every
  // slot, so it costs O(capacity): call it for monitoring, not per message.
  queue_stats stats() {
    const nanos at = now_ns();
    reap(at);

    queue_stats result;
    nanos oldest_sent = detail::nanos_max;
    for (std::size_t index = 0; index < config_.capacity; ++index) {
      const slot_type& slot = slots_[index];
      switch (state::kind(slot.state.load(std::memory_order_relaxed))) {
        case kind::visible:
          ++result.visible;
          oldest_sent = std::min(oldest_sent, slot.sent_at.load(std::memory_order_relaxed));
          break;
        case kind::leased:
        case kind::settling:
          ++result.in_flight;
          break;
        case kind::delayed:
          ++result.delayed;
          break;
        case kind::free:
          break;
      }
      const detail::slot_counters& c = slot.counters;
      result.sent += c.sent.read();
      result.received += c.received.read();
      result.redelivered += c.redelivered.read();
      result.acked += c.acked.read();
      result.nacked += c.nacked.read();
      result.released += c.released.read();
      result.expired_leases += c.expired_leases.read();
      result.rejected += c.rejected.read();
      result.evicted += c.evicted.read();
    }
    if (oldest_sent != detail::nanos_max && at > oldest_sent) {
      result.oldest_visible_age = std::chrono::nanoseconds(at - oldest_sent);
    }
    result.dead_letters = dead_letters_.size();
    result.dead_lettered = dead_letters_.added();
    result.dropped = dead_letters_.dropped();
    result.redriven = redriven_.load(std::memory_order_relaxed);
    return result;
  }

  // Messages held (visible, delayed and leased); exact when no call is in progress.
  std::size_t size() const noexcept { return config_.capacity - free_.size(); }
  std::size_t capacity() const noexcept { return config_.capacity; }
  const queue_config& config() const noexcept { return config_; }

  // The time on the queue's clock, against which leases, delays and retention are measured.
  time_point now() const noexcept { return clock_->now(); }

  // Makes every send fail from now on and wakes every waiting call. Receivers still get the
  // messages that are or become visible. A waiting receive keeps waiting while messages are
  // delayed or leased, and returns nothing once the queue is drained. Open leases can still be
  // settled.
  void close() noexcept {
    closed_.store(true, std::memory_order_seq_cst);  // (C0), see claim_free_slot
    RINGMQ_PREEMPTION_POINT();
    visible_waiters_.wake();
    room_waiters_.wake();
  }
  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Whether the queue is closed and holds no message: nothing visible, delayed or leased will
  // ever be handed out again. Consumers of a closed queue stop when this holds.
  bool is_drained() const noexcept {
    if (!closed_.load(std::memory_order_seq_cst)) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);  // (C2), see claim_free_slot
    RINGMQ_PREEMPTION_POINT();
    // The free list's size() is a lower bound while calls run. So "every slot free" is never read
    // while a thread has taken a slot, even when another thread takes and returns one between the
    // two counter reads.
    return free_.size() == config_.capacity;
  }

 private:
  static const queue_config& checked(const queue_config& config) {
    detail::check_queue_config(config);
    return config;
  }

  static clock_type& default_clock() requires std::default_initializable<clock_type> {
    // Every queue may share this object, because a clock with a static now() has no state.
    static clock_type instance{};
    return instance;
  }

  nanos now_ns() const noexcept {
    return detail::saturating_nanoseconds(clock_->now().time_since_epoch());
  }


  time_point to_time_point(nanos at) const noexcept {
    return time_point(
        std::chrono::duration_cast<typename clock_type::duration>(std::chrono::nanoseconds(at)));
  }

  nanos max_lease() const noexcept {
    return detail::saturating_nanoseconds(config_.max_visibility_timeout);
  }

  nanos lease_length(const receive_options& options) const noexcept {
    if (!options.visibility_timeout) {
      return detail::saturating_nanoseconds(config_.visibility_timeout);
    }
    return std::clamp<nanos>(detail::saturating_nanoseconds(*options.visibility_timeout), 0,
                             max_lease());
  }

  // ---- send internals ------------------------------------------------------------------------

  template <class... Args>
  send_result try_send_with(const send_options& options, Args&&... args) {
    return try_send_at(now_ns(), options, std::forward<Args>(args)...);
  }

  // A send at time `at` on the queue's clock.
  template <class... Args>
  send_result try_send_at(nanos at, const send_options& options, Args&&... args) {
    if (is_closed()) return {send_status::closed, 0};
    std::uint32_t index = 0;
    if (!claim_free_slot(index)) {  // (S1)
      return {is_closed() ? send_status::closed : send_status::full, 0};
    }

    RINGMQ_PREEMPTION_POINT();
    // (S2) The slot is ours until S3 publishes it. A throwing constructor returns it.
    slot_type& slot = slots_[index];
    try {
      std::construct_at(slot.body.get(), std::forward<Args>(args)...);
    } catch (...) {
      free_slot(index);
      throw;
    }
    ++slot.sends;
    const message_id id = slot.sends * config_.capacity + index;
    slot.id.store(id, std::memory_order_relaxed);
    slot.sent_at.store(at, std::memory_order_relaxed);
    slot.receive_count = 0;
    slot.failure_count = 0;
    slot.counters.sent.bump();

    RINGMQ_PREEMPTION_POINT();
    const nanos delay = detail::saturating_nanoseconds(options.delay);
    if (delay > 0) {
      make_delayed(index, detail::saturating_add(at, delay));  // (S3)
    } else {
      make_visible(index);  // (S3)
    }
    return {send_status::ok, id};
  }

  // Takes a free slot for a send or a redrive, unless the queue is full or closed.
  //
  // A send must not succeed after a receiver has seen the queue drained and left. The sender
  // takes the slot (a pop from free_), takes a seq_cst fence (C1) and reads closed_; is_drained()
  // reads closed_, takes a seq_cst fence (C2) and reads the size, which counts taken slots.
  // close() stores closed_ with seq_cst (C0). If the size read misses the pop, C2 precedes C1 in
  // the fences' total order, so the sender's read of closed_ sees C0, and the sender gives the
  // slot back. So a receiver that sees the queue drained never misses an accepted send.
  bool claim_free_slot(std::uint32_t& index) {
    if (!free_.try_pop(index)) return false;
    RINGMQ_PREEMPTION_POINT();
    std::atomic_thread_fence(std::memory_order_seq_cst);  // (C1)
    if (closed_.load(std::memory_order_seq_cst)) {
      free_slot(index);
      return false;
    }
    return true;
  }

  template <class... Args>
  send_result send_until(detail::steady_time deadline, const send_options& options,
                         Args&&... args) {
    // Wait as wait<park> does: spin, then yield, then sleep, because waking a sleeping thread
    // costs tens of microseconds. While spinning, retry only when a slot looks free.
    for (std::uint32_t round = 0;; round += (round != UINT32_MAX) ? 1 : 0) {
      const wait_step step = park::step(round);
      if (step == wait_step::sleep || round % full_retry_rounds == 0 || !free_.empty()) {
        send_result result = try_send_with(options, std::forward<Args>(args)...);
        if (result.status != send_status::full) return result;
        if (std::chrono::steady_clock::now() >= deadline) return {send_status::timeout, 0};
      }
      switch (step) {
        case wait_step::spin:
          detail::cpu_relax();
          break;
        case wait_step::yield:
          std::this_thread::yield();
          break;
        case wait_step::sleep:
          room_waiters_.sleep_unless([&] { return !free_.empty() || is_closed(); }, deadline);
          break;
      }
    }
  }

  // ---- receive internals ---------------------------------------------------------------------

  std::optional<delivery_type> receive_now(nanos lease) { return receive_at(now_ns(), lease); }

  // A receive at time `at` on the queue's clock.
  std::optional<delivery_type> receive_at(nanos at, nanos lease) {
    if (at >= due_hint()) reap(at);
    for (;;) {
      std::uint32_t index = 0;
      if (!ready_.try_pop(index)) return std::nullopt;  // (R1)
      RINGMQ_PREEMPTION_POINT();
      slot_type& slot = slots_[index];
      const nanos sent = slot.sent_at.load(std::memory_order_relaxed);
      if (past_retention(sent, at)) {
        dead_letter_owned(index, dead_letter_reason::expired, {}, at);
        continue;
      }

      // (R2) Copy the body before changing anything, so that a throwing copy loses nothing.
      const std::uint64_t before = slot.state.load(std::memory_order_relaxed);
      const std::uint32_t number = state::delivery(before) + 1;
      const message_id id = slot.id.load(std::memory_order_relaxed);
      std::optional<delivery_type> out;
      try {
        out.emplace(delivery_type(*slot.body.get(), receipt(tag_, id, index, number),
                                  slot.receive_count + 1, slot.failure_count, to_time_point(sent)));
      } catch (...) {
        make_visible(index);
        throw;
      }

      RINGMQ_PREEMPTION_POINT();
      // (R3) Start the lease.
      ++slot.receive_count;
      slot.counters.received.bump();
      if (slot.receive_count > 1) slot.counters.redelivered.bump();
      const nanos due = detail::saturating_add(at, lease);
      slot.due.store(due, std::memory_order_relaxed);
      slot.state.store(state::make(kind::leased, number), std::memory_order_release);
      RINGMQ_PREEMPTION_POINT();
      post_notice(index, due);  // (R4)
      return out;
    }
  }

  std::optional<delivery_type> receive_until(detail::steady_time deadline, nanos lease) {
    // Wait as wait<park> does: spin, then yield, then sleep. While spinning, retry only when a
    // message looks visible, and every full_retry_rounds rounds, which also reads the clock for
    // leases that ended.
    for (std::uint32_t round = 0;; round += (round != UINT32_MAX) ? 1 : 0) {
      const wait_step step = park::step(round);
      if (step == wait_step::sleep || round % full_retry_rounds == 0 || !ready_.empty()) {
        if (std::optional<delivery_type> out = receive_now(lease)) return out;
        if (is_drained() || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      }
      if (step == wait_step::spin) {
        detail::cpu_relax();
        continue;
      }
      if (step == wait_step::yield) {
        std::this_thread::yield();
        continue;
      }

      // Sleep until a message becomes visible, close(), the deadline, or the earliest known
      // lease end or delay, whichever comes first.
      const nanos due = due_hint();
      detail::steady_time until = deadline;
      if constexpr (std::is_same_v<clock_type, std::chrono::steady_clock>) {
        if (due != detail::nanos_max) until = std::min(until, to_time_point(due));
      } else if constexpr (std::is_same_v<time_point, detail::steady_time>) {
        // A coarse clock on steady_clock's time line reaches `due` after steady_clock does, by
        // a tick or more, so sleep until `due`, then poll.
        const detail::steady_time poll = std::chrono::steady_clock::now() + other_clock_poll;
        if (due != detail::nanos_max) until = std::min(until, std::max(to_time_point(due), poll));
      } else {
        // Another clock cannot be slept on, so poll it: a deadline that passes while this
        // thread sleeps is seen within other_clock_poll.
        until = std::min(until, std::chrono::steady_clock::now() + other_clock_poll);
      }
      visible_waiters_.sleep_unless(
          [&] { return !ready_.empty() || is_drained() || due_hint() < due; }, until);
    }
  }

  // ---- settle internals ----------------------------------------------------------------------

  bool ack_at(nanos at, const receipt& r) {
    const std::optional<std::uint32_t> index = take_lease(r, at);
    if (!index) return false;
    slot_type& slot = slots_[*index];
    slot.counters.acked.bump();
    std::destroy_at(slot.body.get());
    free_slot(*index);
    return true;
  }

  slot_type* slot_of(const receipt& r) noexcept {
    if (r.queue_ != tag_ || r.slot_ >= config_.capacity) return nullptr;
    return &slots_[r.slot_];
  }

  static bool matches(std::uint64_t current, const receipt& r) noexcept {
    return state::kind(current) == kind::leased && state::delivery(current) == r.delivery_;
  }

  // (A1)-(A3): takes ownership of the slot leased under r, or returns nothing. `at` is the
  // time of the call.
  std::optional<std::uint32_t> take_lease(const receipt& r) { return take_lease(r, now_ns()); }

  std::optional<std::uint32_t> take_lease(const receipt& r, nanos at) {
    slot_type* slot = slot_of(r);
    if (slot == nullptr) return std::nullopt;
    std::uint64_t current = slot->state.load(std::memory_order_acquire);  // (A1)
    for (;;) {
      if (!matches(current, r)) return std::nullopt;
      if (state::writing_deadline(current)) {
        detail::cpu_relax();  // an extend of this lease is writing its deadline
        current = slot->state.load(std::memory_order_acquire);
        continue;
      }
      if (slot->id.load(std::memory_order_relaxed) != r.message_) return std::nullopt;
      if (at >= slot->due.load(std::memory_order_relaxed)) return std::nullopt;  // (A2)
      RINGMQ_PREEMPTION_POINT();
      if (slot->state.compare_exchange_weak(                                        // (A3)
              current, state::make(kind::settling, r.delivery_), std::memory_order_acq_rel,
              std::memory_order_acquire)) {
        return r.slot_;
      }
    }
  }

  bool nack_with(const receipt& r, std::optional<nanos> delay, std::string_view text) {
    const std::optional<std::uint32_t> index = take_lease(r);
    if (!index) return false;
    slot_type& slot = slots_[*index];
    slot.counters.nacked.bump();
    fail_attempt(*index, now_ns(), delay, "nacked", text);
    return true;
  }

  // Counts a failed attempt on an owned slot, then dead-letters the message or queues it again.
  void fail_attempt(std::uint32_t index, nanos at, std::optional<nanos> delay, std::string_view how,
                    std::string_view text = {}) {
    slot_type& slot = slots_[index];
    ++slot.failure_count;
    if (config_.max_receive_count != 0 && slot.failure_count >= config_.max_receive_count) {
      std::string detail;
      try {
        detail = !text.empty()
                     ? std::string(text)
                     : std::string(how) + " on attempt " + std::to_string(slot.failure_count) +
                           " of max_receive_count " + std::to_string(config_.max_receive_count);
      } catch (...) {
        detail.clear();  // out of memory: the dead letter keeps its reason without the text
      }
      dead_letter_owned(index, dead_letter_reason::max_receives, detail, at);
      return;
    }
    const nanos wait = delay ? *delay
                             : detail::saturating_nanoseconds(backoff_.delay(
                                   slot.failure_count, slot.id.load(std::memory_order_relaxed)));
    requeue(index, at, wait);
  }

  // Queues an owned message again: a dead letter when past retention, else visible after delay.
  void requeue(std::uint32_t index, nanos at, nanos delay) {
    slot_type& slot = slots_[index];
    if (past_retention(slot.sent_at.load(std::memory_order_relaxed), at)) {
      dead_letter_owned(index, dead_letter_reason::expired, {}, at);
    } else if (delay > 0) {
      make_delayed(index, detail::saturating_add(at, delay));
    } else {
      make_visible(index);
    }
  }

  bool past_retention(nanos sent, nanos at) const noexcept {
    const nanos keep = detail::saturating_nanoseconds(config_.retention);
    return keep != detail::nanos_max && at - sent >= keep;
  }

  // Moves an owned message into the dead-letter queue and frees its slot.
  void dead_letter_owned(std::uint32_t index, dead_letter_reason reason, std::string_view text,
                         nanos at) {
    slot_type& slot = slots_[index];
    std::string detail;
    try {
      if (!text.empty()) {
        detail = text;
      } else if (reason == dead_letter_reason::expired) {
        detail = "older than the retention period";
      } else if (reason == dead_letter_reason::evicted) {
        detail = "evicted to make room for a newer message";
      }
    } catch (...) {
      detail.clear();  // out of memory: the dead letter keeps its reason without the text
    }
    dead_letter_type letter{std::move(*slot.body.get()),
                            slot.id.load(std::memory_order_relaxed),
                            slot.receive_count,
                            slot.failure_count,
                            reason,
                            std::move(detail),
                            to_time_point(slot.sent_at.load(std::memory_order_relaxed)),
                            to_time_point(at)};
    std::destroy_at(slot.body.get());
    free_slot(index);
    dead_letters_.add(std::move(letter));
  }

  // ---- state changes of owned slots ----------------------------------------------------------

  void make_visible(std::uint32_t index) {
    slot_type& slot = slots_[index];
    const std::uint32_t number = state::delivery(slot.state.load(std::memory_order_relaxed));
    slot.state.store(state::make(kind::visible, number), std::memory_order_relaxed);
    RINGMQ_PREEMPTION_POINT();
    // Release through the ring: the receiver that pops the index sees the body and the state.
    const bool pushed = ready_.push(std::uint32_t{index});  // waits only while a receiver
    (void)pushed;                                           // finishes with this ring slot
    visible_waiters_.wake();
  }

  void make_delayed(std::uint32_t index, nanos due) {
    slot_type& slot = slots_[index];
    const std::uint32_t number = state::delivery(slot.state.load(std::memory_order_relaxed));
    slot.due.store(due, std::memory_order_relaxed);
    slot.state.store(state::make(kind::delayed, number), std::memory_order_release);
    RINGMQ_PREEMPTION_POINT();
    post_notice(index, due);
  }

  void free_slot(std::uint32_t index) {
    slot_type& slot = slots_[index];
    const std::uint32_t number = state::delivery(slot.state.load(std::memory_order_relaxed));
    slot.state.store(state::make(kind::free, number), std::memory_order_relaxed);
    RINGMQ_PREEMPTION_POINT();
    // Release through the ring: the next sender sees the body destroyed.
    const bool pushed = free_.push(std::uint32_t{index});
    (void)pushed;  // the free list has room for every index; it is never closed
    room_waiters_.wake();
    // Receivers of a closed queue wait until it is drained, which this slot may have made true.
    if (is_closed()) visible_waiters_.wake();
  }

  // ---- reaper --------------------------------------------------------------------------------

  // Tells the reaper that the slot's deadline is now `due`. The slot's state and due must be
  // written before this call.
  void post_notice(std::uint32_t index, nanos due) {
    // Acq_rel: pairs with the reaper's exchange in drain_notices, see the protocol comment.
    if (!slots_[index].noticed.exchange(true, std::memory_order_acq_rel)) {
      const bool pushed = notices_.push(std::uint32_t{index});
      (void)pushed;  // the flag keeps each index in the list at most once, so it has room
      RINGMQ_PREEMPTION_POINT();
      // (N1) Pairs with (N2) in reap(): either the reaper's drain sees this push, or the load
      // of the hint below sees the reaper's reset of it, and lowers it again.
      std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    // Lower the hint so that a receive after `due` reaps. A waiting receive may sleep past
    // `due`, so wake it to recompute its wake-up time.
    nanos hint = notice_due_.load(std::memory_order_relaxed);
    while (due < hint) {
      if (notice_due_.compare_exchange_weak(hint, due, std::memory_order_release,
                                            std::memory_order_relaxed)) {
        visible_waiters_.wake();
        break;
      }
    }
  }

  // The earliest deadline the reaper may have to act on. Relaxed: the reaper writes heap_due_
  // under its mutex, and a receive that reads an older value reaps at its next call.
  nanos due_hint() const noexcept {
    return std::min(heap_due_.load(std::memory_order_relaxed),
                    notice_due_.load(std::memory_order_relaxed));
  }

  // Runs the reaper unless another thread runs it. Returns whether it made a message visible.
  bool reap(nanos at) {
    std::unique_lock lock(reaper_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return false;

    // Reset the hint before draining, so that a notice the drain misses lowers it again.
    notice_due_.store(detail::nanos_max, std::memory_order_relaxed);
    RINGMQ_PREEMPTION_POINT();
    std::atomic_thread_fence(std::memory_order_seq_cst);  // (N2), pairs with (N1)
    drain_notices(at);

    bool made_visible = false;
    while (!timers_.empty() && timers_.top_key() <= at) {
      const std::uint32_t index = timers_.top_slot();
      slot_type& slot = slots_[index];
      std::uint64_t current = slot.state.load(std::memory_order_acquire);
      const nanos due = slot.due.load(std::memory_order_relaxed);
      RINGMQ_PREEMPTION_POINT();
      switch (state::kind(current)) {
        case kind::leased:
          if (state::writing_deadline(current)) {
            timers_.set(index, detail::saturating_add(at, 1));  // look again after the extend
          } else if (due > at) {
            timers_.set(index, due);
          } else if (slot.state.compare_exchange_strong(
                         current, state::make(kind::settling, state::delivery(current)),
                         std::memory_order_acq_rel, std::memory_order_acquire)) {
            timers_.erase(index);
            slot.counters.expired_leases.bump();
            fail_attempt(index, at, nanos{0}, "lease expired");
            made_visible = true;
          }
          // A failed CAS means a settle or an extend won; the loop looks at the slot again.
          break;
        case kind::delayed:
          if (due > at) {
            timers_.set(index, due);
          } else {
            timers_.erase(index);
            requeue(index, at, 0);
            made_visible = true;
          }
          break;
        default:
          timers_.erase(index);  // settled since the notice
          break;
      }
    }
    heap_due_.store(timers_.top_key(), std::memory_order_relaxed);
    return made_visible;
  }

  void drain_notices(nanos at) {
    std::uint32_t index = 0;
    while (notices_.try_pop(index)) {
      slot_type& slot = slots_[index];
      // Acq_rel: reads the latest post_notice's exchange, so the loads below see its writes.
      slot.noticed.exchange(false, std::memory_order_acq_rel);
      RINGMQ_PREEMPTION_POINT();
      const std::uint64_t current = slot.state.load(std::memory_order_acquire);
      const kind k = state::kind(current);
      if (k == kind::leased || k == kind::delayed) {
        nanos due = slot.due.load(std::memory_order_relaxed);
        if (state::writing_deadline(current)) due = std::min(due, detail::saturating_add(at, 1));
        timers_.set(index, due);
      } else {
        timers_.erase(index);
      }
    }
  }

  // How many rounds of a spinning wait pass between two full attempts.
  static constexpr std::uint32_t full_retry_rounds = 64;

  // How often a receive waiting on a clock other than steady_clock rereads it.
  static constexpr std::chrono::milliseconds other_clock_poll{1};

  queue_config config_;
  clock_type* clock_;
  backoff_type backoff_;
  std::uint64_t tag_;
  std::unique_ptr<slot_type[]> slots_;
  index_ring free_;
  index_ring ready_;
  index_ring notices_;
  alignas(detail::cache_line) std::atomic<bool> closed_{false};
  alignas(detail::cache_line) std::atomic<nanos> notice_due_{detail::nanos_max};
  std::atomic<nanos> heap_due_{detail::nanos_max};  // written only by the reaper
  alignas(detail::cache_line) std::mutex reaper_mutex_;
  detail::timer_heap timers_;  // guarded by reaper_mutex_
  std::atomic<std::uint64_t> redriven_{0};
  detail::wake_channel visible_waiters_;
  detail::wake_channel room_waiters_;
  dead_letter_queue_type dead_letters_;
};

}  // namespace ringmq
