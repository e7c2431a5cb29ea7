// ringmq::topic: fan-out. One publish hands a copy of the message to every subscription whose
// binding matches its routing key.
//
//   ringmq::topic<order> orders;
//   auto audit = orders.subscribe("orders.#");                      // ring inbox, blocks when full
//   auto europe = orders.subscribe("orders.*.eu",                   // work-queue inbox: leases,
//                                  ringmq::queue_inbox{.queue = {.max_receive_count = 5},
//                                                      .overflow = ringmq::overflow_policy::
//                                                          drop_oldest});  // retries, dead letters
//   orders.publish("orders.created.eu", order{...});               // both receive a copy
//   auto next = audit.inbox().pop_for(100ms);                       // consumers of one
//   auto lease = europe.inbox().receive_for(100ms);                 // subscription compete
//
// Bindings follow AMQP topic rules (detail/topic_pattern.hpp): words separated by '.', "*" one
// word, "#" zero or more words. A subscription may bind with a predicate over the routing key
// and the message instead. Its inbox, chosen at subscribe time, is a ring (fast, no leases) or a
// work_queue (leases, retries, dead letters). Its overflow policy decides what a full inbox
// does: block the publisher (up to a timeout), drop the oldest message, or drop the new one.
// Every drop is counted, in the publish_result and in the subscription's stats. Destroying the
// subscription handle, or calling unsubscribe(), removes it. docs/fanout.md has every rule.
//
// Options, in any order: producers<multi> (the default: any number of threads publish at once)
// or producers<single> (one thread at a time publishes, so a publish needs no read-modify-write
// and ring inboxes are single-producer rings), wait<P> (how a ring inbox's blocking calls wait,
// for publishers and consumers alike, park by default) and slot_layout<L> (the ring inboxes'
// slot layout).
//
// Requirements on T: copy-constructible, because each subscription gets its own copy, with a
// noexcept move constructor and destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/topic_pattern.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"
#include "ringmq/ring.hpp"
#include "ringmq/work_queue.hpp"

namespace ringmq {

// The action a subscription takes on a message that arrives when its inbox is full.
enum class overflow_policy : std::uint8_t {
  block,        // the publisher waits for room, at most the subscription's block_timeout
  drop_oldest,  // the oldest queued message makes room: a ring discards it, a work_queue
                // dead-letters it with reason evicted
  drop_newest,  // the new message is not queued
};

constexpr std::string_view to_string(overflow_policy policy) noexcept {
  switch (policy) {
    case overflow_policy::block:
      return "block";
    case overflow_policy::drop_oldest:
      return "drop_oldest";
    case overflow_policy::drop_newest:
      return "drop_newest";
  }
  return "unknown";
}

// Numbers of a topic, fixed at construction.
struct topic_config {
  // Subscriptions that may exist at once. The table of them is allocated up front, and each
  // publish scans the slots up to the highest one ever used.
  std::size_t max_subscriptions = 64;
};

// A subscription whose inbox is a ringmq::ring: no leases, a pop removes the message.
struct ring_inbox {
  std::size_t capacity = 1024;
  overflow_policy overflow = overflow_policy::block;
  // How long a publish waits for room under overflow_policy::block. max() waits until there is
  // room or the inbox is closed.
  std::chrono::nanoseconds block_timeout = std::chrono::nanoseconds::max();
};

// A subscription whose inbox is a ringmq::work_queue, with its own leases, retries and dead
// letters, configured by `queue`.
struct queue_inbox {
  queue_config queue{};
  overflow_policy overflow = overflow_policy::block;
  // How long a publish waits for room under overflow_policy::block. max() waits until there is
  // room or the inbox is closed.
  std::chrono::nanoseconds block_timeout = std::chrono::nanoseconds::max();
};

enum class publish_status : std::uint8_t {
  ok,      // the subscriptions were visited, and the counts record what each did
  closed,  // close() was called before the publish: no subscription was visited
};

constexpr std::string_view to_string(publish_status status) noexcept {
  switch (status) {
    case publish_status::ok:
      return "ok";
    case publish_status::closed:
      return "closed";
  }
  return "unknown";
}

// The outcome of one publish. matched == delivered + dropped.
struct publish_result {
  publish_status status = publish_status::ok;
  std::uint32_t matched = 0;    // subscriptions whose binding matched the message
  std::uint32_t delivered = 0;  // of them, those whose inbox took a copy
  // Of them, those that did not take it. The causes are drop_newest on a full inbox, a block
  // that timed out, drop_oldest on a full work queue with nothing visible to evict, and an
  // inbox that unsubscribe() or close() closed during the publish.
  std::uint32_t dropped = 0;
  std::uint32_t timed_out = 0;       // of the dropped, those whose block timed out
  std::uint32_t dropped_oldest = 0;  // older messages removed from full inboxes to make room

  bool ok() const noexcept { return status == publish_status::ok; }
  explicit operator bool() const noexcept { return ok(); }
};

// Counters of one subscription since it was created. Exact when no call is in progress.
// matched == delivered + dropped_newest + block_timeouts + dropped_closed.
struct subscription_stats {
  std::uint64_t matched = 0;         // publishes whose message matched the binding
  std::uint64_t delivered = 0;       // copies the inbox took
  std::uint64_t dropped_oldest = 0;  // queued messages removed to make room (drop_oldest)
  std::uint64_t dropped_newest = 0;  // new messages not taken because the inbox was full
  std::uint64_t block_timeouts = 0;  // new messages not taken because a block timed out
  std::uint64_t dropped_closed = 0;  // new messages not taken because the inbox was closed
  std::size_t queued = 0;            // messages in the inbox now (a work queue counts leased ones)
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// Options.

template <class O>
constexpr bool check_known_topic_option() {
  using kind = typename option_kind<O>::type;
  static_assert(std::is_same_v<kind, producers_kind> || std::is_same_v<kind, wait_kind> ||
                    std::is_same_v<kind, layout_kind>,
                "ringmq::topic: unknown option; expected producers<R>, wait<P> or slot_layout<L>");
  return true;
}

template <class... Options>
struct topic_options {
  static constexpr bool all_known = (check_known_topic_option<Options>() && ...);
  static_assert(count_of_kind<producers_kind, Options...> <= 1 &&
                    count_of_kind<wait_kind, Options...> <= 1 &&
                    count_of_kind<layout_kind, Options...> <= 1,
                "ringmq::topic: an option kind is given more than once; give each of producers, "
                "wait and slot_layout at most once");

  using publisher_role =
      typename find_option<producers_kind, producers<multi>, Options...>::type::type;
  using wait_policy = typename find_option<wait_kind, wait<park>, Options...>::type::type;
  using layout = typename find_option<layout_kind, slot_layout<padded>, Options...>::type::type;
};

template <class Queue, class T>
inline constexpr bool is_work_queue_of = false;
template <class T, class... QueueOptions>
inline constexpr bool is_work_queue_of<work_queue<T, QueueOptions...>, T> = true;

// ---------------------------------------------------------------------------------------------
// Bindings and delivery.

// The outcome of one attempt to hand a copy to one subscription.
enum class delivery_outcome : std::uint8_t { delivered, dropped_newest, timed_out, closed };

// Hooks that a delivery calls around a wait for room in a full inbox, so that a waiting
// publisher holds back no unsubscribe but that of the subscription it waits on. See
// subscription_table.
class wait_scope {
 public:
  virtual void before_wait() noexcept = 0;
  virtual void after_wait() noexcept = 0;

 protected:
  ~wait_scope() = default;
};

// Calls before_wait, and after_wait when it leaves scope, also on an exception from T's copy
// constructor.
class wait_guard {
 public:
  explicit wait_guard(wait_scope& scope) noexcept : scope_(scope) { scope_.before_wait(); }
  wait_guard(const wait_guard&) = delete;
  wait_guard& operator=(const wait_guard&) = delete;
  ~wait_guard() { scope_.after_wait(); }

 private:
  wait_scope& scope_;
};

// A monotonic count raised by publishers: by any of them with multi, by the one publisher with
// single, which needs no read-modify-write. Relaxed: it orders nothing, and readers take a
// snapshot.
template <class Role>
class event_counter {
 public:
  void bump() noexcept {
    if constexpr (std::is_same_v<Role, single>) {
      value_.store(value_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else {
      value_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  std::uint64_t read() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A subscription as the publishers see it: a binding, an inbox and its counters. It is owned by
// its handle and reached by publishers through a slot of the subscription table. Role is single
// when one thread publishes and multi when several may.
template <class T, class Role>
class fanout_target {
 public:
  static constexpr std::size_t no_slot = static_cast<std::size_t>(-1);

  fanout_target(const fanout_target&) = delete;
  fanout_target& operator=(const fanout_target&) = delete;
  virtual ~fanout_target() = default;

  bool matches(std::string_view key, const T& message) const {
    return pattern_ ? pattern_->matches(key) : predicate_->test(key, message);
  }

  // Hands a copy of `message` to the inbox, following the overflow policy, and counts the outcome
  // and every message removed to make room, which it also adds to `evicted`. A wait for room
  // runs inside `scope`.
  delivery_outcome deliver(const T& message, std::uint32_t& evicted, wait_scope& scope) {
    const delivery_outcome outcome = deliver_to_inbox(message, evicted, scope);
    switch (outcome) {
      case delivery_outcome::delivered:
        delivered_.bump();
        break;
      case delivery_outcome::dropped_newest:
        dropped_newest_.bump();
        break;
      case delivery_outcome::timed_out:
        block_timeouts_.bump();
        break;
      case delivery_outcome::closed:
        dropped_closed_.bump();
        break;
    }
    return outcome;
  }

  // Closes the inbox: publishes waiting for room return, later ones drop, consumers drain it.
  virtual void close_inbox() noexcept = 0;

  subscription_stats stats() const {
    subscription_stats result;
    result.delivered = delivered_.read();
    result.dropped_oldest = dropped_oldest_.read();
    result.dropped_newest = dropped_newest_.read();
    result.block_timeouts = block_timeouts_.read();
    result.dropped_closed = dropped_closed_.read();
    result.matched =
        result.delivered + result.dropped_newest + result.block_timeouts + result.dropped_closed;
    result.queued = queued();
    return result;
  }

  std::string_view pattern() const noexcept {
    return pattern_ ? pattern_->text() : std::string_view{};
  }
  overflow_policy overflow() const noexcept { return overflow_; }

  // The table slot this subscription occupies, or no_slot. Written under the table's mutex.
  // Relaxed reads outside it serve only is_subscribed().
  std::atomic<std::size_t> slot{no_slot};

 protected:
  // A predicate over the routing key and the message, called by publishing threads.
  struct predicate_base {
    virtual ~predicate_base() = default;
    virtual bool test(std::string_view key, const T& message) const = 0;
  };

  template <class Pred>
  struct predicate_model final : predicate_base {
    explicit predicate_model(Pred p) : predicate(std::move(p)) {}
    bool test(std::string_view key, const T& message) const override {
      return static_cast<bool>(predicate(key, message));
    }
    Pred predicate;
  };

  fanout_target(std::string_view pattern, overflow_policy overflow,
                std::chrono::nanoseconds block_timeout)
      : pattern_(std::in_place, pattern), overflow_(overflow), block_timeout_(block_timeout) {}

  template <class Pred>
    requires(!std::convertible_to<Pred, std::string_view>)
  fanout_target(Pred&& predicate, overflow_policy overflow, std::chrono::nanoseconds block_timeout)
      : predicate_(
            std::make_unique<predicate_model<std::decay_t<Pred>>>(std::forward<Pred>(predicate))),
        overflow_(overflow),
        block_timeout_(block_timeout) {}

  virtual delivery_outcome deliver_to_inbox(const T& message, std::uint32_t& evicted,
                                            wait_scope& scope) = 0;
  virtual std::size_t queued() const noexcept = 0;

  bool blocks_forever() const noexcept { return block_timeout_ == std::chrono::nanoseconds::max(); }

  void count_eviction(std::uint32_t& evicted) noexcept {
    dropped_oldest_.bump();
    ++evicted;
  }

  std::optional<topic_pattern> pattern_;
  std::unique_ptr<const predicate_base> predicate_;
  const overflow_policy overflow_;
  const std::chrono::nanoseconds block_timeout_;

 private:
  // Each publisher that delivers raises one of these, so they get a line of their own.
  alignas(cache_line) event_counter<Role> delivered_;
  event_counter<Role> dropped_oldest_;
  event_counter<Role> dropped_newest_;
  event_counter<Role> block_timeouts_;
  event_counter<Role> dropped_closed_;
};

// A subscription whose inbox is a ring.
template <class T, class Role, class Ring>
class ring_target final : public fanout_target<T, Role> {
  using base = fanout_target<T, Role>;

 public:
  template <class Binding>
  ring_target(Binding&& binding, const ring_inbox& config)
      : base(std::forward<Binding>(binding), config.overflow, config.block_timeout),
        inbox_(config.capacity) {}

  Ring& inbox() noexcept { return inbox_; }
  const Ring& inbox() const noexcept { return inbox_; }

  void close_inbox() noexcept override { inbox_.close(); }

 private:
  delivery_outcome deliver_to_inbox(const T& message, std::uint32_t& evicted,
                                    wait_scope& scope) override {
    if (inbox_.try_push(message)) return delivery_outcome::delivered;
    if (inbox_.is_closed()) return delivery_outcome::closed;
    switch (this->overflow_) {
      case overflow_policy::block:
        return push_waiting(message, scope);
      case overflow_policy::drop_oldest:
        return push_evicting(message, evicted);
      case overflow_policy::drop_newest:
        break;
    }
    return delivery_outcome::dropped_newest;
  }

  delivery_outcome push_waiting(const T& message, wait_scope& scope) {
    bool pushed = false;
    {
      const wait_guard guard(scope);
      pushed = this->blocks_forever() ? inbox_.push(message)
                                      : inbox_.push_for(message, this->block_timeout_);
    }
    if (pushed) return delivery_outcome::delivered;
    return inbox_.is_closed() ? delivery_outcome::closed : delivery_outcome::timed_out;
  }

  // Pops and discards the oldest message, then tries again. Another publisher may take the room
  // first, so this can take several rounds, but a round fails only when another push succeeded.
  delivery_outcome push_evicting(const T& message, std::uint32_t& evicted) {
    for (;;) {
      if (inbox_.try_pop().has_value()) this->count_eviction(evicted);
      if (inbox_.try_push(message)) return delivery_outcome::delivered;
      if (inbox_.is_closed()) return delivery_outcome::closed;
    }
  }

  std::size_t queued() const noexcept override { return inbox_.size(); }

  Ring inbox_;
};

// A subscription whose inbox is a work queue.
template <class T, class Role, class Queue>
class queue_target final : public fanout_target<T, Role> {
  using base = fanout_target<T, Role>;

 public:
  template <class Binding, class... QueueArgs>
  queue_target(Binding&& binding, const queue_inbox& config, QueueArgs&... queue_args)
      : base(std::forward<Binding>(binding), config.overflow, config.block_timeout),
        inbox_(config.queue, queue_args...) {}

  Queue& inbox() noexcept { return inbox_; }
  const Queue& inbox() const noexcept { return inbox_; }

  void close_inbox() noexcept override { inbox_.close(); }

 private:
  delivery_outcome deliver_to_inbox(const T& message, std::uint32_t& evicted,
                                    wait_scope& scope) override {
    send_result sent = inbox_.try_send(message);
    if (sent.status == send_status::full) {
      switch (this->overflow_) {
        case overflow_policy::block: {
          const wait_guard guard(scope);
          sent = this->blocks_forever() ? inbox_.send(message)
                                        : inbox_.send_for(message, this->block_timeout_);
          break;
        }
        case overflow_policy::drop_oldest:
          // Dead-letter the oldest visible message and try again. When nothing is visible
          // (every message is leased or delayed), the new message is dropped instead.
          while (sent.status == send_status::full && inbox_.try_evict_oldest()) {
            this->count_eviction(evicted);
            sent = inbox_.try_send(message);
          }
          break;
        case overflow_policy::drop_newest:
          break;
      }
    }
    switch (sent.status) {
      case send_status::ok:
        return delivery_outcome::delivered;
      case send_status::closed:
        return delivery_outcome::closed;
      case send_status::timeout:
        return delivery_outcome::timed_out;
      case send_status::full:
        break;
    }
    return delivery_outcome::dropped_newest;
  }

  std::size_t queued() const noexcept override { return inbox_.size(); }

  Queue inbox_;
};

// ---------------------------------------------------------------------------------------------
// The subscription table.
//
// Protocol. A fixed array of slots, each with a state word (bit 0: active), a target pointer and
// a holders count. With producers<multi>, publishers also enter a read section, as in sleepable
// RCU: two reader counts and an epoch whose low bit picks the count that new readers join.
// Shared fields and writers:
//   state     subscribe sets the active bit (S2), unsubscribe clears it (U1), under the mutex.
//   target    subscribe writes it (S1) before S2; unsubscribe clears it after U4. Between
//             them it is never rewritten.
//   holders   single: the publisher sets it to 1 on entering the slot (Q1) and to 0 on leaving
//             (Q3). multi: a publisher adds 1 before it waits for room in the slot's inbox and
//             leaves the read section (W1), and subtracts 1 after its delivery (W2).
//   epoch_    unsubscribe adds 1 (U2), under the mutex.
//   readers_  publishers join (R2) and leave (R4) the count that epoch_ picked.
//   used_     subscribe raises it, under the mutex, before S2: slots at or above it are free.
//   closed_   close() sets it under the mutex.
// Publisher with multi: (R1) e = epoch_ & 1; (R2) readers_[e] += 1; (R3) reload epoch_, and if
//   its low bit is no longer e, undo R2 and retry. Then for each slot below used_: load state;
//   if active, load target and deliver. (R4) readers_[e] -= 1 with release, pairing with U3. All
//   of R1-R3, the state loads, U1 and U2 are seq_cst.
// Publisher with single, for each slot: (P0) load state, relaxed, and skip an inactive slot;
//   (Q1) holders = 1; (F1) light_fence; (Q2) load state with acquire; if active, deliver;
//   (Q3) holders = 0 with release, pairing with U4.
// Subscribe, under the mutex: pick a free slot, (S1) store target, raise used_, (S2)
// state.fetch_or(active, release), pairing with the publishers' loads of state. Linearization
// point: S2.
// Unsubscribe, under the mutex: (U1) clear the active bit; with single, (F2) heavy_fence; close
// the inbox, which makes every publisher waiting in it for room return; with multi, (U2) flip
// epoch_ and (U3) wait until readers_[old low bit] is 0; (U4) wait until holders is 0, both with
// acquire loads. Linearization point: U1.
//   With multi, a publisher that read the slot active passed R3 before U2 in the seq_cst order
//   (else R3 would see the flip, or the state load would see U1), so it is counted in the count
//   that U3 waits for, until R4; or, if it waits for room, it raised holders before leaving the
//   section (W1) and U4 waits for W2. A publisher that passed R3 after U2 reads the slot
//   inactive. So when U4 returns, no publisher holds the target, and every access it made
//   happens before the return.
//   With single, F1 and F2 act as a full fence on each side, as in wake_channel (detail/wait.hpp):
//   either Q2 sees U1 and the publisher never reads target, or U4 sees Q1 and waits for Q3.
// Progress: publish never waits for subscribe, unsubscribe or close. R1-R3 retry only when an
// unsubscribe flips the epoch in between, so entering is lock-free. The scan is wait-free, and
// each delivery waits only as the inbox's overflow policy allows. Unsubscribe waits for the
// publishes that are scanning the table, and for the publishers waiting for room in its own
// inbox, which return when it closes that inbox. It never waits for a publisher that waits for
// room in another subscription's inbox.
template <class T, class Role>
class subscription_table {
 public:
  static constexpr bool single_publisher = std::is_same_v<Role, single>;
  static constexpr std::uint32_t active = 1;
  using target_type = fanout_target<T, Role>;

  struct alignas(cache_line) slot {
    std::atomic<std::uint32_t> state{0};
    std::atomic<std::uint32_t> holders{0};
    std::atomic<target_type*> target{nullptr};
  };

  explicit subscription_table(std::size_t size)
      : slots_(std::make_unique<slot[]>(size)), size_(size) {}

  std::size_t size() const noexcept { return size_; }
  // Slots [0, used()) may be active. Relaxed: a publish that happens after a subscribe reads
  // that subscribe's value by coherence, and an older value only delays an overlapping publish.
  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  slot& at(std::size_t index) noexcept { return slots_[index]; }

  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  std::size_t active_count() const noexcept {
    return active_count_.load(std::memory_order_relaxed);  // a snapshot for observers
  }

  // (R1)-(R3): joins the read section and returns the index of the count it joined.
  std::uint32_t enter() noexcept requires(!single_publisher) {
    for (;;) {
      const std::uint32_t e = epoch_.load(std::memory_order_seq_cst) & 1;  // (R1)
      readers_[e].count.fetch_add(1, std::memory_order_seq_cst);           // (R2)
      RINGMQ_PREEMPTION_POINT();
      if ((epoch_.load(std::memory_order_seq_cst) & 1) == e) return e;     // (R3)
      readers_[e].count.fetch_sub(1, std::memory_order_release);
    }
  }

  // (R4) Release: pairs with U3, so that the section's accesses happen before a free.
  void leave(std::uint32_t e) noexcept requires(!single_publisher) {
    readers_[e].count.fetch_sub(1, std::memory_order_release);
  }

  // Puts `target` in a free slot. Returns false, changing nothing, when the table is closed.
  // Throws std::length_error when every slot is in use.
  bool add(target_type& target) {
    const std::lock_guard lock(mutex_);
    if (closed_.load(std::memory_order_relaxed)) return false;  // written under this mutex
    std::size_t index = 0;
    while (index < size_ && slots_[index].target.load(std::memory_order_relaxed) != nullptr) {
      ++index;  // target is written only under this mutex
    }
    if (index == size_) {
      throw std::length_error("ringmq::topic: all " + std::to_string(size_) +
                              " subscription slots are in use; destroy a subscription first, or "
                              "raise topic_config.max_subscriptions");
    }
    slot& s = slots_[index];
    s.target.store(&target, std::memory_order_relaxed);  // (S1), published by S2
    if (index >= used_.load(std::memory_order_relaxed)) {
      used_.store(index + 1, std::memory_order_relaxed);  // publishers read it by coherence
    }
    target.slot.store(index, std::memory_order_relaxed);
    active_count_.fetch_add(1, std::memory_order_relaxed);
    RINGMQ_PREEMPTION_POINT();
    s.state.fetch_or(active, std::memory_order_release);  // (S2)
    return true;
  }

  // Takes `target` out of its slot, closes its inbox and waits until no publisher can reach it.
  // Does nothing for a target not in a slot.
  void remove(target_type& target) noexcept {
    const std::lock_guard lock(mutex_);
    const std::size_t index = target.slot.load(std::memory_order_relaxed);  // under the mutex
    if (index == target_type::no_slot) return;
    slot& s = slots_[index];
    s.state.fetch_and(~active, std::memory_order_seq_cst);  // (U1)
    if constexpr (single_publisher) heavy_fence();          // (F2), pairs with F1
    RINGMQ_PREEMPTION_POINT();
    target.close_inbox();
    if constexpr (!single_publisher) {
      const std::uint32_t old = epoch_.fetch_add(1, std::memory_order_seq_cst) & 1;  // (U2)
      RINGMQ_PREEMPTION_POINT();
      wait_until_zero(readers_[old].count);                                          // (U3)
    }
    // (U4)
    wait_until_zero(s.holders);
    s.target.store(nullptr, std::memory_order_relaxed);  // read only under this mutex now
    target.slot.store(target_type::no_slot, std::memory_order_relaxed);
    active_count_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Stops new subscriptions and closes the inbox of every subscription in the table.
  void close() noexcept {
    const std::lock_guard lock(mutex_);
    closed_.store(true, std::memory_order_release);  // pairs with is_closed()
    for (std::size_t index = 0; index < used_.load(std::memory_order_relaxed); ++index) {
      target_type* target = slots_[index].target.load(std::memory_order_relaxed);
      if (target != nullptr) target->close_inbox();
    }
  }

 private:
  // A reader count on a line of its own: every publish writes one of them twice.
  struct alignas(cache_line) reader_count {
    std::atomic<std::uint32_t> count{0};
  };

  // Acquire: pairs with the release that brought the count down, R4, Q3 or W2. The publishers
  // counted finish a scan or a delivery each, without waiting for this thread.
  static void wait_until_zero(const std::atomic<std::uint32_t>& count) noexcept {
    for (std::uint32_t round = 0; count.load(std::memory_order_acquire) != 0; ++round) {
      if (round < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  std::unique_ptr<slot[]> slots_;
  const std::size_t size_;
  std::atomic<std::size_t> used_{0};
  std::atomic<std::size_t> active_count_{0};
  std::atomic<bool> closed_{false};
  std::atomic<std::uint32_t> epoch_{0};
  reader_count readers_[2];
  std::mutex mutex_;  // serializes add, remove and close
};

}  // namespace detail

// A binding predicate, which publishing threads call, possibly several at once, with the routing
// key and the message. A string is a pattern, never a predicate. clang-format 14 mangles the
// arguments of std::predicate, so it skips this concept.
// clang-format off
template <class Pred, class T>
concept topic_predicate = !std::convertible_to<Pred, std::string_view> &&
                          std::constructible_from<std::decay_t<Pred>, Pred> &&
                          std::predicate<const std::decay_t<Pred>&, std::string_view, const T&>;
// clang-format on

template <class T, class... Options>
class topic {
  static_assert(std::is_object_v<T> && !std::is_const_v<T> && std::copy_constructible<T> &&
                    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "ringmq::topic<T>: T must be copy-constructible, because every subscription "
                "gets its own copy, and its move constructor and destructor must be noexcept; "
                "for a move-only payload, publish a std::shared_ptr to it");

  using options = detail::topic_options<Options...>;
  static_assert(options::all_known);
  using role = typename options::publisher_role;
  static constexpr bool single_publisher = std::is_same_v<role, single>;
  using table_type = detail::subscription_table<T, role>;
  using target_type = detail::fanout_target<T, role>;

 public:
  using value_type = T;
  // The inbox of a ring subscription. Publishers push into it and, to drop the oldest, pop from
  // it. Consumers on any number of threads pop.
  using ring_type = ring<T, producers<role>, consumers<multi>, wait<typename options::wait_policy>,
                         slot_layout<typename options::layout>>;

  // A subscription: a move-only handle that owns the inbox. Destroying it, or calling
  // unsubscribe(), removes the subscription from the topic. Consumers of one subscription,
  // on any number of threads, compete for its messages through inbox().
  template <class Inbox>
  class subscription {
    using target_type =
        std::conditional_t<std::is_same_v<Inbox, ring_type>, detail::ring_target<T, role, Inbox>,
                           detail::queue_target<T, role, Inbox>>;

   public:
    using inbox_type = Inbox;

    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& other) noexcept {
      if (this != &other) {
        unsubscribe();
        table_ = std::move(other.table_);
        target_ = std::move(other.target_);
      }
      return *this;
    }

    // Unsubscribes, then destroys the inbox with every message still in it.
    ~subscription() { unsubscribe(); }

    // The inbox the consumers take messages from. Throws std::logic_error for a moved-from
    // subscription.
    Inbox& inbox() { return checked_target().inbox(); }
    const Inbox& inbox() const { return checked_target().inbox(); }

    // Stops deliveries to this subscription and closes its inbox, so that consumers drain what
    // is left and then find it closed. Returns once no publish can reach it. Idempotent. A
    // publish that overlaps the call may or may not deliver. Must not be called from a binding
    // predicate, which would wait for its own publish.
    void unsubscribe() noexcept {
      if (target_ == nullptr) return;
      table_->remove(*target_);
      target_->close_inbox();  // a subscription made after close() was never in the table
    }

    // Whether publishes still reach this subscription: false after unsubscribe(), for a
    // subscription made after the topic was closed, and for a moved-from one.
    bool is_subscribed() const noexcept {
      return target_ != nullptr &&
             target_->slot.load(std::memory_order_relaxed) != target_type::no_slot;
    }

    // Counters since the subscription was made. queued is the inbox's current size.
    subscription_stats stats() const { return checked_target().stats(); }

    // The binding pattern, or "" for a subscription that binds with a predicate.
    std::string_view pattern() const { return checked_target().pattern(); }
    overflow_policy overflow() const { return checked_target().overflow(); }

   private:
    friend class topic;

    subscription(std::shared_ptr<table_type> table, std::unique_ptr<target_type> target)
        : table_(std::move(table)), target_(std::move(target)) {}

    target_type& checked_target() const {
      if (target_ == nullptr) {
        throw std::logic_error(
            "ringmq::topic::subscription: this subscription was moved from; use the one it was "
            "moved to");
      }
      return *target_;
    }

    // Shared, so that a subscription may outlive its topic and still remove itself.
    std::shared_ptr<table_type> table_;
    std::unique_ptr<target_type> target_;
  };

  using ring_subscription = subscription<ring_type>;
  using queue_subscription = subscription<work_queue<T>>;

  // Creates a topic with no subscriptions. Throws std::invalid_argument for a max_subscriptions
  // of 0 and std::length_error above max_table_size.
  explicit topic(const topic_config& config = {})
      : table_(std::make_shared<table_type>(checked(config).max_subscriptions)) {}

  topic(const topic&) = delete;
  topic& operator=(const topic&) = delete;

  // Closes the topic. Subscriptions may outlive it: their inboxes are closed and drain.
  ~topic() { close(); }

  // The largest max_subscriptions accepted, because every publish scans the slots in use.
  static constexpr std::size_t max_table_size = std::size_t{1} << 16;

  // ---- subscribe -----------------------------------------------------------------------------
  // Each creates a subscription with the given binding and inbox. Every publish that happens
  // after the call returns reaches it, and a publish that overlaps the call may or may not. On a
  // closed topic the subscription is created with its inbox closed and is not subscribed.
  // Throws std::invalid_argument for an invalid pattern or inbox config, and std::length_error
  // when max_subscriptions subscriptions exist.

  ring_subscription subscribe(std::string_view pattern, const ring_inbox& inbox = {}) {
    check(inbox.capacity, inbox.overflow, inbox.block_timeout);
    return add<ring_type>(
        std::make_unique<detail::ring_target<T, role, ring_type>>(pattern, inbox));
  }

  // Binds with predicate(routing_key, message), which publishing threads call, several at once.
  // It must not call subscribe, unsubscribe or close on this topic.
  template <topic_predicate<T> Pred>
  ring_subscription subscribe(Pred&& predicate, const ring_inbox& inbox = {}) {
    check(inbox.capacity, inbox.overflow, inbox.block_timeout);
    return add<ring_type>(std::make_unique<detail::ring_target<T, role, ring_type>>(
        std::forward<Pred>(predicate), inbox));
  }

  // A work-queue subscription. Queue is work_queue<T> or a work_queue<T, Options...> with other
  // options. `queue_args`, such as a manual_clock, follow inbox.queue to its constructor.
  template <class Queue = work_queue<T>, class... QueueArgs>
  subscription<Queue> subscribe(std::string_view pattern, const queue_inbox& inbox,
                                QueueArgs&... queue_args) {
    static_assert_queue<Queue>();
    check(1, inbox.overflow, inbox.block_timeout);
    return add<Queue>(
        std::make_unique<detail::queue_target<T, role, Queue>>(pattern, inbox, queue_args...));
  }

  template <class Queue = work_queue<T>, topic_predicate<T> Pred, class... QueueArgs>
  subscription<Queue> subscribe(Pred&& predicate, const queue_inbox& inbox,
                                QueueArgs&... queue_args) {
    static_assert_queue<Queue>();
    check(1, inbox.overflow, inbox.block_timeout);
    return add<Queue>(std::make_unique<detail::queue_target<T, role, Queue>>(
        std::forward<Pred>(predicate), inbox, queue_args...));
  }

  // ---- publish -------------------------------------------------------------------------------

  // Hands a copy of `message` to every subscription whose binding matches `routing_key`, one
  // after another, following each one's overflow policy. Waits only for a subscription whose
  // policy is block and whose inbox is full, at most that subscription's block_timeout each.
  // Takes no mutex and allocates nothing unless T's copy constructor does (a work-queue inbox
  // that evicts also allocates the dead letter's text and takes its dead-letter queue's
  // mutex). An exception from T's copy constructor or from a predicate propagates. The
  // subscriptions visited before keep their copies, and the rest get none.
  publish_result publish(std::string_view routing_key, const T& message) {
    publish_result result;
    if (table_->is_closed()) {
      result.status = publish_status::closed;
      return result;
    }
    if constexpr (single_publisher) {
      publish_alone(routing_key, message, result);
    } else {
      publish_among_others(routing_key, message, result);
    }
    return result;
  }

  // Publishes with the routing key "", which has zero words. It matches the patterns "" and "#"
  // (and "#.#" and so on), and every predicate receives "".
  publish_result publish(const T& message) { return publish(std::string_view{}, message); }

  // ---- state ---------------------------------------------------------------------------------

  // Makes every later publish return closed, closes every subscription's inbox so that its
  // consumers drain it, and wakes publishes waiting for room. Idempotent.
  void close() noexcept { table_->close(); }
  bool is_closed() const noexcept { return table_->is_closed(); }

  // Subscriptions in the topic now. While other threads subscribe it is a snapshot.
  std::size_t subscription_count() const noexcept { return table_->active_count(); }
  std::size_t max_subscriptions() const noexcept { return table_->size(); }

 private:
  // ---- publish internals ---------------------------------------------------------------------

  void publish_among_others(std::string_view routing_key, const T& message,
                            publish_result& result) requires(!single_publisher) {
    read_section section(*table_);  // (R1)-(R3), and (R4) when it leaves scope
    const std::size_t used = table_->used();
    for (std::size_t index = 0; index < used; ++index) {
      typename table_type::slot& s = table_->at(index);
      // Seq_cst: ordered against U1 and U2, see the protocol. It also acquires S2's release.
      if ((s.state.load(std::memory_order_seq_cst) & table_type::active) == 0) continue;
      target_type& target = *s.target.load(std::memory_order_relaxed);  // published by S2
      if (!target.matches(routing_key, message)) continue;

      ++result.matched;
      slot_pin pin(section, s);  // (W1) and (W2) around a wait for room
      record(target.deliver(message, result.dropped_oldest, pin), result);
    }
  }

  void publish_alone(std::string_view routing_key, const T& message,
                     publish_result& result) requires single_publisher {
    const std::size_t used = table_->used();
    for (std::size_t index = 0; index < used; ++index) {
      typename table_type::slot& s = table_->at(index);
      // (P0) A hint: a slot seen inactive here is skipped without entering it.
      if ((s.state.load(std::memory_order_relaxed) & table_type::active) == 0) continue;
      const slot_entry entry(s);  // (Q1), (F1), (Q2), and (Q3) when it leaves scope
      if (!entry.active()) continue;
      target_type& target = *s.target.load(std::memory_order_relaxed);  // ordered by Q2
      if (!target.matches(routing_key, message)) continue;

      ++result.matched;
      no_wait_scope scope;  // the entry keeps the slot held while the delivery waits
      record(target.deliver(message, result.dropped_oldest, scope), result);
    }
  }

  static void record(detail::delivery_outcome outcome, publish_result& result) noexcept {
    switch (outcome) {
      case detail::delivery_outcome::delivered:
        ++result.delivered;
        break;
      case detail::delivery_outcome::timed_out:
        ++result.timed_out;
        ++result.dropped;
        break;
      case detail::delivery_outcome::dropped_newest:
      case detail::delivery_outcome::closed:
        ++result.dropped;
        break;
    }
  }

  // A publish's membership in the table's read section, with producers<multi>.
  class read_section {
   public:
    explicit read_section(table_type& table) noexcept : table_(table), epoch_(table.enter()) {}
    read_section(const read_section&) = delete;
    read_section& operator=(const read_section&) = delete;
    ~read_section() { table_.leave(epoch_); }

    void leave() noexcept { table_.leave(epoch_); }
    void enter() noexcept { epoch_ = table_.enter(); }

   private:
    table_type& table_;
    std::uint32_t epoch_;
  };

  // Holds one slot while its delivery waits for room outside the read section, so that an
  // unsubscribe of another subscription need not wait for it.
  class slot_pin final : public detail::wait_scope {
   public:
    slot_pin(read_section& section, typename table_type::slot& s) noexcept
        : section_(section), slot_(s) {}
    slot_pin(const slot_pin&) = delete;
    slot_pin& operator=(const slot_pin&) = delete;

    // (W2) Release: pairs with U4, so that the delivery's accesses happen before a free.
    ~slot_pin() {
      if (pinned_) slot_.holders.fetch_sub(1, std::memory_order_release);
    }

    // (W1) Relaxed: R4 in leave() releases it, and U3's acquire of R4 orders it before U4.
    void before_wait() noexcept override {
      if (!pinned_) slot_.holders.fetch_add(1, std::memory_order_relaxed);
      pinned_ = true;
      section_.leave();
    }

    void after_wait() noexcept override { section_.enter(); }

   private:
    read_section& section_;
    typename table_type::slot& slot_;
    bool pinned_ = false;
  };

  // Does nothing around a wait, because with a single publisher the slot_entry keeps the slot
  // held, and an unsubscribe waits only for the holders of its own slot.
  class no_wait_scope final : public detail::wait_scope {
   public:
    void before_wait() noexcept override {}
    void after_wait() noexcept override {}
  };

  // The single publisher's presence in one slot, from Q1 to Q3.
  class slot_entry {
   public:
    explicit slot_entry(typename table_type::slot& s) noexcept : slot_(s) {
      s.holders.store(1, std::memory_order_relaxed);  // (Q1), ordered by F1
      detail::light_fence();                          // (F1), pairs with F2 in remove
      RINGMQ_PREEMPTION_POINT();
      // (Q2) Acquire: pairs with S2, so that target and its subscription are visible.
      state_ = s.state.load(std::memory_order_acquire);
    }
    slot_entry(const slot_entry&) = delete;
    slot_entry& operator=(const slot_entry&) = delete;

    // (Q3) Release: pairs with U4, so that this publisher's accesses to the subscription happen
    // before it is destroyed.
    ~slot_entry() { slot_.holders.store(0, std::memory_order_release); }

    bool active() const noexcept { return (state_ & table_type::active) != 0; }

   private:
    typename table_type::slot& slot_;
    std::uint32_t state_ = 0;
  };

  static const topic_config& checked(const topic_config& config) {
    if (config.max_subscriptions == 0) {
      throw std::invalid_argument("ringmq::topic: max_subscriptions 0 is invalid; pass at least 1");
    }
    if (config.max_subscriptions > max_table_size) {
      throw std::length_error("ringmq::topic: max_subscriptions " +
                              std::to_string(config.max_subscriptions) +
                              " is too large; pass at most " + std::to_string(max_table_size) +
                              ", because every publish scans the slots in use");
    }
    return config;
  }

  // Throws std::invalid_argument naming the first inbox field that cannot work.
  static void check(std::size_t capacity, overflow_policy overflow,
                    std::chrono::nanoseconds block_timeout) {
    if (capacity == 0) {
      throw std::invalid_argument(
          "ringmq::topic: ring_inbox capacity 0 is invalid; pass a capacity of at least 1");
    }
    if (overflow != overflow_policy::block && overflow != overflow_policy::drop_oldest &&
        overflow != overflow_policy::drop_newest) {
      throw std::invalid_argument("ringmq::topic: overflow " +
                                  std::to_string(static_cast<int>(overflow)) +
                                  " is not an overflow_policy; pass block, drop_oldest or "
                                  "drop_newest");
    }
    if (overflow == overflow_policy::block && block_timeout <= std::chrono::nanoseconds::zero()) {
      throw std::invalid_argument("ringmq::topic: block_timeout " +
                                  std::to_string(block_timeout.count()) +
                                  " ns is invalid with overflow block; pass a positive duration, "
                                  "nanoseconds::max() to wait until there is room, or use "
                                  "overflow drop_newest");
    }
  }

  template <class Queue>
  static constexpr void static_assert_queue() {
    static_assert(detail::is_work_queue_of<Queue, T>,
                  "ringmq::topic::subscribe: Queue must be ringmq::work_queue<T, Options...> "
                  "with the topic's T");
  }

  template <class Inbox, class Target>
  subscription<Inbox> add(std::unique_ptr<Target> target) {
    if (!table_->add(*target)) target->close_inbox();  // the topic is closed
    return subscription<Inbox>(table_, std::move(target));
  }

  std::shared_ptr<table_type> table_;
};

}  // namespace ringmq
