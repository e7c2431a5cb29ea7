// ringmq backoff policies: how long a work queue keeps a message invisible after nack(receipt)
// when the caller gives no delay.
//
//   ringmq::work_queue<job, ringmq::backoff<ringmq::exponential_jitter_backoff>> queue{
//       {.capacity = 4096, .backoff = {.initial = 100ms, .max = 30s}}};
//
// A policy is constructed once from the queue's backoff_config, and its delay() is called
// concurrently from every thread that nacks, so it must not change state without
// synchronization. The built-in policies are stateless after construction.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>

namespace ringmq {

// Numbers for the built-in backoff policies. For failure n (1 for the first failed attempt):
//   fixed:               initial
//   exponential:         min(max, initial * multiplier^(n-1))
//   exponential jitter:  a value in [0, exponential] drawn from a hash of the message id and n
struct backoff_config {
  std::chrono::nanoseconds initial = std::chrono::seconds(1);
  std::chrono::nanoseconds max = std::chrono::minutes(5);
  double multiplier = 2.0;
};

// A policy that maps a message's failure count (1 after the first failed attempt) and its id to
// the delay before it becomes visible again.
template <class P>
concept backoff_policy = std::constructible_from<P, const backoff_config&> &&
    requires(const P& policy, std::uint32_t failures, std::uint64_t id) {
  { policy.delay(failures, id) } -> std::convertible_to<std::chrono::nanoseconds>;
};

// Makes a nacked message visible again at once, as Service Bus's abandon does.
struct no_backoff {
  explicit no_backoff(const backoff_config&) noexcept {}
  std::chrono::nanoseconds delay(std::uint32_t, std::uint64_t) const noexcept { return {}; }
};

// Waits config.initial after every failure.
struct fixed_backoff {
  explicit fixed_backoff(const backoff_config& config) noexcept : initial_(config.initial) {}
  std::chrono::nanoseconds delay(std::uint32_t, std::uint64_t) const noexcept { return initial_; }

 private:
  std::chrono::nanoseconds initial_;
};

// Multiplies the delay by config.multiplier after each failure, up to config.max.
struct exponential_backoff {
  explicit exponential_backoff(const backoff_config& config) noexcept : config_(config) {}

  std::chrono::nanoseconds delay(std::uint32_t failures, std::uint64_t) const noexcept {
    // Multiply in floating point so that a large failure count saturates instead of wrapping.
    long double value = static_cast<long double>(config_.initial.count());
    const long double cap = static_cast<long double>(config_.max.count());
    // The loop stops once the delay reaches the cap, and never runs for a multiplier of 1 or
    // an initial delay of 0, so its cost does not grow with the failure count in those cases.
    const bool grows = config_.multiplier > 1.0 && value > 0;
    for (std::uint32_t step = 1; grows && step < failures && value < cap; ++step) {
      value *= config_.multiplier;
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::clamp(value, 0.0L, cap)));
  }

 private:
  backoff_config config_;
};

// Exponential backoff with full jitter: a delay spread evenly over [0, exponential delay], so
// that messages that failed together do not all come back at the same instant. The spread is
// a hash of the message id and the failure count, so a run is reproducible and the policy
// needs no shared random generator.
struct exponential_jitter_backoff {
  explicit exponential_jitter_backoff(const backoff_config& config) noexcept : base_(config) {}

  std::chrono::nanoseconds delay(std::uint32_t failures, std::uint64_t id) const noexcept {
    const std::int64_t ceiling = base_.delay(failures, id).count();
    if (ceiling <= 0) return {};
    const std::uint64_t draw = mix(id ^ (std::uint64_t{failures} << 48U));
    return std::chrono::nanoseconds(
        static_cast<std::int64_t>(draw % (static_cast<std::uint64_t>(ceiling) + 1U)));
  }

 private:
  // The finalizer of SplitMix64: spreads every input bit over the whole output.
  static constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 30U;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27U;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31U);
  }

  exponential_backoff base_;
};

// Option tag choosing a work queue's backoff policy; the default is no_backoff.
template <class Policy>
struct backoff {
  static_assert(backoff_policy<Policy>,
                "ringmq::backoff<Policy>: Policy must fit ringmq::backoff_policy: constructible "
                "from const ringmq::backoff_config& and with a const delay(std::uint32_t "
                "failures, std::uint64_t message_id) returning std::chrono::nanoseconds");
  using type = Policy;
};

}  // namespace ringmq
