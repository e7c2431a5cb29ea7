// Tests of ringmq::manual_clock (advance, negative steps, saturation, concurrent advances) and
// of the delays that the built-in backoff policies compute.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <ringmq/backoff.hpp>
#include <ringmq/clock.hpp>

using namespace std::chrono_literals;
using ringmq::manual_clock;
using std::chrono::nanoseconds;

namespace {

using time_point = manual_clock::time_point;

constexpr nanoseconds nanoseconds_max = nanoseconds::max();

// A type without now(), which must not fit clock_source.
struct no_now {
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;
};

// The message of the std::invalid_argument that advance(step) throws, or a note that it threw
// nothing.
template <class Duration>
std::string advance_error(manual_clock& clock, Duration step) {
  try {
    clock.advance(step);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "(no exception)";
}

}  // namespace

// ---- manual_clock ------------------------------------------------------------------------------

TEST_CASE("manual_clock: starts at zero or at the given time", "[clock]") {
  const manual_clock from_zero;
  CHECK(from_zero.now() == time_point{});
  const manual_clock from_start(time_point{5s});
  CHECK(from_start.now() == time_point{5s});
  STATIC_REQUIRE(manual_clock::is_steady);
}

TEST_CASE("manual_clock: advance moves time forward by the step", "[clock]") {
  manual_clock clock;
  clock.advance(1s);
  CHECK(clock.now() == time_point{1s});
  clock.advance(0s);
  CHECK(clock.now() == time_point{1s});
  clock.advance(500ms);
  clock.advance(250us);
  clock.advance(3ns);
  CHECK(clock.now() == time_point{1s + 500ms + 250us + 3ns});
  clock.advance(std::chrono::minutes(2));
  CHECK(clock.now() == time_point{1s + 500ms + 250us + 3ns + 2min});
}

TEST_CASE("manual_clock: a fractional step rounds up to whole nanoseconds", "[clock]") {
  manual_clock clock;
  clock.advance(std::chrono::duration<double, std::nano>(0.5));
  CHECK(clock.now() == time_point{1ns});
  clock.advance(std::chrono::duration<double>(1.5e-9));
  CHECK(clock.now() == time_point{3ns});
}

TEST_CASE("manual_clock: a negative step throws and names the step", "[clock]") {
  using Catch::Matchers::Contains;
  manual_clock clock(time_point{10s});

  CHECK_THAT(advance_error(clock, -1ns), Contains("-1 ns"));
  CHECK_THAT(advance_error(clock, -2s), Contains("-2000000000 ns"));
  CHECK_THAT(advance_error(clock, std::chrono::duration<double>(-0.25)), Contains("-250000000 ns"));
  CHECK(clock.now() == time_point{10s});

  clock.advance(1ns);
  CHECK(clock.now() == time_point{10s + 1ns});
}

TEST_CASE("manual_clock: time stops at its maximum", "[clock]") {
  const time_point last{nanoseconds_max};

  SECTION("one huge step") {
    manual_clock clock(time_point{1s});
    clock.advance(nanoseconds_max);
    CHECK(clock.now() == last);
    clock.advance(1s);
    CHECK(clock.now() == last);
    clock.advance(nanoseconds_max);
    CHECK(clock.now() == last);
  }
  SECTION("a step beyond the range of nanoseconds") {
    manual_clock clock;
    clock.advance(std::chrono::hours::max());
    CHECK(clock.now() == last);
  }
  SECTION("steps that add up past the maximum") {
    manual_clock clock(time_point{nanoseconds_max - 10ns});
    clock.advance(9ns);
    CHECK(clock.now() == time_point{nanoseconds_max - 1ns});
    clock.advance(5ns);
    CHECK(clock.now() == last);
  }
}

TEST_CASE("manual_clock: advances from several threads add up exactly", "[clock]") {
  manual_clock clock;
  constexpr int thread_count = 4;
  constexpr int steps_per_thread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&clock, t] {
      // Threads step by different amounts, so a lost update changes the sum.
      const nanoseconds step{t + 1};
      for (int i = 0; i < steps_per_thread; ++i) clock.advance(step);
    });
  }
  for (std::thread& thread : threads) thread.join();

  CHECK(clock.now() == time_point{nanoseconds{(1 + 2 + 3 + 4) * steps_per_thread}});
}

TEST_CASE("manual_clock: fits clock_source", "[clock]") {
  STATIC_REQUIRE(ringmq::clock_source<manual_clock>);
  STATIC_REQUIRE(ringmq::clock_source<std::chrono::steady_clock>);
  STATIC_REQUIRE_FALSE(ringmq::clock_source<no_now>);
  STATIC_REQUIRE_FALSE(ringmq::clock_source<int>);
}

TEST_CASE("coarse_steady_clock: reads steady_clock's time, never ahead of it", "[clock]") {
  using ringmq::coarse_steady_clock;
  STATIC_REQUIRE(ringmq::clock_source<coarse_steady_clock>);
  STATIC_REQUIRE(std::is_same_v<coarse_steady_clock::time_point,
                                std::chrono::steady_clock::time_point>);

  auto previous = coarse_steady_clock::now();
  for (int i = 0; i < 2000; ++i) {
    // A read between `before` and `after` is never later than `after`. It lags by a few ticks at
    // most, far less than a second, and it never goes backwards.
    const auto before = std::chrono::steady_clock::now();
    const auto read = coarse_steady_clock::now();
    const auto after = std::chrono::steady_clock::now();
    REQUIRE(read <= after);
    REQUIRE(read > before - 1s);
    REQUIRE(read >= previous);
    previous = read;
  }
  if (!ringmq::detail::steady_coarse_available()) {
    WARN("no coarse clock here: coarse_steady_clock reads steady_clock");
  }
}

// ---- backoff policies --------------------------------------------------------------------------

TEST_CASE("backoff: no_backoff waits zero", "[clock]") {
  const ringmq::no_backoff policy(ringmq::backoff_config{.initial = 5s, .max = 10s});
  CHECK(policy.delay(1, 1) == 0ns);
  CHECK(policy.delay(100, 7) == 0ns);
  STATIC_REQUIRE(ringmq::backoff_policy<ringmq::no_backoff>);
}

TEST_CASE("backoff: fixed_backoff waits initial after every failure", "[clock]") {
  const ringmq::fixed_backoff policy(ringmq::backoff_config{.initial = 5s, .max = 10s});
  for (std::uint32_t failures : {1U, 2U, 10U, 1000U}) {
    INFO("failures " << failures);
    CHECK(policy.delay(failures, 3) == 5s);
  }
  STATIC_REQUIRE(ringmq::backoff_policy<ringmq::fixed_backoff>);
}

TEST_CASE("backoff: exponential_backoff multiplies up to the cap", "[clock]") {
  SECTION("doubling, capped at 1 s") {
    const ringmq::exponential_backoff policy(
        ringmq::backoff_config{.initial = 100ms, .max = 1s, .multiplier = 2.0});
    const std::vector<nanoseconds> expected{100ms, 200ms, 400ms, 800ms, 1s, 1s};
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const auto failures = static_cast<std::uint32_t>(i + 1);
      INFO("failures " << failures);
      CHECK(policy.delay(failures, 1) == expected[i]);
    }
    CHECK(policy.delay(1000, 1) == 1s);
    CHECK(policy.delay(std::numeric_limits<std::uint32_t>::max(), 1) == 1s);
    CHECK(policy.delay(0, 1) == 100ms);
  }
  SECTION("a fractional multiplier") {
    const ringmq::exponential_backoff policy(
        ringmq::backoff_config{.initial = 100ms, .max = 1s, .multiplier = 1.5});
    CHECK(policy.delay(1, 1) == 100ms);
    CHECK(policy.delay(2, 1) == 150ms);
    CHECK(policy.delay(3, 1) == 225ms);
  }
  SECTION("multiplier 1 stays at initial") {
    const ringmq::exponential_backoff policy(
        ringmq::backoff_config{.initial = 100ms, .max = 1s, .multiplier = 1.0});
    CHECK(policy.delay(1, 1) == 100ms);
    CHECK(policy.delay(50, 1) == 100ms);
  }
  SECTION("initial equal to max") {
    const ringmq::exponential_backoff policy(
        ringmq::backoff_config{.initial = 1s, .max = 1s, .multiplier = 3.0});
    CHECK(policy.delay(1, 1) == 1s);
    CHECK(policy.delay(5, 1) == 1s);
  }
  SECTION("zero initial stays zero") {
    const ringmq::exponential_backoff policy(
        ringmq::backoff_config{.initial = 0ns, .max = 1s, .multiplier = 2.0});
    CHECK(policy.delay(1, 1) == 0ns);
    CHECK(policy.delay(20, 1) == 0ns);
  }
  SECTION("an infinite multiplier reaches the cap") {
    const ringmq::exponential_backoff policy(ringmq::backoff_config{
        .initial = 1ms, .max = 1s, .multiplier = std::numeric_limits<double>::infinity()});
    CHECK(policy.delay(1, 1) == 1ms);
    CHECK(policy.delay(2, 1) == 1s);
  }
  STATIC_REQUIRE(ringmq::backoff_policy<ringmq::exponential_backoff>);
}

TEST_CASE("backoff: zero initial with infinite multiplier waits zero", "[clock]") {
  // A work queue accepts this config, because an infinite multiplier passes the check that the
  // multiplier is at least 1. Every delay must be zero, because the initial delay is zero.
  const double infinity = std::numeric_limits<double>::infinity();
  const ringmq::backoff_config numbers{.initial = 0ns, .max = 1s, .multiplier = infinity};
  const ringmq::exponential_backoff exponential(numbers);
  CHECK(exponential.delay(1, 1) == 0ns);
  CHECK(exponential.delay(2, 1) == 0ns);
  CHECK(exponential.delay(10, 1) == 0ns);
  const ringmq::exponential_jitter_backoff jitter(numbers);
  CHECK(jitter.delay(2, 1) == 0ns);
}

TEST_CASE("backoff: jitter stays between 0 and the exponential delay", "[clock]") {
  const ringmq::backoff_config numbers{.initial = 100ms, .max = 10s, .multiplier = 2.0};
  const ringmq::exponential_jitter_backoff jitter(numbers);
  const ringmq::exponential_backoff ceiling(numbers);

  for (std::uint32_t failures = 1; failures <= 10; ++failures) {
    for (std::uint64_t id = 1; id <= 200; ++id) {
      const nanoseconds delay = jitter.delay(failures, id);
      if (delay < 0ns || delay > ceiling.delay(failures, id)) {
        FAIL("delay " << delay.count() << " ns for failure " << failures << " of id " << id
                      << " is outside [0, " << ceiling.delay(failures, id).count() << " ns]");
      }
    }
  }
  STATIC_REQUIRE(ringmq::backoff_policy<ringmq::exponential_jitter_backoff>);
}

TEST_CASE("backoff: exponential_jitter_backoff is reproducible and spread", "[clock]") {
  const ringmq::backoff_config numbers{.initial = 1s, .max = 60s, .multiplier = 2.0};
  const ringmq::exponential_jitter_backoff first(numbers);
  const ringmq::exponential_jitter_backoff second(numbers);
  constexpr std::uint64_t ids = 500;

  std::set<nanoseconds::rep> distinct;
  std::uint64_t lower_half = 0;
  std::uint64_t differ_by_failure = 0;
  for (std::uint64_t id = 1; id <= ids; ++id) {
    const nanoseconds delay = first.delay(3, id);
    CHECK(delay == second.delay(3, id));
    CHECK(delay == first.delay(3, id));
    distinct.insert(delay.count());
    if (delay < 2s) ++lower_half;  // the ceiling for failure 3 is 4 s
    if (first.delay(4, id) != delay) ++differ_by_failure;
  }
  // The draws come from a fixed hash, so these counts are fixed too. The bounds are wide
  // enough for any hash that spreads its input.
  CHECK(distinct.size() > ids * 9 / 10);
  CHECK(lower_half > ids / 4);
  CHECK(lower_half < ids * 3 / 4);
  CHECK(differ_by_failure > ids * 9 / 10);
}

TEST_CASE("backoff: exponential_jitter_backoff with zero initial waits zero", "[clock]") {
  const ringmq::exponential_jitter_backoff policy(
      ringmq::backoff_config{.initial = 0ns, .max = 1s, .multiplier = 2.0});
  for (std::uint64_t id = 1; id <= 20; ++id) CHECK(policy.delay(3, id) == 0ns);
}
