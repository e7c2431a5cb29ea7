// ringmq::worker_pool: threads that receive from a work queue, call a handler on each delivery
// and settle it by the handler's result, extending leases while handlers run.
//
//   ringmq::work_queue<job> queue{{.visibility_timeout = 30s, .max_receive_count = 5}};
//   ringmq::worker_pool pool(queue, [](job& body) {
//     return run(body) ? ringmq::handler_result::ack : ringmq::handler_result::retry;
//   }, {.threads = 4});
//   ...
//   pool.stop();  // waits for the running handlers; nothing is lost
//
// Each worker thread loops: receive_for(poll), call the handler, then settle. The handler's
// result picks the settle: ack deletes the message, retry nacks it (the queue's backoff and
// max_receive_count apply), reject dead-letters it. A handler that throws counts as retry, and
// the exception's message becomes the dead letter's detail when that failure dead-letters the
// message.
//
// A keeper thread extends the lease of every handler that runs long: when less than
// extend_at * visibility_timeout is left on a lease, it extends the lease by visibility_timeout,
// so a slow handler keeps its message instead of seeing it handed to another worker. A handler
// that never returns keeps its message leased for as long as the pool runs, and stop() waits for
// it.
//
// Protocol. Each worker owns a worker_slot: a mutex, the receipt of the delivery in its handler,
// the estimated lease end and a busy flag, and counters that only this worker writes.
//   worker: (W1) read the queue's clock into start  (W2) receive  (W3) under the slot mutex
//           publish receipt, lease end = start + visibility_timeout, busy = true  (W4) call the
//           handler  (W5) settle with its own copy of the receipt  (W6) under the mutex clear
//           busy.
//   keeper: every keeper period, for each slot, under its mutex: when busy and the lease end is
//           within the extension window, read the clock into at, extend, and on success set the
//           lease end to at + visibility_timeout.
// The queue starts a lease at a clock reading taken after W1, and an extend reads the clock after
// `at`, so a stored lease end is never later than the queue's: the keeper may extend early, never
// late. The keeper reads a receipt only under the slot mutex, and the worker writes it only
// under the same mutex, which also orders the accesses. A settle and an extend of the same lease
// may race inside the queue, which lets exactly one of them win, and an extend of a settled
// lease returns false. Progress: a worker blocks only in receive_for, in its handler, and on its
// own slot mutex, which the keeper holds for one extend; workers share no lock with each other.
//
// stop() sets the stop flag, joins the workers (each finishes and settles the handler it is in;
// a delivery received after the flag was set is released, visible again at once), then stops and
// joins the keeper, which therefore extends leases until the last handler has settled.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ringmq/detail/message_slot.hpp"
#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/time.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/work_queue.hpp"

namespace ringmq {

// A handler's decision on a delivery, which picks how the pool settles it.
enum class handler_result : std::uint8_t {
  ack,     // done: delete the message
  retry,   // failed: nack it, so the queue's backoff and max_receive_count apply
  reject,  // cannot be handled: dead-letter it at once with reason rejected
};

constexpr std::string_view to_string(handler_result result) noexcept {
  switch (result) {
    case handler_result::ack:
      return "ack";
    case handler_result::retry:
      return "retry";
    case handler_result::reject:
      return "reject";
  }
  return "unknown";
}

// Numbers of a worker pool, fixed at construction.
struct worker_pool_config {
  std::size_t threads = 1;  // worker threads, each running one handler at a time
  // How long one receive_for waits on steady_clock. It bounds how long stop() waits for a worker
  // that is waiting for a message, and how often a worker looks at a closed, empty queue again.
  // nanoseconds::max() never times out, so stop() then waits until each waiting worker gets a
  // message or the queue is closed and drained.
  std::chrono::nanoseconds poll = std::chrono::milliseconds(50);
  // The keeper extends a lease when less than this fraction of the queue's visibility_timeout is
  // left on it. 0 turns lease extension off and starts no keeper thread.
  double extend_at = 0.5;
};

// Counts since construction, exact once stop() has returned. While the pool runs, a count may
// lag by the handlers being settled. handled == acked + retried + rejected + failed +
// expired_leases.
struct worker_pool_stats {
  std::uint64_t handled = 0;         // handler calls that returned or threw
  std::uint64_t acked = 0;           // results ack whose ack took effect
  std::uint64_t retried = 0;         // results retry whose nack took effect
  std::uint64_t rejected = 0;        // results reject whose reject took effect
  std::uint64_t failed = 0;          // handler exceptions whose nack took effect
  std::uint64_t expired_leases = 0;  // settles that had no effect because the lease had ended
  std::uint64_t extended = 0;        // lease extensions by the keeper that took effect
  std::uint64_t receive_errors = 0;  // receives that threw because copying a body threw
};

// A handler for Queue: callable through a const reference with the delivery, or with the body
// alone, returning handler_result. When both calls are valid, the pool passes the delivery.
template <class Handler, class Queue>
concept worker_handler = std::move_constructible<Handler> &&
    (std::is_invocable_r_v<handler_result, const Handler&, typename Queue::delivery_type&> ||
     std::is_invocable_r_v<handler_result, const Handler&, typename Queue::value_type&>);

namespace detail {

// The pool whose worker runs on this thread, so that stop() can tell that a handler called it.
inline thread_local const void* running_worker_pool = nullptr;

template <class F>
struct is_std_function : std::false_type {};
template <class Signature>
struct is_std_function<std::function<Signature>> : std::true_type {};

// Throws std::invalid_argument naming the first field of config that cannot work.
inline void check_worker_pool_config(const worker_pool_config& config) {
  const auto fail = [](const std::string& what) {
    throw std::invalid_argument("ringmq::worker_pool: " + what);
  };
  if (config.threads == 0) fail("threads 0 is invalid; pass at least 1");
  if (config.poll <= std::chrono::nanoseconds::zero()) {
    fail("poll " + std::to_string(config.poll.count()) +
         " ns is invalid; pass a positive duration");
  }
  if (!(config.extend_at >= 0.0 && config.extend_at < 1.0)) {
    fail("extend_at " + std::to_string(config.extend_at) +
         " is invalid; pass a fraction in [0, 1), or 0 to turn lease extension off");
  }
}

}  // namespace detail

// Runs a handler on `threads` threads over the messages of one work queue. Queue is a
// work_queue specialization; the queue must outlive the pool.
//
// Thread safety: stats(), stop_requested() and request_stop() may be called from any thread,
// handlers included. stop() and the destructor may be called from any thread except the pool's
// own workers.
template <class Queue>
class worker_pool {
 public:
  using queue_type = Queue;
  using value_type = typename Queue::value_type;
  using delivery_type = typename Queue::delivery_type;

  // Starts config.threads workers, and the keeper unless config.extend_at is 0, receiving from
  // `queue` at once. The pool stores one handler and calls it from every worker at the same
  // time, through a const reference, so it must be safe to call concurrently. The handler must
  // not settle the delivery (ack, nack, release, reject), because the pool settles it by the
  // result. It may extend the lease, and the keeper still extends it by visibility_timeout on
  // its own schedule. Throws std::invalid_argument for a config that cannot work or an empty
  // std::function or function pointer, and std::system_error when a thread cannot start.
  template <class Handler>
  worker_pool(Queue& queue, Handler handler, const worker_pool_config& config = {})
      : queue_(queue),
        config_(checked(config)),
        lease_(queue.config().visibility_timeout),
        window_(extension_window(config.extend_at, queue.config().visibility_timeout)),
        handler_(make_handler(std::move(handler))),
        slots_(std::make_unique<worker_slot[]>(config.threads)) {
    static_assert(worker_handler<Handler, Queue>,
                  "ringmq::worker_pool: the handler must be callable through a const reference "
                  "with Queue::delivery_type& or Queue::value_type& and return handler_result; a "
                  "mutable lambda is not, because every worker calls the one handler at once");
    try {
      workers_.reserve(config_.threads);
      for (std::size_t index = 0; index < config_.threads; ++index) {
        workers_.emplace_back([this, index] { run_worker(slots_[index]); });
      }
      if (extends_leases()) keeper_ = std::thread([this] { run_keeper(); });
    } catch (...) {
      stop();
      throw;
    }
  }

  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  // Calls stop().
  ~worker_pool() { stop(); }

  // Asks every worker to stop after the handler it is in; returns at once. A handler may call
  // it, for example to stop the pool on a fatal error.
  void request_stop() {
    {
      std::lock_guard lock(wake_mutex_);
      // Release: pairs with the acquire in stop_requested().
      stopping_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
  }

  bool stop_requested() const noexcept { return stopping_.load(std::memory_order_acquire); }

  // Stops receiving, waits for each worker to finish and settle the handler it is in, and
  // joins every thread, the keeper last. Afterwards every message the pool received has been
  // acked, nacked or rejected as its handler decided, or released: none is lost, and none is
  // left leased by the pool. The queue stays open. Waits up to config.poll for a worker that
  // waits for a message, plus the running handlers. Calling it again does nothing; concurrent
  // calls all return after the threads are joined. Throws std::logic_error when called from a
  // handler, which would wait for itself: call request_stop() there.
  void stop() {
    if (detail::running_worker_pool == this) {
      throw std::logic_error(
          "ringmq::worker_pool::stop: called from a handler, which would wait for itself; call "
          "request_stop() in the handler and stop() from another thread");
    }
    std::lock_guard join_lock(join_mutex_);
    request_stop();
    for (std::thread& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
    {
      std::lock_guard lock(wake_mutex_);
      keeper_stopping_ = true;
    }
    wake_.notify_all();
    if (keeper_.joinable()) keeper_.join();
  }

  // Sums the workers' and the keeper's counters. Costs O(threads).
  worker_pool_stats stats() const noexcept {
    worker_pool_stats result;
    for (std::size_t index = 0; index < config_.threads; ++index) {
      const counters& c = slots_[index].counts;
      result.acked += c.acked.read();
      result.retried += c.retried.read();
      result.rejected += c.rejected.read();
      result.failed += c.failed.read();
      result.expired_leases += c.expired_leases.read();
      result.receive_errors += c.receive_errors.read();
    }
    result.handled =
        result.acked + result.retried + result.rejected + result.failed + result.expired_leases;
    result.extended = extended_.read();
    return result;
  }

  const worker_pool_config& config() const noexcept { return config_; }

 private:
  using nanos = detail::nanos;

  // Handler calls go through one virtual call, so that the pool's type names only the queue.
  struct handler_base {
    virtual ~handler_base() = default;
    virtual handler_result operator()(delivery_type& delivery) const = 0;
  };

  template <class Handler>
  struct handler_model final : handler_base {
    explicit handler_model(Handler&& callable) : handler(std::move(callable)) {}

    handler_result operator()(delivery_type& delivery) const override {
      if constexpr (std::is_invocable_r_v<handler_result, const Handler&, delivery_type&>) {
        return std::invoke(handler, delivery);
      } else {
        return std::invoke(handler, delivery.body());
      }
    }

    Handler handler;
  };

  struct counters {
    detail::owned_counter acked;
    detail::owned_counter retried;
    detail::owned_counter rejected;
    detail::owned_counter failed;
    detail::owned_counter expired_leases;
    detail::owned_counter receive_errors;
  };

  // One worker's state. Only the worker writes the counters, and it shares the fields under
  // mutex with the keeper.
  struct alignas(detail::cache_line) worker_slot {
    std::mutex mutex;
    receipt lease;        // guarded by mutex: the delivery in the handler
    nanos lease_end = 0;  // guarded by mutex: on the queue's clock, never later than the queue's
    bool busy = false;    // guarded by mutex: a handler runs with `lease`
    counters counts;
  };

  static const worker_pool_config& checked(const worker_pool_config& config) {
    detail::check_worker_pool_config(config);
    if (config.threads > std::numeric_limits<std::size_t>::max() / sizeof(worker_slot)) {
      throw std::length_error("ringmq::worker_pool: threads " + std::to_string(config.threads) +
                              " is too large: the pool's bookkeeping of " +
                              std::to_string(sizeof(worker_slot)) +
                              " bytes per thread overflows std::size_t; pass a smaller count");
    }
    return config;
  }

  static nanos extension_window(double extend_at, std::chrono::nanoseconds lease) noexcept {
    // Round up, so that a positive extend_at never turns extension off. extend_at < 1, so the
    // result is at most lease and fits in nanos.
    return static_cast<nanos>(std::ceil(extend_at * static_cast<double>(lease.count())));
  }

  template <class Handler>
  static std::unique_ptr<handler_base> make_handler(Handler&& handler) {
    if constexpr (std::is_pointer_v<Handler> || detail::is_std_function<Handler>::value) {
      if (handler == nullptr) {
        throw std::invalid_argument("ringmq::worker_pool: handler is empty; pass a callable");
      }
    }
    return std::make_unique<handler_model<Handler>>(std::move(handler));
  }

  bool extends_leases() const noexcept { return window_ > 0; }

  nanos now_ns() const noexcept {
    return detail::saturating_nanoseconds(queue_.now().time_since_epoch());
  }

  // Sleeps up to `period` on steady_clock, or until `done` holds after a wake-up. The deadline
  // saturates, because condition_variable::wait_for adds the period to now() unchecked, and a
  // poll of nanoseconds::max() would overflow there.
  template <class Done>
  void sleep_unless(std::chrono::nanoseconds period, Done done) {
    std::unique_lock lock(wake_mutex_);
    wake_.wait_until(lock, detail::deadline_after(period), done);
  }

  void run_worker(worker_slot& slot) {
    detail::running_worker_pool = this;
    while (!stop_requested()) {
      const nanos start = extends_leases() ? now_ns() : 0;  // (W1)
      RINGMQ_PREEMPTION_POINT();
      std::optional<delivery_type> delivery;
      try {
        delivery = queue_.receive_for(config_.poll);  // (W2)
      } catch (...) {
        // The queue made the message visible again before rethrowing. Pause before the next
        // receive, so that a body whose copy always throws does not keep this thread spinning.
        slot.counts.receive_errors.bump();
        sleep_unless(config_.poll, [this] { return stop_requested(); });
        continue;
      }
      if (!delivery) {
        // A closed queue with nothing visible returns at once, so pause instead of spinning
        // until a lease ends or a delayed message becomes visible.
        if (queue_.is_closed()) sleep_unless(config_.poll, [this] { return stop_requested(); });
        continue;
      }
      if (stop_requested()) {
        queue_.release(delivery->receipt());  // received during stop: give it back untouched
        break;
      }
      handle(slot, *delivery, start);
    }
  }

  void handle(worker_slot& slot, delivery_type& delivery, nanos start) {
    const receipt lease = delivery.receipt();
    if (extends_leases()) {  // (W3)
      std::lock_guard lock(slot.mutex);
      slot.lease = lease;
      slot.lease_end = detail::saturating_add(start, lease_.count());
      slot.busy = true;
    }

    RINGMQ_PREEMPTION_POINT();
    settle(slot.counts, lease, call_handler(delivery));  // (W4), (W5)

    RINGMQ_PREEMPTION_POINT();
    if (extends_leases()) {  // (W6)
      std::lock_guard lock(slot.mutex);
      slot.busy = false;
    }
  }

  // The handler's outcome: its result, or the text of the exception it threw.
  struct outcome {
    handler_result result = handler_result::retry;
    bool threw = false;
    std::string error;
  };

  outcome call_handler(delivery_type& delivery) const {
    outcome out;
    try {
      out.result = (*handler_)(delivery);
      return out;
    } catch (const std::exception& error) {
      out.threw = true;
      out.error = copy_text(error.what());
    } catch (...) {
      out.threw = true;
      out.error = copy_text("handler threw an exception that is not a std::exception");
    }
    return out;
  }

  // Copies an exception's text, or returns an empty one when memory runs out.
  static std::string copy_text(const char* text) noexcept {
    try {
      return std::string(text != nullptr ? text : "");
    } catch (...) {
      return std::string();
    }
  }

  void settle(counters& counts, const receipt& lease, const outcome& out) {
    bool settled = false;
    detail::owned_counter* counter = &counts.failed;
    if (out.threw) {
      settled = queue_.nack(lease, std::string_view(out.error));
    } else {
      switch (out.result) {
        case handler_result::ack:
          settled = queue_.ack(lease);
          counter = &counts.acked;
          break;
        case handler_result::retry:
          settled = queue_.nack(lease);
          counter = &counts.retried;
          break;
        case handler_result::reject:
          settled = queue_.reject(lease, "rejected by handler");
          counter = &counts.rejected;
          break;
        default:
          // A value outside the enumeration: a bug in the handler, so count it as a failure.
          settled = queue_.nack(lease, "handler returned a value that is not a handler_result");
          break;
      }
    }
    if (settled) {
      counter->bump();
    } else {
      counts.expired_leases.bump();
    }
  }

  void run_keeper() {
    // A quarter of the extension window between passes, so that a lease gets about four passes
    // between entering the window and ending. Poll caps the period, so that a jump of a test
    // clock is seen soon.
    // NOTE: the period is at least 100 us. A window under 400 us (a visibility_timeout of about
    // a millisecond) may therefore let a lease end between two passes.
    const auto period = std::max<std::chrono::nanoseconds>(
        std::chrono::microseconds(100),
        std::min(config_.poll, std::chrono::nanoseconds(window_ / 4)));
    for (;;) {
      {
        std::unique_lock lock(wake_mutex_);
        if (wake_.wait_for(lock, period, [this] { return keeper_stopping_; })) return;
      }
      extend_ending_leases();
    }
  }

  void extend_ending_leases() {
    for (std::size_t index = 0; index < config_.threads; ++index) {
      worker_slot& slot = slots_[index];
      std::lock_guard lock(slot.mutex);
      if (!slot.busy) continue;
      const nanos at = now_ns();
      if (slot.lease_end > detail::saturating_add(at, window_)) continue;
      if (queue_.extend(slot.lease, lease_)) {
        slot.lease_end = detail::saturating_add(at, lease_.count());
        extended_.bump();
      } else {
        // Settled, or ended before this pass: there is nothing left to extend.
        slot.lease_end = detail::nanos_max;
      }
    }
  }

  Queue& queue_;
  worker_pool_config config_;
  std::chrono::nanoseconds lease_;  // the queue's visibility_timeout
  nanos window_;                    // extend when the lease end is this close; 0: never
  std::unique_ptr<handler_base> handler_;
  std::unique_ptr<worker_slot[]> slots_;
  detail::owned_counter extended_;  // only the keeper writes it
  std::atomic<bool> stopping_{false};
  std::mutex wake_mutex_;         // guards keeper_stopping_ and the writes of stopping_
  std::condition_variable wake_;  // wakes sleeping workers and the keeper on stop
  bool keeper_stopping_ = false;  // guarded by wake_mutex_
  std::mutex join_mutex_;         // serializes stop()
  std::vector<std::thread> workers_;
  std::thread keeper_;
};

}  // namespace ringmq
