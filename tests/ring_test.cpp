// Tests of ringmq::ring: capacity, the non-blocking and bulk calls, size accounting, and the
// blocking and timed calls with one thread on each side.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ringmq/ring.hpp>

#include "support/blocking_calls.hpp"
#include "support/close_watchdog.hpp"
#include "support/counting_allocator.hpp"
#include "support/elements.hpp"
#include "support/optional_writer.hpp"
#include "support/ring_configs.hpp"

using namespace std::chrono_literals;
using ringmq_test::move_only;
using ringmq_test::optional_writer;
using steady_clock = std::chrono::steady_clock;

namespace {

// Upper bound for calls that must return at once or soon, far above any scheduling delay.
constexpr auto generous_bound = 10s;

// Time after which close_watchdog closes a ring whose threads have not finished, far above
// what any of these tests needs.
constexpr auto hang_limit = 60s;

// Delay before the helper thread acts, so that the main thread is most likely waiting by then.
// The tests stay correct when the main thread is slower than this, but then test less.
constexpr auto helper_delay = 20ms;

// Pushes capacity elements, checks that one more does not fit, and pops them back in order,
// checking size() after every call. Returns a description of the first mismatch, or "".
template <class Ring>
std::string fill_and_drain(Ring& ring, std::size_t capacity) {
  for (std::uint64_t i = 0; i < capacity; ++i) {
    if (!ring.try_push(i)) return "try_push of element " + std::to_string(i) + " failed";
    if (ring.size() != i + 1) {
      return "size() is " + std::to_string(ring.size()) + " after " + std::to_string(i + 1) +
             " pushes";
    }
  }
  if (ring.try_push(std::uint64_t{capacity})) return "a push beyond capacity succeeded";
  if (ring.empty()) return "empty() is true on a full ring";

  for (std::uint64_t i = 0; i < capacity; ++i) {
    const std::optional<std::uint64_t> value = ring.try_pop();
    if (!value) return "try_pop " + std::to_string(i) + " found nothing";
    if (*value != i) {
      return "try_pop " + std::to_string(i) + " returned " + std::to_string(*value);
    }
    if (ring.size() != capacity - i - 1) {
      return "size() is " + std::to_string(ring.size()) + " after " + std::to_string(i + 1) +
             " pops";
    }
  }
  if (ring.try_pop()) return "try_pop returned an element from a drained ring";
  return "";
}

// Stores whether result holds a value in got, and the value, or 0, in value.
void split_result(std::optional<std::uint64_t> result, bool& got, std::uint64_t& value) {
  got = result.has_value();
  value = result.value_or(0);
}

// Makes `steps` random calls that cannot wait, plus push and pop when the ring is known to have
// room or an element, and compares each result and size() with a std::deque used as the model.
// Returns a description of the first mismatch, or "".
template <class Ring>
std::string run_fifo_model(Ring& ring, std::size_t capacity, std::uint64_t seed, int steps) {
  std::deque<std::uint64_t> model;
  std::mt19937_64 random(seed);
  std::uint64_t next = 0;
  std::array<std::uint64_t, 6> buffer{};

  for (int step = 0; step < steps; ++step) {
    const unsigned call = static_cast<unsigned>(random() % 11);
    const std::string where = "step " + std::to_string(step) + ", call " + std::to_string(call);
    const bool has_room = model.size() < capacity;
    const bool has_element = !model.empty();
    const std::uint64_t oldest = has_element ? model.front() : 0;
    const std::size_t free = capacity - model.size();

    bool pushed = false;
    std::size_t bulk_pushed = 0;
    // Plain values instead of std::optional: GCC 12 reports a false maybe-uninitialized
    // warning when std::optional results are compared here.
    bool got = false;
    std::uint64_t popped = 0;
    std::size_t bulk_popped = 0;
    switch (call) {
      case 0:
        pushed = ring.try_push(std::uint64_t{next});
        break;
      case 1: {
        const std::uint64_t value = next;
        pushed = ring.try_push(value);
        break;
      }
      case 2:
        pushed = ring.try_emplace(next);
        break;
      case 3:
        pushed = has_room ? ring.push(std::uint64_t{next}) : ring.try_push(next);
        break;
      case 4:
        pushed = ring.push_for(std::uint64_t{next}, 0ms);
        break;
      case 5: {
        const std::size_t want = 1 + random() % 5;
        for (std::size_t i = 0; i < want; ++i) buffer[i] = next + i;
        bulk_pushed = ring.try_push_bulk(buffer.begin(), buffer.begin() + want);
        if (bulk_pushed != std::min(want, free)) {
          return where + ": try_push_bulk of " + std::to_string(want) + " with " +
                 std::to_string(free) + " free returned " + std::to_string(bulk_pushed);
        }
        break;
      }
      case 6:
        split_result(ring.try_pop(), got, popped);
        break;
      case 7:
        got = ring.try_pop(popped);
        break;
      case 8:
        split_result(has_element ? ring.pop() : ring.try_pop(), got, popped);
        break;
      case 9:
        split_result(ring.pop_for(0ms), got, popped);
        break;
      case 10: {
        const std::size_t max = random() % 6;
        bulk_popped = ring.try_pop_bulk(buffer.data(), max);
        if (bulk_popped != std::min(max, model.size())) {
          return where + ": try_pop_bulk of " + std::to_string(max) + " with " +
                 std::to_string(model.size()) + " present returned " + std::to_string(bulk_popped);
        }
        break;
      }
    }

    if (call <= 4) {
      if (pushed != has_room) {
        return where + ": push returned " + (pushed ? "true" : "false") + " with " +
               std::to_string(free) + " free";
      }
      if (pushed) model.push_back(next++);
    } else if (call == 5) {
      for (std::size_t i = 0; i < bulk_pushed; ++i) model.push_back(next++);
    } else if (call <= 9) {
      if (got != has_element || popped != oldest) {
        return where + ": pop returned " + (got ? std::to_string(popped) : "nothing") +
               ", expected " + (has_element ? std::to_string(oldest) : "nothing");
      }
      if (got) model.pop_front();
    } else {
      for (std::size_t i = 0; i < bulk_popped; ++i) {
        if (buffer[i] != model.front()) {
          return where + ": try_pop_bulk element " + std::to_string(i) + " is " +
                 std::to_string(buffer[i]) + ", expected " + std::to_string(model.front());
        }
        model.pop_front();
      }
    }

    if (ring.size() != model.size()) {
      return where + ": size() is " + std::to_string(ring.size()) + ", expected " +
             std::to_string(model.size());
    }
    if (ring.empty() != model.empty()) return where + ": empty() disagrees with size()";
  }
  return "";
}

// Fills the ring with first, first + 1, ... up to its capacity.
template <class Ring>
void fill_with_sequence(Ring& ring, std::uint64_t first) {
  for (std::uint64_t i = 0; i < ring.capacity(); ++i) REQUIRE(ring.try_push(first + i));
}

}  // namespace

TEMPLATE_TEST_CASE("ring: exactly capacity elements fit", "[ring]", RINGMQ_ALL_CONFIGS) {
  ringmq_test::for_each_capacity<TestType, std::uint64_t, 1, 2, 3, 5, 7, 8, 1000, 1024>(
      [](auto& ring, std::size_t capacity) {
        INFO("capacity " << capacity);
        CHECK(ring.capacity() == capacity);
        CHECK(ring.empty());
        const std::string mismatch = fill_and_drain(ring, capacity);
        CHECK(mismatch == "");
        CHECK(ring.empty());
        CHECK(ring.capacity() == capacity);
      });
}

TEMPLATE_TEST_CASE("ring: zero capacity is rejected", "[ring]", RINGMQ_RUNTIME_CONFIGS) {
  using ring_type = typename TestType::template ring_type<std::uint64_t, 1>;
  CHECK_THROWS_AS(ring_type(0), std::invalid_argument);
  CHECK_THROWS_WITH(ring_type(0), Catch::Contains("0") && Catch::Contains("capacity"));
}

TEMPLATE_TEST_CASE("ring: overflowing capacity throws length_error", "[ring]",
                   RINGMQ_RUNTIME_CONFIGS) {
  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();

  using ring_type = typename TestType::template ring_type<std::uint64_t, 1>;
  for (const std::size_t capacity : {max, max - 1, max / 2, max / sizeof(std::uint64_t) + 1}) {
    INFO("capacity " << capacity);
    CHECK_THROWS_AS(ring_type(capacity), std::length_error);
    CHECK_THROWS_WITH(ring_type(capacity), Catch::Contains(std::to_string(capacity)));
  }

  using aligned = ringmq_test::over_aligned<128>;
  using aligned_ring_type = typename TestType::template ring_type<aligned, 1>;
  for (const std::size_t capacity : {max, max / 2, max / alignof(aligned) + 1}) {
    INFO("capacity " << capacity << " of a 128-byte element");
    CHECK_THROWS_AS(aligned_ring_type(capacity), std::length_error);
    CHECK_THROWS_WITH(aligned_ring_type(capacity), Catch::Contains(std::to_string(capacity)));
  }
}

TEMPLATE_TEST_CASE("ring: try_push on full ring fails", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<move_only, 2>();
  REQUIRE(ring->try_push(move_only(1)));
  REQUIRE(ring->try_emplace(2));

  move_only extra(3);
  CHECK_FALSE(ring->try_push(std::move(extra)));
  REQUIRE(extra.value != nullptr);
  CHECK(*extra.value == 3);

  auto owned = std::make_unique<int>(4);
  CHECK_FALSE(ring->try_emplace(std::move(owned)));
  REQUIRE(owned != nullptr);
  CHECK(*owned == 4);

  std::array<move_only, 2> batch{move_only(5), move_only(6)};
  CHECK(ring->try_push_bulk(batch.begin(), batch.end()) == 0);
  REQUIRE(batch[0].value != nullptr);
  CHECK(*batch[0].value == 5);

  CHECK(ring->size() == 2);
  for (int expected : {1, 2}) {
    std::optional<move_only> popped = ring->try_pop();
    REQUIRE(popped.has_value());
    REQUIRE(popped->value != nullptr);
    CHECK(*popped->value == expected);
  }
  CHECK(ring->try_push(std::move(extra)));
  CHECK(extra.value == nullptr);
}

TEMPLATE_TEST_CASE("ring: try_push copy on full ring fails", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<std::string, 1>();
  const std::string first(100, 'a');
  REQUIRE(ring->try_push(first));
  CHECK(first == std::string(100, 'a'));

  const std::string second(100, 'b');
  CHECK_FALSE(ring->try_push(second));
  CHECK_FALSE(ring->try_emplace(second));
  CHECK_FALSE(ring->try_emplace(std::size_t{3}, 'c'));
  CHECK(ring->size() == 1);

  const std::optional<std::string> popped = ring->try_pop();
  REQUIRE(popped.has_value());
  CHECK(*popped == first);
}

TEMPLATE_TEST_CASE("ring: try_pop on empty returns nothing", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  CHECK_FALSE(ring->try_pop().has_value());
  std::uint64_t out = 77;
  CHECK_FALSE(ring->try_pop(out));
  CHECK(out == 77);

  // Empty again after a push and a pop, on a slot that has been used.
  REQUIRE(ring->try_push(std::uint64_t{5}));
  REQUIRE(ring->try_pop().value_or(0) == 5);
  CHECK_FALSE(ring->try_pop().has_value());
  CHECK_FALSE(ring->try_pop(out));
  CHECK(out == 77);
  CHECK(ring->empty());
}

TEMPLATE_TEST_CASE("ring: both try_pop forms take oldest", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<move_only, 3>();
  REQUIRE(ring->try_emplace(10));
  REQUIRE(ring->try_emplace(20));
  REQUIRE(ring->try_emplace(30));

  std::optional<move_only> first = ring->try_pop();
  REQUIRE(first.has_value());
  REQUIRE(first->value != nullptr);
  CHECK(*first->value == 10);

  move_only out(0);
  REQUIRE(ring->try_pop(out));
  REQUIRE(out.value != nullptr);
  CHECK(*out.value == 20);
  CHECK(ring->size() == 1);

  REQUIRE(ring->try_pop(out));
  REQUIRE(out.value != nullptr);
  CHECK(*out.value == 30);
  CHECK(ring->empty());
}

TEMPLATE_TEST_CASE("ring: try_push_bulk pushes a prefix", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<move_only, 4>();
  REQUIRE(ring->try_emplace(100));

  std::vector<move_only> batch;
  for (int i = 0; i < 10; ++i) batch.emplace_back(i);

  // Three slots are free: the first three elements move in, in order, and the rest stay.
  CHECK(ring->try_push_bulk(batch.begin(), batch.end()) == 3);
  CHECK(ring->size() == 4);
  for (int i = 0; i < 3; ++i) CHECK(batch[i].value == nullptr);
  for (int i = 3; i < 10; ++i) {
    REQUIRE(batch[i].value != nullptr);
    CHECK(*batch[i].value == i);
  }

  // Full: nothing moves.
  CHECK(ring->try_push_bulk(batch.begin() + 3, batch.end()) == 0);
  REQUIRE(batch[3].value != nullptr);

  for (int expected : {100, 0, 1, 2}) {
    std::optional<move_only> popped = ring->try_pop();
    REQUIRE(popped.has_value());
    REQUIRE(popped->value != nullptr);
    CHECK(*popped->value == expected);
  }

  // An empty range pushes nothing; a range shorter than the free space goes in whole.
  CHECK(ring->try_push_bulk(batch.begin(), batch.begin()) == 0);
  CHECK(ring->empty());
  CHECK(ring->try_push_bulk(batch.begin() + 3, batch.begin() + 5) == 2);
  CHECK(ring->size() == 2);
  CHECK(batch[3].value == nullptr);
  CHECK(batch[4].value == nullptr);
  REQUIRE(batch[5].value != nullptr);
  for (int expected : {3, 4}) {
    std::optional<move_only> popped = ring->try_pop();
    REQUIRE(popped.has_value());
    REQUIRE(popped->value != nullptr);
    CHECK(*popped->value == expected);
  }
}

TEMPLATE_TEST_CASE("ring: try_pop_bulk pops at most max", "[ring]", RINGMQ_ALL_CONFIGS) {
  constexpr std::uint64_t untouched = 0xFEEDFACE;
  auto ring = TestType::template make<std::uint64_t, 8>();
  for (std::uint64_t i = 0; i < 6; ++i) REQUIRE(ring->try_push(i));

  std::array<std::uint64_t, 16> out;
  out.fill(untouched);
  CHECK(ring->try_pop_bulk(out.data(), 0) == 0);
  CHECK(out[0] == untouched);
  CHECK(ring->size() == 6);

  CHECK(ring->try_pop_bulk(out.data(), 4) == 4);
  for (std::uint64_t i = 0; i < 4; ++i) CHECK(out[i] == i);
  CHECK(out[4] == untouched);
  CHECK(ring->size() == 2);

  // More requested than present: only what is there.
  out.fill(untouched);
  CHECK(ring->try_pop_bulk(out.data(), out.size()) == 2);
  CHECK(out[0] == 4);
  CHECK(out[1] == 5);
  CHECK(out[2] == untouched);
  CHECK(ring->empty());

  CHECK(ring->try_pop_bulk(out.data(), out.size()) == 0);
  CHECK(out[0] == 4);
}

TEMPLATE_TEST_CASE("ring: bulk calls move move-only elements", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<move_only, 5>();

  // Batches of 1 to 5 elements over 20 laps, so that many straddle the end of the slot array.
  int next_in = 0;
  int next_out = 0;
  for (int lap = 0; lap < 20; ++lap) {
    INFO("lap " << lap);
    const std::size_t want = 1 + static_cast<std::size_t>(lap % 5);
    std::vector<move_only> batch;
    for (std::size_t i = 0; i < want; ++i) batch.emplace_back(next_in++);
    REQUIRE(ring->try_push_bulk(batch.begin(), batch.end()) == want);
    for (const move_only& element : batch) CHECK(element.value == nullptr);

    std::array<std::optional<move_only>, 5> popped;
    REQUIRE(ring->try_pop_bulk(optional_writer<move_only>(popped.data()), popped.size()) == want);
    for (std::size_t i = 0; i < popped.size(); ++i) {
      if (i >= want) {
        CHECK_FALSE(popped[i].has_value());
        continue;
      }
      REQUIRE(popped[i].has_value());
      REQUIRE(popped[i]->value != nullptr);
      CHECK(*popped[i]->value == next_out++);
    }
    CHECK(ring->empty());
  }
}

TEMPLATE_TEST_CASE("ring: random calls match FIFO model", "[ring]", RINGMQ_ALL_CONFIGS) {
  ringmq_test::for_each_capacity<TestType, std::uint64_t, 1, 2, 3, 5, 8>(
      [](auto& ring, std::size_t capacity) {
        const std::uint64_t seed = 0x5EED0000 + capacity;
        INFO("capacity " << capacity << ", seed " << seed);
        const std::string mismatch = run_fifo_model(ring, capacity, seed, 2000);
        CHECK(mismatch == "");
        CHECK(ring.capacity() == capacity);
      });
}

TEMPLATE_TEST_CASE("ring: size tracks fill and drain", "[ring]", RINGMQ_ALL_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 7>();
  std::uint64_t next_in = 0;
  std::uint64_t next_out = 0;

  // Fill completely and drain completely, 30 times: more than 200 positions for 7 slots.
  for (int lap = 0; lap < 30; ++lap) {
    INFO("lap " << lap);
    for (std::size_t expected = 1; expected <= 7; ++expected) {
      REQUIRE(ring->try_push(next_in++));
      CHECK(ring->size() == expected);
      CHECK_FALSE(ring->empty());
    }
    CHECK_FALSE(ring->try_push(next_in));
    for (std::size_t left = 7; left > 0; --left) {
      const std::optional<std::uint64_t> value = ring->try_pop();
      REQUIRE(value.has_value());
      CHECK(*value == next_out++);
      CHECK(ring->size() == left - 1);
    }
    CHECK(ring->empty());
    CHECK(ring->capacity() == 7);

    // Shift the start of the next lap by a few slots.
    for (int i = 0; i < lap % 4; ++i) {
      REQUIRE(ring->try_push(next_in++));
      REQUIRE(ring->try_pop() == std::optional<std::uint64_t>(next_out++));
    }
  }
}

TEMPLATE_TEST_CASE("ring: allocator option provides storage", "[ring]", ringmq_test::mpmc,
                   ringmq_test::mpsc, ringmq_test::spmc, ringmq_test::spsc) {
  using ringmq_test::allocation_counters;
  using ring_type =
      ringmq::ring<std::uint64_t, typename TestType::producers, typename TestType::consumers,
                   ringmq::allocator<ringmq_test::counting_allocator<std::uint64_t>>>;
  allocation_counters::reset();
  {
    ring_type ring(100);
    CHECK(allocation_counters::allocations.load() >= 1);
    CHECK(allocation_counters::bytes_outstanding.load() >=
          static_cast<long>(100 * sizeof(std::uint64_t)));
    for (std::uint64_t i = 0; i < 250; ++i) {
      REQUIRE(ring.try_push(i));
      REQUIRE(ring.try_pop() == std::optional<std::uint64_t>(i));
    }
  }
  CHECK(allocation_counters::deallocations.load() == allocation_counters::allocations.load());
  CHECK(allocation_counters::bytes_outstanding.load() == 0);
}

TEMPLATE_TEST_CASE("ring: push_for on full ring times out", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<move_only, 2>();
  REQUIRE(ring->try_emplace(1));
  REQUIRE(ring->try_emplace(2));

  move_only extra(3);
  const auto start = steady_clock::now();
  CHECK_FALSE(ring->push_for(std::move(extra), 20ms));
  const auto elapsed = steady_clock::now() - start;
  CHECK(elapsed >= 20ms);
  CHECK(elapsed < generous_bound);
  REQUIRE(extra.value != nullptr);
  CHECK(*extra.value == 3);
  CHECK(ring->size() == 2);

  auto copies = TestType::template make<std::uint64_t, 1>();
  REQUIRE(copies->try_push(std::uint64_t{1}));
  const std::uint64_t value = 2;
  const auto copy_start = steady_clock::now();
  CHECK_FALSE(copies->push_for(value, 20ms));
  const auto copy_elapsed = steady_clock::now() - copy_start;
  CHECK(copy_elapsed >= 20ms);
  CHECK(copy_elapsed < generous_bound);
  CHECK(copies->try_pop() == std::optional<std::uint64_t>(1));
}

TEMPLATE_TEST_CASE("ring: pop_for on empty ring times out", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 2>();
  const auto start = steady_clock::now();
  CHECK_FALSE(ring->pop_for(20ms).has_value());
  const auto elapsed = steady_clock::now() - start;
  CHECK(elapsed >= 20ms);
  CHECK(elapsed < generous_bound);

  // Once more after the ring has carried an element, with a timeout in another unit.
  REQUIRE(ring->try_push(std::uint64_t{1}));
  REQUIRE(ring->try_pop().has_value());
  const auto second_start = steady_clock::now();
  CHECK_FALSE(ring->pop_for(std::chrono::duration<double>(0.02)).has_value());
  const auto second_elapsed = steady_clock::now() - second_start;
  CHECK(second_elapsed >= 20ms);
  CHECK(second_elapsed < generous_bound);
}

TEMPLATE_TEST_CASE("ring: zero and negative timeouts try once", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 1>();
  const auto start = steady_clock::now();

  const auto check_single_try = [&](auto timeout) {
    CHECK_FALSE(ring->pop_for(timeout).has_value());
    CHECK(ring->push_for(std::uint64_t{1}, timeout));
    CHECK_FALSE(ring->push_for(std::uint64_t{2}, timeout));
    const std::uint64_t copy = 3;
    CHECK_FALSE(ring->push_for(copy, timeout));
    CHECK(ring->pop_for(timeout) == std::optional<std::uint64_t>(1));
    CHECK(ring->empty());
  };
  SECTION("zero") {
    check_single_try(0ms);
    check_single_try(std::chrono::nanoseconds::zero());
    check_single_try(std::chrono::duration<double>(0.0));
  }
  SECTION("negative") {
    check_single_try(-1ms);
    check_single_try(-1h);
    check_single_try(std::chrono::duration<double>(-0.5));
  }
  SECTION("most negative") {
    check_single_try(std::chrono::nanoseconds::min());
    check_single_try(std::chrono::hours::min());
  }
  CHECK(steady_clock::now() - start < generous_bound);
}

TEMPLATE_TEST_CASE("ring: maximum timeout does not overflow", "[ring]", RINGMQ_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 1>();

  SECTION("ready calls return at once") {
    const auto start = steady_clock::now();
    CHECK(ring->push_for(std::uint64_t{1}, std::chrono::hours::max()));
    CHECK(ring->pop_for(std::chrono::hours::max()) == std::optional<std::uint64_t>(1));
    CHECK(ring->push_for(std::uint64_t{2}, std::chrono::nanoseconds::max()));
    CHECK(ring->pop_for(std::chrono::nanoseconds::max()) == std::optional<std::uint64_t>(2));
    CHECK(ring->push_for(std::uint64_t{3}, std::chrono::seconds::max()));
    CHECK(ring->pop_for(std::chrono::seconds::max()) == std::optional<std::uint64_t>(3));
    CHECK(ring->push_for(std::uint64_t{4}, std::chrono::duration<double>::max()));
    CHECK(ring->pop_for(std::chrono::duration<double>::max()) == std::optional<std::uint64_t>(4));
    CHECK(ring->push_for(std::uint64_t{5}, std::chrono::duration<std::uint64_t>::max()));
    CHECK(ring->pop_for(std::chrono::duration<std::uint64_t>::max()) ==
          std::optional<std::uint64_t>(5));
    CHECK(steady_clock::now() - start < generous_bound);
  }

  SECTION("waiting pop gets a later push") {
    ringmq_test::close_watchdog watchdog(*ring, hang_limit);
    std::atomic<bool> pushing{false};
    std::thread producer([&] {
      std::this_thread::sleep_for(helper_delay);
      pushing = true;
      (void)ring->try_push(std::uint64_t{42});
    });
    const std::optional<std::uint64_t> value = ring->pop_for(std::chrono::hours::max());
    const bool pushed_first = pushing.load();
    producer.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());
    CHECK(value == std::optional<std::uint64_t>(42));
    CHECK(pushed_first);
  }

  SECTION("waiting push gets a later pop") {
    REQUIRE(ring->try_push(std::uint64_t{1}));
    ringmq_test::close_watchdog watchdog(*ring, hang_limit);
    std::atomic<bool> popping{false};
    std::optional<std::uint64_t> popped;
    std::thread consumer([&] {
      std::this_thread::sleep_for(helper_delay);
      popping = true;
      popped = ring->try_pop();
    });
    const bool pushed = ring->push_for(std::uint64_t{2}, std::chrono::nanoseconds::max());
    const bool popped_first = popping.load();
    consumer.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());
    CHECK(pushed);
    CHECK(popped_first);
    CHECK(popped == std::optional<std::uint64_t>(1));
    CHECK(ring->try_pop() == std::optional<std::uint64_t>(2));
  }
}

TEMPLATE_TEST_CASE("ring: push waits while full", "[ring]", RINGMQ_WAITING_CONFIGS) {
  for (const ringmq_test::push_call call : ringmq_test::all_push_calls) {
    INFO(ringmq_test::call_name(call));
    auto ring = TestType::template make<std::uint64_t, 2>();
    fill_with_sequence(*ring, 0);
    ringmq_test::close_watchdog watchdog(*ring, hang_limit);

    // The main thread is the only producer, the helper the only consumer.
    std::atomic<bool> popping{false};
    std::optional<std::uint64_t> popped;
    std::thread consumer([&] {
      std::this_thread::sleep_for(helper_delay);
      popping = true;
      popped = ring->try_pop();
    });
    const bool pushed = ringmq_test::push_with(*ring, call, 2);
    const bool popped_first = popping.load();
    consumer.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());

    CHECK(pushed);
    CHECK(popped_first);
    CHECK(popped == std::optional<std::uint64_t>(0));
    CHECK(ring->size() == 2);
    CHECK(ring->try_pop() == std::optional<std::uint64_t>(1));
    CHECK(ring->try_pop() == std::optional<std::uint64_t>(2));
  }
}

TEMPLATE_TEST_CASE("ring: pop waits while empty", "[ring]", RINGMQ_WAITING_CONFIGS) {
  for (const ringmq_test::pop_call call : ringmq_test::all_pop_calls) {
    INFO(ringmq_test::call_name(call));
    auto ring = TestType::template make<std::uint64_t, 2>();
    ringmq_test::close_watchdog watchdog(*ring, hang_limit);

    // The main thread is the only consumer, the helper the only producer.
    std::atomic<bool> pushing{false};
    std::thread producer([&] {
      std::this_thread::sleep_for(helper_delay);
      pushing = true;
      (void)ring->try_push(std::uint64_t{7});
    });
    const std::optional<std::uint64_t> value = ringmq_test::pop_with(*ring, call);
    const bool pushed_first = pushing.load();
    producer.join();
    watchdog.stop();
    CHECK_FALSE(watchdog.fired());

    CHECK(value == std::optional<std::uint64_t>(7));
    CHECK(pushed_first);
    CHECK(ring->empty());
  }
}

TEMPLATE_TEST_CASE("ring: blocking calls hand over many elements", "[ring]",
                   RINGMQ_WAITING_CONFIGS) {
  // One producer and one consumer, both blocking, through a ring of one slot: every element
  // waits for the previous one to be taken.
  constexpr std::uint64_t count = TestType::spins ? 200 : 2000;
  auto ring = TestType::template make<std::uint64_t, 1>();
  ringmq_test::close_watchdog watchdog(*ring, hang_limit);
  std::vector<std::uint64_t> received;
  received.reserve(count);

  std::thread consumer([&] {
    for (std::uint64_t i = 0; i < count; ++i) {
      std::optional<std::uint64_t> value = ring->pop();
      if (!value) break;
      received.push_back(*value);
    }
  });
  std::uint64_t pushed = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (!ring->push(std::uint64_t{i})) break;
    ++pushed;
  }
  consumer.join();
  watchdog.stop();
  CHECK_FALSE(watchdog.fired());

  CHECK(pushed == count);
  REQUIRE(received.size() == count);
  for (std::uint64_t i = 0; i < count; ++i) {
    if (received[i] != i) FAIL("element " << i << " arrived as " << received[i]);
  }
  CHECK(ring->empty());
}
