// ringmq internals: saturating arithmetic on nanosecond counts, so that a huge timeout or delay
// means "never" instead of wrapping around into the past.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

#if defined(__linux__)
#include <time.h>
#endif

namespace ringmq::detail {

// Nanoseconds since a clock's epoch; every deadline inside a work queue is stored this way.
using nanos = std::int64_t;

inline constexpr nanos nanos_max = std::numeric_limits<nanos>::max();

// Converts a duration to nanoseconds, rounding up, and saturating at the range of nanoseconds.
// A floating-point NaN converts to 0, so a NaN timeout or delay acts as zero.
template <class Rep, class Period>
constexpr nanos saturating_nanoseconds(std::chrono::duration<Rep, Period> d) noexcept {
  if constexpr (std::chrono::treat_as_floating_point_v<Rep>) {
    if (d.count() != d.count()) return 0;  // NaN; converting it to an integer is undefined
  }
  // A signed count of nanoseconds already fits; this is the case of every clock reading.
  if constexpr (std::is_same_v<Period, std::nano> && std::is_integral_v<Rep> &&
                std::is_signed_v<Rep> && sizeof(Rep) <= sizeof(nanos)) {
    return d.count();
  }
  // Compare as long double first, because converting a huge duration to nanoseconds overflows.
  using wide = std::chrono::duration<long double, std::nano>;
  const wide exact = d;
  if (exact >= wide(std::chrono::nanoseconds::max())) return nanos_max;
  if (exact <= wide(std::chrono::nanoseconds::min())) return std::numeric_limits<nanos>::min();
  return std::chrono::ceil<std::chrono::nanoseconds>(d).count();
}

// a + b for b >= 0, stopping at nanos_max.
constexpr nanos saturating_add(nanos a, nanos b) noexcept {
  return a > nanos_max - b ? nanos_max : a + b;
}

// The kernel's coarse monotonic clock (CLOCK_MONOTONIC_COARSE on Linux) reads the time of the
// last timekeeping update, on steady_clock's time line: never ahead of steady_clock::now(). A
// read skips the hardware counter, so it costs about a third of a precise one (9.6 against
// 31.7 ns on a 2-vCPU virtual machine). Updates come with the timer tick (every 4 ms here), and
// a late tick delays them, so its lag has no firm bound: 5.7 ms was measured with a 4 ms tick.
// So it serves as the time of a clock of its own, never as a bound on steady_clock::now().

// Whether the coarse clock exists and is on steady_clock's time line. libstdc++ and libc++ read
// steady_clock from CLOCK_MONOTONIC, which is that line.
inline bool steady_coarse_available() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
  static const bool available = [] {
    timespec coarse{};
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse) != 0) return false;
    const nanos coarse_now = coarse.tv_sec * 1'000'000'000LL + coarse.tv_nsec;
    const nanos precise_now = std::chrono::steady_clock::now().time_since_epoch().count();
    // Another time line would be off by far more than a second.
    return coarse_now <= precise_now && precise_now - coarse_now < 1'000'000'000LL;
  }();
  return available;
#else
  return false;
#endif
}

// The coarse clock's time, or steady_clock::now() where there is no coarse clock.
inline nanos steady_coarse_now() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
  timespec coarse{};
  if (steady_coarse_available() && clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse) == 0) {
    return coarse.tv_sec * 1'000'000'000LL + coarse.tv_nsec;
  }
#endif
  return std::chrono::steady_clock::now().time_since_epoch().count();
}

}  // namespace ringmq::detail
