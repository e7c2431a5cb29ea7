// Tests of what ringmq::ring does with its elements: move-only, non-default-constructible and
// over-aligned types, constructors and copies that throw, and destruction of every element.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ringmq/ring.hpp>

#include "support/counted.hpp"
#include "support/elements.hpp"
#include "support/optional_writer.hpp"
#include "support/ring_configs.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;
using ringmq_test::counted_error;
using ringmq_test::move_only;
using ringmq_test::no_default;
using ringmq_test::optional_writer;

namespace {

// Pushes counted elements 0, 1, ... with the calls that cannot fail on a ring with room.
template <class Ring>
void push_counted(Ring& ring, std::uint64_t first, std::size_t count) {
  for (std::uint64_t value = first; value < first + count; ++value) {
    switch (value % 4) {
      case 0:
        REQUIRE(ring.try_emplace(value));
        break;
      case 1:
        REQUIRE(ring.try_push(counted(value)));
        break;
      case 2: {
        const counted copy(value);
        REQUIRE(ring.push(copy));
        break;
      }
      case 3:
        REQUIRE(ring.emplace(value));
        break;
    }
  }
}

// Pops count elements and checks that they are first, first + 1, ...
template <class Ring>
void pop_counted(Ring& ring, std::uint64_t first, std::size_t count) {
  for (std::uint64_t value = first; value < first + count; ++value) {
    if (value % 2 == 0) {
      const std::optional<counted> popped = ring.try_pop();
      REQUIRE(popped.has_value());
      CHECK(popped->value() == value);
    } else {
      counted out(0);
      REQUIRE(ring.try_pop(out));
      CHECK(out.value() == value);
    }
  }
}

void check_counted_balance() {
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("ring: move-only elements round-trip", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  auto ring = TestType::template make<move_only, 3>();

  // Two elements in and two out per round, each with a different call, over many laps.
  int next_in = 0;
  int next_out = 0;
  for (int round = 0; round < 30; ++round) {
    INFO("round " << round);
    for (int i = 0; i < 2; ++i) {
      const int value = next_in++;
      switch (value % 5) {
        case 0:
          REQUIRE(ring->try_push(move_only(value)));
          break;
        case 1:
          REQUIRE(ring->try_emplace(std::make_unique<int>(value)));
          break;
        case 2:
          REQUIRE(ring->push(move_only(value)));
          break;
        case 3:
          REQUIRE(ring->emplace(value));
          break;
        case 4:
          REQUIRE(ring->push_for(move_only(value), 1min));
          break;
      }
    }
    for (int i = 0; i < 2; ++i) {
      std::optional<move_only> popped;
      switch ((round + i) % 4) {
        case 0:
          popped = ring->try_pop();
          break;
        case 1: {
          move_only out(-1);
          if (ring->try_pop(out)) popped.emplace(std::move(out));
          break;
        }
        case 2:
          popped = ring->pop();
          break;
        case 3:
          popped = ring->pop_for(1min);
          break;
      }
      REQUIRE(popped.has_value());
      REQUIRE(popped->value != nullptr);
      CHECK(*popped->value == next_out++);
    }
  }
  CHECK(ring->empty());
}

TEMPLATE_TEST_CASE("ring: elements without default constructor", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  auto ring = TestType::template make<no_default, 2>();
  REQUIRE(ring->try_emplace(1, "one"));
  REQUIRE(ring->emplace(2, std::string(40, 't')));
  CHECK_FALSE(ring->try_emplace(3, "three"));

  const std::optional<no_default> first = ring->pop();
  REQUIRE(first.has_value());
  CHECK(first->number() == 1);
  CHECK(first->text() == "one");

  no_default out(0, "");
  REQUIRE(ring->try_pop(out));
  CHECK(out.number() == 2);
  CHECK(out.text() == std::string(40, 't'));

  REQUIRE(ring->try_push(no_default(3, "three")));
  const no_default four(4, "four");
  REQUIRE(ring->push(four));
  CHECK(four.text() == "four");

  std::array<std::optional<no_default>, 3> popped;
  REQUIRE(ring->try_pop_bulk(optional_writer<no_default>(popped.data()), popped.size()) == 2);
  REQUIRE(popped[0].has_value());
  CHECK(popped[0]->number() == 3);
  CHECK(popped[0]->text() == "three");
  REQUIRE(popped[1].has_value());
  CHECK(popped[1]->number() == 4);
  CHECK(popped[1]->text() == "four");
  CHECK_FALSE(popped[2].has_value());
}

TEMPLATE_TEST_CASE("ring: failed try_emplace keeps its arguments", "[ring]",
                   RINGMQ_STORAGE_CONFIGS) {
  // no_default's constructor may throw and move_only's may not, so the ring may build them in
  // different ways. Neither way may consume the arguments of a try_emplace that fails.
  auto texts = TestType::template make<no_default, 1>();
  REQUIRE(texts->try_emplace(1, "one"));
  auto pointers = TestType::template make<move_only, 1>();
  REQUIRE(pointers->try_emplace(1));

  SECTION("full") {}
  SECTION("closed") {
    REQUIRE(texts->try_pop().has_value());
    REQUIRE(pointers->try_pop().has_value());
    texts->close();
    pointers->close();
  }

  std::string text(40, 'x');
  CHECK_FALSE(texts->try_emplace(2, std::move(text)));
  CHECK(text == std::string(40, 'x'));

  auto owned = std::make_unique<int>(2);
  CHECK_FALSE(pointers->try_emplace(std::move(owned)));
  REQUIRE(owned != nullptr);
  CHECK(*owned == 2);
}

namespace {

template <class TestType, std::size_t Alignment>
void check_over_aligned() {
  using element = ringmq_test::over_aligned<Alignment>;
  static_assert(alignof(element) == Alignment);
  const long misaligned_before = element::misaligned_constructions();

  // Capacity 3 is not a power of two, so runtime capacities take the division path.
  auto ring = TestType::template make<element, 3>();
  std::uint64_t next_in = 0;
  std::uint64_t next_out = 0;
  for (int lap = 0; lap < 10; ++lap) {
    REQUIRE(ring->try_emplace(next_in++));
    REQUIRE(ring->try_push(element(next_in++)));
    const element copy(next_in++);
    REQUIRE(ring->push(copy));
    CHECK_FALSE(ring->try_emplace(next_in));

    for (int i = 0; i < 3; ++i) {
      const std::optional<element> popped = ring->try_pop();
      REQUIRE(popped.has_value());
      CHECK(popped->value == next_out++);
    }
  }
  CHECK(element::misaligned_constructions() == misaligned_before);
}

}  // namespace

TEMPLATE_TEST_CASE("ring: over-aligned elements keep alignment", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  SECTION("alignas(64)") { check_over_aligned<TestType, 64>(); }
  SECTION("alignas(128)") { check_over_aligned<TestType, 128>(); }
}

TEMPLATE_TEST_CASE("ring: throwing constructor leaves ring unchanged", "[ring]",
                   RINGMQ_STORAGE_CONFIGS) {
  counted::reset();
  {
    auto ring = TestType::template make<counted, 4>();

    // Start a lap further on, so that the slots in use straddle the end of the array.
    push_counted(*ring, 100, 3);
    pop_counted(*ring, 100, 3);
    push_counted(*ring, 0, 2);

    CHECK_THROWS_AS(ring->try_emplace(7, ringmq_test::throw_on_construct), counted_error);
    CHECK(ring->size() == 2);
    CHECK_THROWS_AS(ring->emplace(7, ringmq_test::throw_on_construct), counted_error);
    CHECK(ring->size() == 2);
    CHECK(counted::live() == 2);

    // All four slots still work, and the order is intact.
    push_counted(*ring, 2, 2);
    CHECK(ring->size() == 4);
    CHECK_FALSE(ring->try_emplace(9));
    pop_counted(*ring, 0, 4);
    CHECK(ring->empty());
    CHECK(counted::live() == 0);

    push_counted(*ring, 10, 4);
    pop_counted(*ring, 10, 4);
  }
  check_counted_balance();
}

TEMPLATE_TEST_CASE("ring: throwing copy leaves ring unchanged", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  counted::reset();
  {
    auto ring = TestType::template make<counted, 3>();
    push_counted(*ring, 0, 1);

    counted original(42);
    original.throw_on_copy = true;
    CHECK_THROWS_AS(ring->try_push(original), counted_error);
    CHECK_THROWS_AS(ring->try_emplace(original), counted_error);
    CHECK_THROWS_AS(ring->push(original), counted_error);
    CHECK_THROWS_AS(ring->emplace(original), counted_error);
    CHECK_THROWS_AS(ring->push_for(original, 1min), counted_error);

    CHECK(ring->size() == 1);
    CHECK(original.value() == 42);
    CHECK_FALSE(original.moved_from());
    CHECK(counted::live() == 2);

    push_counted(*ring, 1, 2);
    CHECK_FALSE(ring->try_emplace(9));
    pop_counted(*ring, 0, 3);
    CHECK(ring->empty());
  }
  check_counted_balance();
}

TEMPLATE_TEST_CASE("ring: every element is destroyed once", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  counted::reset();
  {
    auto ring = TestType::template make<counted, 3>();

    SECTION("wrap-around, then elements left in the ring") {
      std::uint64_t next_in = 0;
      std::uint64_t next_out = 0;
      for (int round = 0; round < 50; ++round) {
        push_counted(*ring, next_in, 2);
        next_in += 2;
        CHECK(counted::live() == static_cast<long>(ring->size()));
        pop_counted(*ring, next_out, 2);
        next_out += 2;
        CHECK(counted::live() == 0);
      }
      push_counted(*ring, next_in, 2);
      CHECK(counted::live() == 2);
    }

    SECTION("full ring") {
      push_counted(*ring, 0, 3);
      CHECK_FALSE(ring->try_emplace(3));
      CHECK(counted::live() == 3);
    }

    SECTION("bulk calls") {
      std::vector<counted> batch;
      for (std::uint64_t value = 0; value < 5; ++value) batch.emplace_back(value);
      CHECK(ring->try_push_bulk(batch.begin(), batch.end()) == 3);
      CHECK(counted::live() == 8);  // the batch's five, moved from or not, and three copies

      std::array<std::optional<counted>, 2> popped;
      CHECK(ring->try_pop_bulk(optional_writer<counted>(popped.data()), popped.size()) == 2);
      REQUIRE(popped[1].has_value());
      CHECK(popped[1]->value() == 1);
      CHECK(counted::live() == 8);
      CHECK(ring->size() == 1);
    }

    SECTION("close") {
      push_counted(*ring, 0, 2);
      ring->close();
      CHECK_FALSE(ring->try_push(counted(7)));
      CHECK_FALSE(ring->push(counted(8)));
      CHECK(counted::live() == 2);
      pop_counted(*ring, 0, 1);
      CHECK(counted::live() == 1);
    }
  }
  check_counted_balance();
}

TEMPLATE_TEST_CASE("ring: no uint64_t value is reserved", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::array<std::uint64_t, 12> values = {0,
                                                1,
                                                2,
                                                max,
                                                max - 1,
                                                std::uint64_t{1} << 63,
                                                (std::uint64_t{1} << 63) - 1,
                                                std::uint64_t{1} << 32,
                                                0xFFFFFFFFu,
                                                0x5555555555555555u,
                                                0xAAAAAAAAAAAAAAAAu,
                                                static_cast<std::uint64_t>(-1)};
  auto ring = TestType::template make<std::uint64_t, 3>();

  SECTION("one at a time, over several laps") {
    for (int lap = 0; lap < 3; ++lap) {
      for (const std::uint64_t value : values) {
        REQUIRE(ring->try_push(value));
        CHECK(ring->size() == 1);
        CHECK(ring->try_pop() == std::optional<std::uint64_t>(value));
        CHECK(ring->empty());
      }
    }
  }

  SECTION("a full ring of each value") {
    for (const std::uint64_t value : values) {
      for (int i = 0; i < 3; ++i) REQUIRE(ring->try_push(value));
      CHECK(ring->size() == 3);
      CHECK_FALSE(ring->try_push(value));
      for (int i = 0; i < 3; ++i) CHECK(ring->try_pop() == std::optional<std::uint64_t>(value));
      CHECK_FALSE(ring->try_pop().has_value());
    }
  }

  SECTION("signed extremes") {
    auto signed_ring = TestType::template make<std::int64_t, 2>();
    for (const std::int64_t value :
         {std::int64_t{-1}, std::int64_t{0}, std::numeric_limits<std::int64_t>::min(),
          std::numeric_limits<std::int64_t>::max()}) {
      REQUIRE(signed_ring->try_push(value));
      CHECK(signed_ring->pop() == std::optional<std::int64_t>(value));
    }
  }
}

TEMPLATE_TEST_CASE("ring: string elements survive wrap-around", "[ring]", RINGMQ_STORAGE_CONFIGS) {
  // Strings past the small-string buffer own heap memory, so a lost or doubled element shows
  // up under AddressSanitizer as a leak or a double free.
  auto ring = TestType::template make<std::string, 3>();
  for (int i = 0; i < 40; ++i) {
    REQUIRE(ring->try_push(std::string(64, static_cast<char>('a' + i % 26))));
    if (i % 3 == 2) {
      for (int j = i - 2; j <= i; ++j) {
        CHECK(ring->try_pop() == std::optional<std::string>(std::string(64, 'a' + j % 26)));
      }
    }
  }
  REQUIRE(ring->try_push(std::string(100, 'z')));
  // The ring is destroyed with one element and one slot that held many.
}
