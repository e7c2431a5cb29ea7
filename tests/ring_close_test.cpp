// Tests of ringmq::ring::close: what a closed ring accepts and returns, and that close wakes
// threads blocked in push on a full ring and in pop on an empty ring without losing elements.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ringmq/ring.hpp>

#include "support/blocking_calls.hpp"
#include "support/close_watchdog.hpp"
#include "support/deliveries.hpp"
#include "support/elements.hpp"
#include "support/ring_configs.hpp"

using namespace std::chrono_literals;
using ringmq_test::make_item;
using ringmq_test::move_only;
using ringmq_test::pop_call;
using ringmq_test::push_call;
using steady_clock = std::chrono::steady_clock;

namespace {

// Upper bound for anything that must happen at once or soon, far above any scheduling delay.
constexpr auto generous_bound = 30s;

// How long the main thread lets the other threads run into their blocking calls before it
// closes the ring. A thread that is slower than this still gets a correct result, but the
// test then checks the closed-before-call path instead of the wake-up path.
constexpr auto settle_time = 20ms;

// Waits until condition() holds or the generous bound passes, and returns whether it held.
bool wait_for_condition(const std::function<bool()>& condition) {
  const auto deadline = steady_clock::now() + generous_bound;
  while (!condition()) {
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEMPLATE_TEST_CASE("ring: closed ring rejects every push", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<move_only, 4>();
  REQUIRE(ring->try_emplace(1));
  CHECK_FALSE(ring->is_closed());
  ring->close();
  CHECK(ring->is_closed());

  move_only value(2);
  CHECK_FALSE(ring->try_push(std::move(value)));
  CHECK_FALSE(ring->push(std::move(value)));
  CHECK_FALSE(ring->push_for(std::move(value), 1min));
  CHECK_FALSE(ring->push_for(std::move(value), 0ms));
  REQUIRE(value.value != nullptr);
  CHECK(*value.value == 2);

  auto owned = std::make_unique<int>(3);
  CHECK_FALSE(ring->try_emplace(std::move(owned)));
  CHECK_FALSE(ring->emplace(std::move(owned)));
  REQUIRE(owned != nullptr);
  CHECK(*owned == 3);

  std::array<move_only, 2> batch{move_only(4), move_only(5)};
  CHECK(ring->try_push_bulk(batch.begin(), batch.end()) == 0);
  CHECK(batch[0].value != nullptr);
  CHECK(batch[1].value != nullptr);

  auto copies = TestType::template make<std::uint64_t, 4>();
  copies->close();
  const std::uint64_t copy = 6;
  CHECK_FALSE(copies->try_push(copy));
  CHECK_FALSE(copies->push(copy));
  CHECK_FALSE(copies->push_for(copy, 1min));
  CHECK(copies->empty());

  CHECK(ring->size() == 1);
  std::optional<move_only> left = ring->try_pop();
  REQUIRE(left.has_value());
  REQUIRE(left->value != nullptr);
  CHECK(*left->value == 1);
}

TEMPLATE_TEST_CASE("ring: closed ring drains its elements", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(ring->try_push(i));
  ring->close();
  CHECK(ring->size() == 4);
  CHECK_FALSE(ring->empty());

  const auto start = steady_clock::now();
  CHECK(ring->try_pop() == std::optional<std::uint64_t>(0));
  std::uint64_t out = 0;
  CHECK(ring->try_pop(out));
  CHECK(out == 1);
  CHECK(ring->pop() == std::optional<std::uint64_t>(2));
  CHECK(ring->pop_for(1min) == std::optional<std::uint64_t>(3));
  CHECK(ring->empty());

  // Drained: every pop returns at once, however long it could wait.
  CHECK_FALSE(ring->pop().has_value());
  CHECK_FALSE(ring->pop_for(1min).has_value());
  CHECK_FALSE(ring->pop_for(std::chrono::hours::max()).has_value());
  CHECK_FALSE(ring->try_pop().has_value());
  std::array<std::uint64_t, 4> buffer{};
  CHECK(ring->try_pop_bulk(buffer.data(), buffer.size()) == 0);
  CHECK(steady_clock::now() - start < generous_bound);

  SECTION("bulk drain") {
    auto bulk = TestType::template make<std::uint64_t, 4>();
    for (std::uint64_t i = 10; i < 13; ++i) REQUIRE(bulk->try_push(i));
    bulk->close();
    CHECK(bulk->try_pop_bulk(buffer.data(), buffer.size()) == 3);
    CHECK(buffer[0] == 10);
    CHECK(buffer[2] == 12);
    CHECK_FALSE(bulk->pop().has_value());
  }
}

TEMPLATE_TEST_CASE("ring: close is idempotent", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 2>();
  REQUIRE(ring->try_push(std::uint64_t{1}));
  ring->close();
  ring->close();
  CHECK(ring->is_closed());
  CHECK(ring->size() == 1);
  CHECK(ring->pop() == std::optional<std::uint64_t>(1));
  ring->close();
  CHECK(ring->is_closed());
  CHECK_FALSE(ring->pop().has_value());
  CHECK_FALSE(ring->try_push(std::uint64_t{2}));

  SECTION("from several threads at once, with a popper waiting") {
    auto shared = TestType::template make<std::uint64_t, 2>();
    ringmq_test::close_watchdog watchdog(*shared, generous_bound);
    std::optional<std::uint64_t> popped = 99;
    std::thread popper([&] { popped = shared->pop(); });
    std::this_thread::sleep_for(settle_time);

    std::atomic<bool> go{false};
    std::vector<std::thread> closers;
    for (int i = 0; i < 4; ++i) {
      closers.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        shared->close();
      });
    }
    go = true;
    for (std::thread& closer : closers) closer.join();
    popper.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());
    CHECK(shared->is_closed());
    CHECK_FALSE(popped.has_value());
  }
}

TEMPLATE_TEST_CASE("ring: close wakes blocked pushers", "[ring]", RINGMQ_WAITING_CONFIGS) {
  constexpr std::size_t pushers = TestType::multi_producer ? 3 : 1;
  constexpr std::size_t capacity = 2;

  for (const push_call call : ringmq_test::all_push_calls) {
    INFO(ringmq_test::call_name(call) << " from " << pushers << " threads");
    auto ring = TestType::template make<std::uint64_t, capacity>();
    ringmq_test::close_watchdog watchdog(*ring, generous_bound);
    std::atomic<std::size_t> returned{0};
    std::vector<std::uint64_t> accepted(pushers, 0);

    // Each pusher pushes until a push fails; the ring fills up and every pusher blocks.
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < pushers; ++p) {
      threads.emplace_back([&, p] {
        while (ringmq_test::push_with(*ring, call, make_item(p, accepted[p]))) ++accepted[p];
        returned.fetch_add(1);
      });
    }
    const bool filled = wait_for_condition([&] { return ring->size() == capacity; });
    std::this_thread::sleep_for(settle_time);
    const std::size_t returned_before_close = returned.load();
    ring->close();
    for (std::thread& thread : threads) thread.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());

    REQUIRE(filled);
    CHECK(returned_before_close == 0);
    CHECK(ring->is_closed());
    std::uint64_t total = 0;
    for (const std::uint64_t count : accepted) total += count;
    CHECK(total == capacity);

    // The main thread, the only consumer, drains what the pushers left.
    std::vector<std::vector<std::uint64_t>> received(1);
    while (std::optional<std::uint64_t> item = ring->pop()) received[0].push_back(*item);
    CHECK(received[0].size() == total);
    const std::string mismatch = ringmq_test::check_deliveries(received, accepted);
    CHECK(mismatch == "");
    CHECK_FALSE(ring->pop().has_value());
    CHECK(ring->empty());
  }
}

TEMPLATE_TEST_CASE("ring: close wakes blocked poppers", "[ring]", RINGMQ_WAITING_CONFIGS) {
  constexpr std::size_t poppers = TestType::multi_consumer ? 3 : 1;

  for (const pop_call call : ringmq_test::all_pop_calls) {
    INFO(ringmq_test::call_name(call) << " from " << poppers << " threads");
    auto ring = TestType::template make<std::uint64_t, 2>();
    ringmq_test::close_watchdog watchdog(*ring, generous_bound);
    std::atomic<std::size_t> returned{0};
    std::vector<std::optional<std::uint64_t>> results(poppers, std::uint64_t{99});

    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < poppers; ++c) {
      threads.emplace_back([&, c] {
        results[c] = ringmq_test::pop_with(*ring, call);
        returned.fetch_add(1);
      });
    }
    std::this_thread::sleep_for(settle_time);
    const std::size_t returned_before_close = returned.load();
    const auto close_time = steady_clock::now();
    ring->close();
    for (std::thread& thread : threads) thread.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());

    CHECK(returned_before_close == 0);
    CHECK(steady_clock::now() - close_time < generous_bound);
    for (std::size_t c = 0; c < poppers; ++c) {
      INFO("popper " << c);
      CHECK_FALSE(results[c].has_value());
    }
    CHECK(ring->empty());
  }
}

TEMPLATE_TEST_CASE("ring: close during traffic loses nothing", "[ring]", RINGMQ_WAITING_CONFIGS) {
  // Pushers and poppers run against a ring of two slots, so both sides keep blocking, until
  // the main thread closes the ring. Every push that returned true must be popped once, or,
  // for a single producer whose push was in flight during close, still be in the ring.
  constexpr std::size_t pushers = TestType::multi_producer ? 3 : 1;
  constexpr std::size_t poppers = TestType::multi_consumer ? 3 : 1;
  constexpr std::size_t rounds = 5;

  for (std::size_t round = 0; round < rounds; ++round) {
    const auto call_of_pusher = [round](std::size_t p) {
      return ringmq_test::all_push_calls.begin()[(p + round) % ringmq_test::all_push_calls.size()];
    };
    const auto call_of_popper = [round](std::size_t c) {
      return ringmq_test::all_pop_calls.begin()[(c + round) % ringmq_test::all_pop_calls.size()];
    };
    INFO("round " << round << ": pusher 0 uses " << ringmq_test::call_name(call_of_pusher(0))
                  << ", popper 0 uses " << ringmq_test::call_name(call_of_popper(0)));

    auto ring = TestType::template make<std::uint64_t, 2>();
    ringmq_test::close_watchdog watchdog(*ring, generous_bound);
    std::vector<std::uint64_t> accepted(pushers, 0);
    std::vector<std::vector<std::uint64_t>> received(poppers);
    std::atomic<std::size_t> popped_total{0};

    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < pushers; ++p) {
      threads.emplace_back([&, p] {
        while (ringmq_test::push_with(*ring, call_of_pusher(p), make_item(p, accepted[p]))) {
          ++accepted[p];
        }
      });
    }
    for (std::size_t c = 0; c < poppers; ++c) {
      threads.emplace_back([&, c] {
        while (std::optional<std::uint64_t> item =
                   ringmq_test::pop_with(*ring, call_of_popper(c))) {
          received[c].push_back(*item);
          popped_total.fetch_add(1);
        }
      });
    }
    const bool flowing = wait_for_condition([&] { return popped_total.load() >= 50; });
    ring->close();
    for (std::thread& thread : threads) thread.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());

    REQUIRE(flowing);
    std::uint64_t pushed = 0;
    for (const std::uint64_t count : accepted) pushed += count;
    std::uint64_t popped = 0;
    for (const auto& items : received) popped += items.size();
    const std::size_t left = ring->size();
    CHECK(pushed == popped + left);
    if (TestType::multi_producer) CHECK(left == 0);

    // Elements left behind are still poppable, after those the poppers took.
    std::vector<std::uint64_t> leftover;
    while (std::optional<std::uint64_t> item = ring->try_pop()) leftover.push_back(*item);
    CHECK(leftover.size() == left);
    received.push_back(leftover);
    const std::string mismatch = ringmq_test::check_deliveries(received, accepted);
    CHECK(mismatch == "");
  }
}
