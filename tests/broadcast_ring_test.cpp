// Tests of ringmq::broadcast_ring on one thread, plus the waiting calls with one helper thread:
// order, capacity and the slowest reader's gating, where a join starts, leaving, close and drain,
// element lifetimes, exceptions, construction checks and the options.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/broadcast_ring.hpp>

#include "support/close_watchdog.hpp"
#include "support/counted.hpp"
#include "support/elements.hpp"
#include "support/ring_configs.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;
using ringmq_test::move_only;

namespace {

// Time after which close_watchdog closes a ring whose threads have not finished, far above what
// any of these tests needs.
constexpr auto hang_limit = 60s;

// A broadcast ring configuration: producer role, wait policy, whether the capacity is an
// option (static) or a constructor argument (runtime), and slot layout.
template <class Producers, class WaitPolicy, bool Static, class Layout = ringmq::padded>
struct broadcast_setup {
  static constexpr bool multi_producer =
      std::is_same_v<Producers, ringmq::producers<ringmq::multi>>;

  template <class T, std::size_t N>
  using ring_type = std::conditional_t<
      Static,
      ringmq::broadcast_ring<T, ringmq::capacity<N>, Producers, ringmq::wait<WaitPolicy>,
                             ringmq::slot_layout<Layout>>,
      ringmq::broadcast_ring<T, Producers, ringmq::wait<WaitPolicy>, ringmq::slot_layout<Layout>>>;

  template <class T, std::size_t N>
  static std::unique_ptr<ring_type<T, N>> make(std::size_t max_readers = 8) {
    if constexpr (Static) {
      return std::make_unique<ring_type<T, N>>(
          ringmq::broadcast_config{.max_readers = max_readers});
    } else {
      return std::make_unique<ring_type<T, N>>(N, max_readers);
    }
  }
};

using single_writer = ringmq::producers<ringmq::single>;
using multi_writer = ringmq::producers<ringmq::multi>;

using single_runtime_park = broadcast_setup<single_writer, ringmq::park, false>;
using single_static_park = broadcast_setup<single_writer, ringmq::park, true>;
using multi_runtime_park = broadcast_setup<multi_writer, ringmq::park, false>;
using multi_static_park = broadcast_setup<multi_writer, ringmq::park, true>;
using single_runtime_packed = broadcast_setup<single_writer, ringmq::park, false, ringmq::packed>;
using multi_static_packed = broadcast_setup<multi_writer, ringmq::park, true, ringmq::packed>;
using single_runtime_spin = broadcast_setup<single_writer, ringmq::spin, false>;
using multi_runtime_spin = broadcast_setup<multi_writer, ringmq::spin, false>;
using single_runtime_yield = broadcast_setup<single_writer, ringmq::yield, false>;
using multi_runtime_yield = broadcast_setup<multi_writer, ringmq::yield, false>;
using single_runtime_sleep_only = broadcast_setup<single_writer, ringmq_test::sleep_only, false>;
using multi_runtime_sleep_only = broadcast_setup<multi_writer, ringmq_test::sleep_only, false>;

}  // namespace

// Both producer roles with runtime and static capacity, and each with packed slots once: for
// rules where the wait policy plays no part.
#define BROADCAST_CONFIGS                                                         \
  single_runtime_park, single_static_park, multi_runtime_park, multi_static_park, \
      single_runtime_packed, multi_static_packed

// Both producer roles with every wait policy, and a policy that sleeps at once so that waits take
// the kernel path: for the waiting calls.
#define BROADCAST_WAITING_CONFIGS                                                     \
  single_runtime_spin, multi_runtime_spin, single_runtime_yield, multi_runtime_yield, \
      single_runtime_park, multi_runtime_park, single_runtime_sleep_only, multi_runtime_sleep_only

namespace {

// Reads with try_read(visit) until nothing is ready and returns the values read.
template <class Reader>
std::vector<std::uint64_t> read_all(Reader& reader) {
  std::vector<std::uint64_t> values;
  while (reader.try_read([&](const std::uint64_t& value) { values.push_back(value); })) {
  }
  return values;
}

std::vector<std::uint64_t> sequence_from(std::uint64_t first, std::uint64_t count) {
  std::vector<std::uint64_t> values;
  for (std::uint64_t i = 0; i < count; ++i) values.push_back(first + i);
  return values;
}

}  // namespace

TEMPLATE_TEST_CASE("broadcast_ring: every reader sees every element", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 16>();
  auto visitor_reader = ring->try_join();
  auto copy_reader = ring->try_join();
  auto batch_reader = ring->try_join();
  auto waiting_reader = ring->try_join();
  REQUIRE(visitor_reader);
  REQUIRE(copy_reader);
  REQUIRE(batch_reader);
  REQUIRE(waiting_reader);
  CHECK(ring->reader_count() == 4);

  // Every publishing call, each publishing the next value.
  const std::uint64_t copied = 1;
  const std::uint64_t copied_for = 7;
  REQUIRE(ring->try_publish(std::uint64_t{0}));
  REQUIRE(ring->try_publish(copied));
  REQUIRE(ring->try_emplace(2u));
  REQUIRE(ring->publish(std::uint64_t{3}));
  const std::uint64_t copied_blocking = 4;
  REQUIRE(ring->publish(copied_blocking));
  REQUIRE(ring->emplace(5u));
  REQUIRE(ring->publish_for(std::uint64_t{6}, 1min));
  REQUIRE(ring->publish_for(copied_for, std::chrono::hours::max()));
  const std::vector<std::uint64_t> expected = sequence_from(0, 8);

  CHECK(read_all(*visitor_reader) == expected);

  std::vector<std::uint64_t> copies;
  while (std::optional<std::uint64_t> value = copy_reader->try_read()) copies.push_back(*value);
  CHECK(copies == expected);

  std::vector<std::uint64_t> batched;
  const auto append = [&](const std::uint64_t& value) { batched.push_back(value); };
  CHECK(batch_reader->try_read_batch(append, 3) == 3);
  CHECK(batch_reader->try_read_batch(append, 100) == 5);
  CHECK(batch_reader->try_read_batch(append, 100) == 0);
  CHECK(batched == expected);

  std::vector<std::uint64_t> waited;
  const auto record = [&](const std::uint64_t& value) { waited.push_back(value); };
  REQUIRE(waiting_reader->read(record));
  REQUIRE(waiting_reader->read_for(record, 1min));
  REQUIRE(waiting_reader->read_for(record, std::chrono::hours::max()));
  CHECK(waiting_reader->read_batch_for(record, 100, 1min) == 5);
  CHECK(waited == expected);

  for (auto* reader : {&*visitor_reader, &*copy_reader, &*batch_reader, &*waiting_reader}) {
    CHECK(reader->lag() == 0);
    CHECK(reader->position() == 8);
  }
}

TEMPLATE_TEST_CASE("broadcast_ring: readers share one copy", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<move_only, 4>();
  auto first = ring->try_join();
  auto second = ring->try_join();
  REQUIRE(first);
  REQUIRE(second);
  REQUIRE(ring->try_emplace(5));

  const move_only* seen_by_first = nullptr;
  const move_only* seen_by_second = nullptr;
  REQUIRE(first->try_read([&](const move_only& element) { seen_by_first = &element; }));
  REQUIRE(second->try_read([&](const move_only& element) { seen_by_second = &element; }));
  REQUIRE(seen_by_first != nullptr);
  CHECK(seen_by_first == seen_by_second);
  REQUIRE(seen_by_first->value != nullptr);
  CHECK(*seen_by_first->value == 5);
}

TEMPLATE_TEST_CASE("broadcast_ring: slowest reader gates the writer", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  CHECK(ring->capacity() == 4);
  auto fast = ring->try_join();
  auto slow = ring->try_join();
  REQUIRE(fast);
  REQUIRE(slow);

  for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(ring->try_publish(i));
  CHECK(slow->lag() == 4);

  // Full: element 0 is unread by both readers, so every call fails and the ring stays open.
  CHECK_FALSE(ring->try_publish(std::uint64_t{4}));
  CHECK_FALSE(ring->try_emplace(4u));
  CHECK_FALSE(ring->publish_for(std::uint64_t{4}, 0ms));
  CHECK_FALSE(ring->is_closed());

  // The fast reader alone does not make room.
  CHECK(read_all(*fast) == sequence_from(0, 4));
  CHECK_FALSE(ring->try_publish(std::uint64_t{4}));

  // Each element the slow reader reads makes room for exactly one more.
  std::uint64_t value = 99;
  REQUIRE(slow->try_read([&](const std::uint64_t& element) { value = element; }));
  CHECK(value == 0);
  CHECK(ring->try_publish(std::uint64_t{4}));
  CHECK_FALSE(ring->try_publish(std::uint64_t{5}));
  CHECK(slow->lag() == 4);
  CHECK(fast->lag() == 1);

  CHECK(read_all(*slow) == sequence_from(1, 4));
  CHECK(read_all(*fast) == sequence_from(4, 1));
  for (std::uint64_t i = 5; i < 9; ++i) CHECK(ring->try_publish(i));
  CHECK_FALSE(ring->try_publish(std::uint64_t{9}));
}

TEMPLATE_TEST_CASE("broadcast_ring: join starts at the next element", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();

  // Without readers the writer laps the buffer twice; a reader that joins then reads none of it.
  for (std::uint64_t i = 0; i < 10; ++i) REQUIRE(ring->try_publish(i));
  auto late = ring->try_join();
  REQUIRE(late);
  CHECK(late->position() == 10);
  CHECK(late->lag() == 0);
  CHECK_FALSE(late->try_read([](const std::uint64_t&) {}));
  CHECK(late->try_read_batch([](const std::uint64_t&) {}, 8) == 0);

  REQUIRE(ring->try_publish(std::uint64_t{10}));
  REQUIRE(ring->try_publish(std::uint64_t{11}));
  auto later = ring->try_join();
  REQUIRE(later);
  CHECK(later->position() == 12);
  REQUIRE(ring->try_publish(std::uint64_t{12}));

  CHECK(read_all(*late) == sequence_from(10, 3));
  CHECK(read_all(*later) == sequence_from(12, 1));
}

TEMPLATE_TEST_CASE("broadcast_ring: publishing without readers never fails", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 2>();
  CHECK(ring->reader_count() == 0);
  for (std::uint64_t i = 0; i < 100; ++i) {
    INFO("publish " << i);
    REQUIRE(ring->try_publish(i));
  }
}

TEMPLATE_TEST_CASE("broadcast_ring: leaving releases the writer", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 2>();
  auto idle = ring->try_join();
  REQUIRE(idle);
  REQUIRE(ring->try_publish(std::uint64_t{0}));
  REQUIRE(ring->try_publish(std::uint64_t{1}));
  REQUIRE_FALSE(ring->try_publish(std::uint64_t{2}));

  // A move hands over the place: the new handle still gates the writer.
  auto moved = std::move(*idle);
  CHECK_FALSE(idle->joined());
  CHECK(moved.joined());
  CHECK(ring->reader_count() == 1);
  CHECK_FALSE(ring->try_publish(std::uint64_t{2}));

  moved.leave();
  CHECK_FALSE(moved.joined());
  CHECK(ring->reader_count() == 0);
  CHECK(moved.lag() == 0);
  CHECK_FALSE(moved.try_read([](const std::uint64_t&) {}));
  for (std::uint64_t i = 2; i < 10; ++i) CHECK(ring->try_publish(i));

  // Destroying a handle leaves too.
  {
    auto scoped = ring->try_join();
    REQUIRE(scoped);
    CHECK(ring->try_publish(std::uint64_t{10}));
    CHECK(ring->try_publish(std::uint64_t{11}));
    CHECK_FALSE(ring->try_publish(std::uint64_t{12}));
  }
  CHECK(ring->try_publish(std::uint64_t{12}));
}

TEMPLATE_TEST_CASE("broadcast_ring: moved reader keeps its place", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 8>();
  auto first = ring->try_join();
  auto other = ring->try_join();
  REQUIRE(first);
  REQUIRE(other);
  for (std::uint64_t i = 0; i < 3; ++i) REQUIRE(ring->try_publish(i));
  REQUIRE(first->try_read([](const std::uint64_t&) {}));

  auto second = std::move(*first);
  CHECK(second.position() == 1);
  CHECK(second.lag() == 2);
  CHECK_FALSE(first->try_read().has_value());
  CHECK(first->lag() == 0);

  // Move assignment leaves the target's old place before taking the new one.
  CHECK(ring->reader_count() == 2);
  *other = std::move(second);
  CHECK(ring->reader_count() == 1);
  CHECK(other->position() == 1);
  CHECK(read_all(*other) == sequence_from(1, 2));
}

TEMPLATE_TEST_CASE("broadcast_ring: max_readers caps joins", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>(3);
  CHECK(ring->max_readers() == 3);
  std::vector<typename std::remove_reference_t<decltype(*ring)>::reader> readers;
  for (int i = 0; i < 3; ++i) {
    auto joined = ring->try_join();
    REQUIRE(joined);
    readers.push_back(std::move(*joined));
  }
  CHECK(ring->reader_count() == 3);
  CHECK_FALSE(ring->try_join().has_value());

  // A freed place is taken again, and the new reader gates like any other.
  readers[1].leave();
  CHECK(ring->reader_count() == 2);
  auto again = ring->try_join();
  REQUIRE(again);
  CHECK_FALSE(ring->try_join().has_value());
  for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(ring->try_publish(i));
  CHECK_FALSE(ring->try_publish(std::uint64_t{4}));
  CHECK(read_all(*again) == sequence_from(0, 4));
}

TEMPLATE_TEST_CASE("broadcast_ring: close drains then reads fail", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  for (std::uint64_t i = 0; i < 3; ++i) REQUIRE(ring->try_publish(i));
  REQUIRE(reader->try_read().value_or(99) == 0);

  ring->close();
  CHECK(ring->is_closed());
  ring->close();  // idempotent
  CHECK(ring->is_closed());

  // Publishing fails, with room in the buffer.
  CHECK_FALSE(ring->try_publish(std::uint64_t{3}));
  CHECK_FALSE(ring->try_emplace(3u));
  CHECK_FALSE(ring->publish(std::uint64_t{3}));
  CHECK_FALSE(ring->emplace(3u));
  CHECK_FALSE(ring->publish_for(std::uint64_t{3}, 1min));
  CHECK_FALSE(ring->try_join().has_value());

  // The reader gets what was published before close, then every read reports the ring drained
  // without waiting.
  CHECK(reader->lag() == 2);
  std::uint64_t value = 99;
  CHECK(reader->read([&](const std::uint64_t& element) { value = element; }));
  CHECK(value == 1);
  CHECK(reader->read_for([&](const std::uint64_t& element) { value = element; }, 1min));
  CHECK(value == 2);
  CHECK_FALSE(reader->try_read().has_value());
  CHECK_FALSE(reader->read([](const std::uint64_t&) {}));
  CHECK_FALSE(reader->read_for([](const std::uint64_t&) {}, std::chrono::hours::max()));
  CHECK(reader->read_batch_for([](const std::uint64_t&) {}, 8, 1min) == 0);
  CHECK(reader->position() == 3);
}

TEMPLATE_TEST_CASE("broadcast_ring: try_read_batch advances once", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(ring->try_publish(i));

  std::vector<std::uint64_t> seen;
  const auto append = [&](const std::uint64_t& value) { seen.push_back(value); };
  CHECK(reader->try_read_batch(append, 0) == 0);
  CHECK(seen.empty());
  CHECK(reader->lag() == 4);

  CHECK(reader->try_read_batch(append, 3) == 3);
  CHECK(seen == sequence_from(0, 3));
  CHECK(reader->position() == 3);
  CHECK(reader->lag() == 1);

  // The batch freed three slots for the writer.
  for (std::uint64_t i = 4; i < 7; ++i) CHECK(ring->try_publish(i));
  CHECK_FALSE(ring->try_publish(std::uint64_t{7}));

  CHECK(reader->try_read_batch(append, std::numeric_limits<std::size_t>::max()) == 4);
  CHECK(seen == sequence_from(0, 7));
  CHECK(reader->try_read_batch(append, 8) == 0);
}

TEMPLATE_TEST_CASE("broadcast_ring: throwing visitor leaves element unread", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 8>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  for (std::uint64_t i = 0; i < 5; ++i) REQUIRE(ring->try_publish(i));

  std::vector<std::uint64_t> seen;
  const auto fail_on_two = [&](const std::uint64_t& value) {
    if (value == 2) throw std::runtime_error("visitor failed on purpose");
    seen.push_back(value);
  };
  CHECK_THROWS_AS(reader->try_read_batch(fail_on_two, 5), std::runtime_error);
  CHECK(seen == sequence_from(0, 2));
  CHECK(reader->position() == 2);
  CHECK(reader->lag() == 3);

  CHECK_THROWS_AS(reader->try_read(fail_on_two), std::runtime_error);
  CHECK(reader->position() == 2);
  CHECK_THROWS_AS(reader->read_for(fail_on_two, 1min), std::runtime_error);
  CHECK(reader->position() == 2);

  CHECK(read_all(*reader) == sequence_from(2, 3));
}

TEMPLATE_TEST_CASE("broadcast_ring: counted elements are destroyed once", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  counted::reset();
  {
    auto ring = TestType::template make<counted, 4>();
    auto reader = ring->try_join();
    REQUIRE(reader);

    // Elements stay in the buffer after they are read, until the writer reuses their slots.
    std::uint64_t expected = 0;
    for (std::uint64_t i = 0; i < 11; ++i) {
      REQUIRE(ring->try_emplace(i));
      CHECK(counted::live() == static_cast<long>(std::min<std::uint64_t>(i + 1, 4)));
      REQUIRE(
          reader->try_read([&](const counted& element) { CHECK(element.value() == expected); }));
      ++expected;
    }

    // Moved in and copied in: the argument stays alive, the ring keeps its own.
    counted moved(100);
    REQUIRE(ring->try_publish(std::move(moved)));
    const counted copied(101);
    REQUIRE(ring->publish(copied));
    CHECK(counted::live() == 4 + 2);
    std::optional<counted> copy = reader->try_read();
    REQUIRE(copy.has_value());
    CHECK(copy->value() == 100);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEMPLATE_TEST_CASE("broadcast_ring: throwing constructor publishes nothing", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  counted::reset();
  {
    auto ring = TestType::template make<counted, 4>();
    auto reader = ring->try_join();
    REQUIRE(reader);

    // On a fresh slot and, after a lap, on a slot that contains an element.
    for (std::uint64_t lap = 0; lap < 2; ++lap) {
      INFO("lap " << lap);
      const long live_before = counted::live();
      CHECK_THROWS_AS(ring->try_emplace(7u, ringmq_test::throw_on_construct),
                      ringmq_test::counted_error);
      CHECK_THROWS_AS(ring->emplace(7u, ringmq_test::throw_on_construct),
                      ringmq_test::counted_error);
      counted poisoned(8);
      poisoned.throw_on_copy = true;
      CHECK_THROWS_AS(ring->try_publish(std::as_const(poisoned)), ringmq_test::counted_error);
      CHECK_THROWS_AS(ring->publish_for(std::as_const(poisoned), 1min), ringmq_test::counted_error);
      CHECK(counted::live() == live_before + 1);  // only `poisoned`
      CHECK(reader->lag() == 0);

      for (std::uint64_t i = 0; i < 4; ++i) REQUIRE(ring->try_emplace(lap * 4 + i));
      std::vector<std::uint64_t> values;
      while (reader->try_read([&](const counted& element) { values.push_back(element.value()); })) {
      }
      CHECK(values == sequence_from(lap * 4, 4));
    }
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEMPLATE_TEST_CASE("broadcast_ring: failed publish leaves argument", "[broadcast_ring]",
                   BROADCAST_CONFIGS) {
  auto ring = TestType::template make<move_only, 2>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  REQUIRE(ring->try_publish(move_only(1)));
  REQUIRE(ring->try_emplace(2));

  move_only extra(3);
  CHECK_FALSE(ring->try_publish(std::move(extra)));
  REQUIRE(extra.value != nullptr);
  CHECK(*extra.value == 3);
  CHECK_FALSE(ring->publish_for(std::move(extra), 0ms));
  REQUIRE(extra.value != nullptr);

  auto owned = std::make_unique<int>(4);
  CHECK_FALSE(ring->try_emplace(std::move(owned)));
  REQUIRE(owned != nullptr);

  // std::string's copy constructor may throw, so with several producers the element is built
  // from a copy of the argument before the claim. Either way the argument stays as it was.
  auto strings = TestType::template make<std::string, 1>();
  auto string_reader = strings->try_join();
  REQUIRE(string_reader);
  REQUIRE(strings->try_publish(std::string(100, 'a')));
  std::string text(100, 'b');
  CHECK_FALSE(strings->try_emplace(text));
  CHECK_FALSE(strings->try_publish(text));
  CHECK_FALSE(strings->try_emplace(std::move(text)));
  CHECK(text == std::string(100, 'b'));
  CHECK(string_reader->try_read().value_or("") == std::string(100, 'a'));

  // Readers see move-only elements without a copy.
  std::vector<int> values;
  while (reader->try_read([&](const move_only& element) { values.push_back(*element.value); })) {
  }
  CHECK(values == std::vector<int>{1, 2});
}

TEMPLATE_TEST_CASE("broadcast_ring: over-aligned elements", "[broadcast_ring]", BROADCAST_CONFIGS) {
  using aligned = ringmq_test::over_aligned<128>;
  const long misaligned_before = aligned::misaligned_constructions();
  auto ring = TestType::template make<aligned, 4>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  for (std::uint64_t i = 0; i < 10; ++i) {
    REQUIRE(ring->try_emplace(i));
    bool aligned_read = false;
    REQUIRE(reader->try_read([&](const aligned& element) {
      aligned_read = reinterpret_cast<std::uintptr_t>(&element) % 128 == 0 && element.value == i;
    }));
    CHECK(aligned_read);
  }
  CHECK(aligned::misaligned_constructions() == misaligned_before);
}

TEST_CASE("broadcast_ring: bad capacity is rejected", "[broadcast_ring]") {
  using ring_type = ringmq::broadcast_ring<std::uint64_t>;
  CHECK_THROWS_AS(ring_type(0), std::invalid_argument);
  CHECK_THROWS_WITH(ring_type(0), Catch::Contains("capacity 0"));
  CHECK_THROWS_AS(ring_type(3), std::invalid_argument);
  CHECK_THROWS_WITH(ring_type(1000), Catch::Contains("capacity 1000") && Catch::Contains("512") &&
                                         Catch::Contains("1024"));
  CHECK_THROWS_AS(ring_type(ringmq::broadcast_config{.capacity = 24}), std::invalid_argument);

  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
  for (const std::size_t capacity : {max, std::size_t{1} << 62, std::size_t{1} << 63}) {
    INFO("capacity " << capacity);
    CHECK_THROWS_AS(ring_type(capacity), std::length_error);
    CHECK_THROWS_WITH(ring_type(capacity), Catch::Contains(std::to_string(capacity)));
  }

  // Capacities that work, from one element up.
  for (const std::size_t capacity : {1, 2, 64, 4096}) {
    ring_type ring(capacity);
    CHECK(ring.capacity() == capacity);
  }
}

TEST_CASE("broadcast_ring: bad max_readers is rejected", "[broadcast_ring]") {
  using ring_type = ringmq::broadcast_ring<std::uint64_t>;
  CHECK_THROWS_AS(ring_type(8, 0), std::invalid_argument);
  CHECK_THROWS_WITH(ring_type(8, 0), Catch::Contains("max_readers 0"));
  const std::size_t huge = std::numeric_limits<std::size_t>::max() / 2;
  CHECK_THROWS_AS(ring_type(8, huge), std::length_error);
  CHECK_THROWS_WITH(ring_type(8, huge), Catch::Contains(std::to_string(huge)));

  ring_type one(8, 1);
  CHECK(one.max_readers() == 1);
  auto only = one.try_join();
  CHECK(only.has_value());
  CHECK_FALSE(one.try_join().has_value());
}

TEST_CASE("broadcast_ring: static capacity option", "[broadcast_ring]") {
  using ring_type = ringmq::broadcast_ring<std::uint64_t, ringmq::capacity<8>>;
  ring_type defaults;
  CHECK(defaults.capacity() == 8);
  CHECK(defaults.max_readers() == ringmq::broadcast_config{}.max_readers);

  ring_type named{{.capacity = 8, .max_readers = 2}};
  CHECK(named.capacity() == 8);
  CHECK(named.max_readers() == 2);

  CHECK_THROWS_AS(ring_type(ringmq::broadcast_config{.capacity = 16}), std::invalid_argument);
  CHECK_THROWS_WITH(ring_type(ringmq::broadcast_config{.capacity = 16}),
                    Catch::Contains("16") && Catch::Contains("capacity<8>"));
  CHECK_THROWS_AS(ring_type(ringmq::broadcast_config{.max_readers = 0}), std::invalid_argument);

  auto reader = defaults.try_join();
  REQUIRE(reader);
  for (std::uint64_t i = 0; i < 8; ++i) REQUIRE(defaults.try_publish(i));
  CHECK_FALSE(defaults.try_publish(std::uint64_t{8}));
  CHECK(read_all(*reader) == sequence_from(0, 8));
}

namespace {

// Publishes two elements and returns the distance in bytes between their addresses, as a reader
// sees them.
template <class Ring>
std::ptrdiff_t element_stride(Ring& ring) {
  auto reader = ring.try_join();
  REQUIRE(reader);
  REQUIRE(ring.try_publish(std::uint64_t{0}));
  REQUIRE(ring.try_publish(std::uint64_t{1}));
  const char* addresses[2] = {nullptr, nullptr};
  std::size_t index = 0;
  const auto record = [&](const std::uint64_t& element) {
    addresses[index++] = reinterpret_cast<const char*>(&element);
  };
  REQUIRE(reader->try_read_batch(record, 2) == 2);
  return addresses[1] - addresses[0];
}

}  // namespace

TEST_CASE("broadcast_ring: slot layout option", "[broadcast_ring]") {
  ringmq::broadcast_ring<std::uint64_t> padded_by_default(8);
  CHECK(element_stride(padded_by_default) == 64);
  ringmq::broadcast_ring<std::uint64_t, ringmq::slot_layout<ringmq::packed>> packed(8);
  CHECK(element_stride(packed) == static_cast<std::ptrdiff_t>(sizeof(std::uint64_t)));
  ringmq::broadcast_ring<std::uint64_t, ringmq::capacity<8>, ringmq::producers<ringmq::multi>,
                         ringmq::slot_layout<ringmq::packed>>
      packed_static;
  CHECK(element_stride(packed_static) == static_cast<std::ptrdiff_t>(sizeof(std::uint64_t)));
}

TEST_CASE("broadcast_ring: multi-producer option", "[broadcast_ring]") {
  // Two threads publish interleaved, and the reader reads one total order that keeps each
  // thread's order.
  ringmq::broadcast_ring<std::uint64_t, ringmq::producers<ringmq::multi>> ring(8);
  auto reader = ring.try_join();
  REQUIRE(reader);

  constexpr std::uint64_t per_thread = 2000;
  std::atomic<std::uint64_t> read_count{0};
  std::vector<std::uint64_t> log;
  std::thread consumer([&] {
    while (log.size() < 2 * per_thread) {
      if (!reader->read_for([&](const std::uint64_t& value) { log.push_back(value); }, 1min)) {
        break;
      }
    }
    read_count = log.size();
  });
  ringmq_test::close_watchdog<decltype(ring)> watchdog(ring, hang_limit);
  std::thread even([&] {
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      if (!ring.publish(2 * i)) break;
    }
  });
  for (std::uint64_t i = 0; i < per_thread; ++i) {
    if (!ring.publish(2 * i + 1)) break;
  }
  even.join();
  consumer.join();
  watchdog.stop();
  REQUIRE_FALSE(watchdog.fired());

  REQUIRE(read_count == 2 * per_thread);
  std::uint64_t next_even = 0;
  std::uint64_t next_odd = 1;
  for (const std::uint64_t value : log) {
    std::uint64_t& next = value % 2 == 0 ? next_even : next_odd;
    REQUIRE(value == next);
    next += 2;
  }
  CHECK(next_even == 2 * per_thread);
  CHECK(next_odd == 2 * per_thread + 1);
}

TEMPLATE_TEST_CASE("broadcast_ring: publish waits for the slowest reader", "[broadcast_ring]",
                   BROADCAST_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 2>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  REQUIRE(ring->try_publish(std::uint64_t{0}));
  REQUIRE(ring->try_publish(std::uint64_t{1}));

  // The writer waits until the reader reads element 0; the main thread reads it once the writer
  // has started, so the publish is most likely waiting by then, and must succeed either way.
  std::atomic<bool> started{false};
  std::atomic<bool> published{false};
  ringmq_test::close_watchdog<std::remove_reference_t<decltype(*ring)>> watchdog(*ring, hang_limit);
  std::thread writer([&] {
    started = true;
    published = ring->publish(std::uint64_t{2});
  });
  while (!started) std::this_thread::yield();
  std::uint64_t first = 99;
  REQUIRE(reader->read([&](const std::uint64_t& value) { first = value; }));
  writer.join();
  watchdog.stop();
  REQUIRE_FALSE(watchdog.fired());

  CHECK(first == 0);
  CHECK(published);
  CHECK(read_all(*reader) == sequence_from(1, 2));
}

TEMPLATE_TEST_CASE("broadcast_ring: leave wakes a waiting publish", "[broadcast_ring]",
                   BROADCAST_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 1>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  REQUIRE(ring->try_publish(std::uint64_t{0}));

  std::atomic<bool> started{false};
  std::atomic<bool> published{false};
  ringmq_test::close_watchdog<std::remove_reference_t<decltype(*ring)>> watchdog(*ring, hang_limit);
  std::thread writer([&] {
    started = true;
    published = ring->publish_for(std::uint64_t{1}, std::chrono::hours::max());
  });
  while (!started) std::this_thread::yield();
  reader->leave();
  writer.join();
  watchdog.stop();
  REQUIRE_FALSE(watchdog.fired());
  CHECK(published);
}

TEMPLATE_TEST_CASE("broadcast_ring: close wakes a waiting publish", "[broadcast_ring]",
                   BROADCAST_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 1>();
  auto reader = ring->try_join();
  REQUIRE(reader);
  REQUIRE(ring->try_publish(std::uint64_t{0}));

  std::atomic<bool> started{false};
  std::atomic<int> result{-1};
  std::thread writer([&] {
    started = true;
    result = ring->publish(std::uint64_t{1}) ? 1 : 0;
  });
  while (!started) std::this_thread::yield();
  ring->close();
  writer.join();

  CHECK(result == 0);
  CHECK(read_all(*reader) == sequence_from(0, 1));
}

TEMPLATE_TEST_CASE("broadcast_ring: read waits for a publish", "[broadcast_ring]",
                   BROADCAST_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  auto reader = ring->try_join();
  REQUIRE(reader);

  std::atomic<bool> started{false};
  std::vector<std::uint64_t> values;
  std::atomic<std::size_t> batch{0};
  ringmq_test::close_watchdog<std::remove_reference_t<decltype(*ring)>> watchdog(*ring, hang_limit);
  std::thread consumer([&] {
    started = true;
    const auto record = [&](const std::uint64_t& value) { values.push_back(value); };
    if (!reader->read(record)) return;
    batch = reader->read_batch_for(record, 8, std::chrono::hours::max());
  });
  while (!started) std::this_thread::yield();
  REQUIRE(ring->publish(std::uint64_t{0}));
  REQUIRE(ring->publish(std::uint64_t{1}));
  consumer.join();
  watchdog.stop();
  REQUIRE_FALSE(watchdog.fired());

  // read() took element 0, so the batch finds element 1 alone.
  CHECK(batch == 1);
  CHECK(values == sequence_from(0, 2));
}

TEMPLATE_TEST_CASE("broadcast_ring: close wakes a waiting read", "[broadcast_ring]",
                   BROADCAST_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 4>();
  auto reader = ring->try_join();
  REQUIRE(reader);

  std::atomic<bool> started{false};
  std::atomic<int> result{-1};
  std::thread consumer([&] {
    started = true;
    result = reader->read([](const std::uint64_t&) {}) ? 1 : 0;
  });
  while (!started) std::this_thread::yield();
  ring->close();
  consumer.join();
  CHECK(result == 0);
}

TEMPLATE_TEST_CASE("broadcast_ring: timed calls give up", "[broadcast_ring]",
                   BROADCAST_WAITING_CONFIGS) {
  auto ring = TestType::template make<std::uint64_t, 1>();
  auto reader = ring->try_join();
  REQUIRE(reader);

  CHECK_FALSE(reader->read_for([](const std::uint64_t&) {}, 1ms));
  CHECK(reader->read_batch_for([](const std::uint64_t&) {}, 4, 1ms) == 0);
  CHECK_FALSE(reader->read_for([](const std::uint64_t&) {}, -1s));

  REQUIRE(ring->try_publish(std::uint64_t{0}));
  CHECK_FALSE(ring->publish_for(std::uint64_t{1}, 1ms));
  CHECK_FALSE(ring->publish_for(std::uint64_t{1}, -1s));
  CHECK_FALSE(ring->is_closed());
  CHECK(reader->lag() == 1);
  CHECK(read_all(*reader) == sequence_from(0, 1));
}
