// ringmq internals: the option list of a work queue, the check of its config, and the tags that
// tell receipts of different queues apart.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ringmq/backoff.hpp"
#include "ringmq/clock.hpp"
#include "ringmq/dead_letter_queue.hpp"
#include "ringmq/work_queue_types.hpp"

namespace ringmq::detail {

struct clock_kind {};
struct backoff_kind {};
struct overflow_kind {};
struct unknown_queue_option {};

template <class O>
struct queue_option_kind {
  using type = unknown_queue_option;
};
template <class C>
struct queue_option_kind<clock<C>> {
  using type = clock_kind;
};
template <class P>
struct queue_option_kind<backoff<P>> {
  using type = backoff_kind;
};
template <class P>
struct queue_option_kind<dead_letter_overflow<P>> {
  using type = overflow_kind;
};

template <class O>
constexpr bool check_known_queue_option() {
  static_assert(!std::is_same_v<typename queue_option_kind<O>::type, unknown_queue_option>,
                "ringmq::work_queue: unknown option; expected clock<C>, backoff<P> or "
                "dead_letter_overflow<P>");
  return true;
}

template <class Kind, class... Options>
inline constexpr std::size_t count_of_queue_option =
    (std::size_t{0} + ... +
     (std::is_same_v<typename queue_option_kind<Options>::type, Kind> ? 1 : 0));

template <class Kind, class Default, class... Options>
struct find_queue_option {
  using type = Default;
};
template <class Kind, class Default, class First, class... Rest>
struct find_queue_option<Kind, Default, First, Rest...> {
  using type = std::conditional_t<std::is_same_v<typename queue_option_kind<First>::type, Kind>,
                                  First, typename find_queue_option<Kind, Default, Rest...>::type>;
};

template <class... Options>
struct queue_options {
  static constexpr bool all_known = (check_known_queue_option<Options>() && ...);
  static_assert(count_of_queue_option<clock_kind, Options...> <= 1 &&
                    count_of_queue_option<backoff_kind, Options...> <= 1 &&
                    count_of_queue_option<overflow_kind, Options...> <= 1,
                "ringmq::work_queue: an option kind is given more than once; give each of "
                "clock, backoff and dead_letter_overflow at most once");

  using clock_type = typename find_queue_option<clock_kind, clock<std::chrono::steady_clock>,
                                                Options...>::type::type;
  using backoff_type =
      typename find_queue_option<backoff_kind, backoff<no_backoff>, Options...>::type::type;
  using overflow_type = typename find_queue_option<overflow_kind, dead_letter_overflow<drop_oldest>,
                                                   Options...>::type::type;
};

// Tags that tell receipts of different queues apart; 0 is never returned. A queue built where a
// destroyed one was gets a new tag, so the old queue's receipts do not work on it.
// NOTE: a shared library built with hidden symbols has its own copy of this counter, so a queue
// in it can share a tag with a queue elsewhere in the program.
inline std::uint64_t next_queue_tag() noexcept {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

// Throws std::invalid_argument naming the first field of config that cannot work.
inline void check_queue_config(const queue_config& config) {
  const auto fail = [](const std::string& what) {
    throw std::invalid_argument("ringmq::work_queue: " + what);
  };
  if (config.capacity == 0) fail("capacity 0 is invalid; pass a capacity of at least 1");
  if (config.capacity >= std::numeric_limits<std::uint32_t>::max()) {
    throw std::length_error("ringmq::work_queue: capacity " + std::to_string(config.capacity) +
                            " is too large; pass a capacity below 4294967295");
  }
  if (config.visibility_timeout <= std::chrono::nanoseconds::zero()) {
    fail("visibility_timeout " + std::to_string(config.visibility_timeout.count()) +
         " ns is invalid; pass a positive duration");
  }
  if (config.max_visibility_timeout < config.visibility_timeout) {
    fail("max_visibility_timeout " + std::to_string(config.max_visibility_timeout.count()) +
         " ns is shorter than visibility_timeout " +
         std::to_string(config.visibility_timeout.count()) + " ns; raise it");
  }
  if (config.retention <= std::chrono::nanoseconds::zero()) {
    fail("retention " + std::to_string(config.retention.count()) +
         " ns is invalid; pass a positive duration, or nanoseconds::max() to keep messages");
  }
  if (config.backoff.initial < std::chrono::nanoseconds::zero() ||
      config.backoff.max < config.backoff.initial) {
    fail("backoff initial " + std::to_string(config.backoff.initial.count()) + " ns and max " +
         std::to_string(config.backoff.max.count()) + " ns are invalid; pass 0 <= initial <= max");
  }
  if (!(config.backoff.multiplier >= 1.0) || !std::isfinite(config.backoff.multiplier)) {
    fail("backoff multiplier " + std::to_string(config.backoff.multiplier) +
         " is invalid; pass a finite value of at least 1");
  }
}

}  // namespace ringmq::detail
