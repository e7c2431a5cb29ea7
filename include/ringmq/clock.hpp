// ringmq clocks: where a work queue reads the time for leases, delays and retention.
//
//   ringmq::manual_clock clock;                          // starts at time 0
//   ringmq::work_queue<job, ringmq::clock<ringmq::manual_clock>> queue{config, clock};
//   clock.advance(31s);                                  // every lease shorter than 31 s ends
//
// A clock source is any type with a `now()` member returning its time_point, whose duration
// converts to nanoseconds without loss of range in practice (std::chrono::steady_clock,
// coarse_steady_clock when message rates matter more than timestamp precision, or manual_clock
// for tests). The clock must not go backwards: a queue assumes that a deadline
// that has passed stays passed.
//
// Time spent blocked in a call (send_for, receive_for) is always measured on
// std::chrono::steady_clock, because a waiting thread waits in real time. The clock source only
// decides when leases end, when delayed messages become visible and how old a message is.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ringmq/detail/time.hpp"

namespace ringmq {

// A source of monotonic time points: std::chrono::steady_clock, manual_clock or your own.
template <class C>
concept clock_source = requires(const C& source) {
  typename C::time_point;
  typename C::duration;
  { source.now() } -> std::same_as<typename C::time_point>;
}
&&std::convertible_to<typename C::duration, std::chrono::nanoseconds>;

// A clock that moves only when advance() is called, for tests that must not sleep.
// Several queues may share one manual_clock; now() and advance() are safe from any thread.
class manual_clock {
 public:
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<manual_clock, duration>;
  static constexpr bool is_steady = true;

  // Starts at `start` (time 0 by default).
  explicit manual_clock(time_point start = time_point{}) noexcept
      : now_(start.time_since_epoch().count()) {}

  manual_clock(const manual_clock&) = delete;
  manual_clock& operator=(const manual_clock&) = delete;

  time_point now() const noexcept {
    return time_point{duration{now_.load(std::memory_order_acquire)}};
  }

  // Moves the time forward by `step`. Throws std::invalid_argument for a negative step, because
  // a clock that goes backwards would let a lease that already ended become active again.
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> step) {
    if (step < std::chrono::duration<Rep, Period>::zero()) {
      throw std::invalid_argument(
          "ringmq::manual_clock::advance: step is negative (" +
          std::to_string(detail::saturating_nanoseconds(step)) +
          " ns); a clock must not go backwards, so pass zero or a positive duration");
    }
    // A step that would overflow the representation stops the clock at its maximum.
    const rep amount = detail::saturating_nanoseconds(step);
    rep current = now_.load(std::memory_order_relaxed);
    while (!now_.compare_exchange_weak(current, detail::saturating_add(current, amount),
                                       std::memory_order_acq_rel, std::memory_order_relaxed)) {
    }
  }

 private:
  std::atomic<rep> now_;
};

// std::chrono::steady_clock's time at the resolution of the kernel's timer tick (1 to 4 ms on
// Linux): a read returns the time of the last tick, at about a third of the cost of
// steady_clock::now(). Its time points are steady_clock's, so they compare with
// steady_clock::now() and never run ahead of it. On a work queue it makes sent_at, lease ends
// and delays tick-granular. Choose it when a queue moves millions of messages a second and its
// timeouts are far longer than a tick. Where the platform has no such clock, now() is
// steady_clock::now().
struct coarse_steady_clock {
  using rep = std::chrono::steady_clock::rep;
  using period = std::chrono::steady_clock::period;
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
    return time_point(std::chrono::duration_cast<duration>(
        std::chrono::nanoseconds(detail::steady_coarse_now())));
  }
};

// Option tag choosing a work queue's clock source; the default is std::chrono::steady_clock.
template <class Clock>
struct clock {
  static_assert(clock_source<Clock>,
                "ringmq::clock<Clock>: Clock must fit ringmq::clock_source: member types "
                "time_point and duration, a const now() returning time_point, and a duration "
                "that converts to std::chrono::nanoseconds");
  using type = Clock;
};

}  // namespace ringmq
