// Fault injection into ringmq::ring: an element constructor or copy that throws at any call of
// a scenario leaves the ring unchanged, leaks nothing and destroys nothing twice, and the ring
// keeps working.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

#include <ringmq/ring.hpp>

#include "support/counted.hpp"
#include "support/faults.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;
using ringmq_test::fault_countdown;
using ringmq_test::faulty;
using ringmq_test::sweep_faults;
using ringmq_test::throws_fault;

namespace {

// Pops everything left and returns the values in order.
template <class Ring>
std::vector<std::uint64_t> drain(Ring& ring) {
  std::vector<std::uint64_t> values;
  while (std::optional<faulty> element = ring.try_pop()) values.push_back(element->value());
  return values;
}

}  // namespace

TEMPLATE_TEST_CASE("ring fault: throwing push keeps accepted elements in order", "[ring][fault]",
                   ringmq::ring<faulty>, (ringmq::ring<faulty, ringmq::producers<ringmq::single>>),
                   (ringmq::ring<faulty, ringmq::consumers<ringmq::single>>),
                   (ringmq::ring<faulty, ringmq::producers<ringmq::single>,
                                 ringmq::consumers<ringmq::single>, ringmq::capacity<3>>)) {
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    std::optional<TestType> ring;
    if constexpr (requires { TestType(3); }) {
      ring.emplace(3);
    } else {
      ring.emplace();
    }
    std::vector<std::uint64_t> accepted;  // pushes that returned true
    std::vector<std::uint64_t> popped;
    const auto push_copy = [&](std::uint64_t value, auto push) {
      (void)throws_fault([&] {
        const faulty source(value);
        if (push(source)) accepted.push_back(value);
        CHECK(source.value() == value);  // a copying push never touches its argument
      });
    };
    const auto emplace_value = [&](std::uint64_t value, auto emplace) {
      (void)throws_fault([&] {
        if (emplace(value)) accepted.push_back(value);
      });
    };

    push_copy(1, [&](const faulty& x) { return ring->try_push(x); });
    push_copy(2, [&](const faulty& x) { return ring->push(x); });
    push_copy(3, [&](const faulty& x) { return ring->try_emplace(x); });
    push_copy(4, [&](const faulty& x) { return ring->try_push(x); });  // full unless one threw
    if (std::optional<faulty> first = ring->try_pop()) popped.push_back(first->value());
    push_copy(5, [&](const faulty& x) { return ring->size() < 3 && ring->emplace(x); });
    push_copy(6, [&](const faulty& x) { return ring->push_for(x, 0ms); });
    if (std::optional<faulty> next = ring->try_pop()) popped.push_back(next->value());
    emplace_value(7, [&](std::uint64_t v) { return ring->try_emplace(v); });
    if (std::optional<faulty> third = ring->try_pop()) popped.push_back(third->value());
    emplace_value(8, [&](std::uint64_t v) { return ring->size() < 3 && ring->emplace(v); });

    fault_countdown::disarm();
    CHECK(ring->size() == accepted.size() - popped.size());
    std::vector<std::uint64_t> seen = popped;
    const std::vector<std::uint64_t> rest = drain(*ring);
    seen.insert(seen.end(), rest.begin(), rest.end());
    CHECK(seen == accepted);

    // Still usable: a full lap of pushes and pops.
    for (std::uint64_t v = 10; v < 13; ++v) CHECK(ring->try_push(faulty(v)));
    CHECK(drain(*ring) == std::vector<std::uint64_t>{10, 11, 12});
    CHECK(ring->try_push(faulty(13)));  // left in the ring for its destructor
    ring.reset();
    CHECK(counted::live() == 0);
  });
  // With no fault: six elements built by the test, and one copy or construction by each of seven
  // pushes (push_for copies before it finds the ring full): 13 fault points, and one run past.
  CHECK(runs >= 14);
}

TEST_CASE("ring fault: bulk push makes no copy", "[ring][fault]") {
  // try_push_bulk requires a noexcept construction (a static_assert), so it has no partial
  // failure to test: moving faulty elements in must not call a copy.
  counted::reset();
  {
    std::vector<faulty> batch;
    for (std::uint64_t v = 0; v < 5; ++v) batch.emplace_back(v);
    ringmq::ring<faulty> ring(4);
    const ringmq_test::armed_fault fault(1);  // any fault point would throw now
    const std::size_t moved = ring.try_push_bulk(std::make_move_iterator(batch.begin()),
                                                 std::make_move_iterator(batch.end()));
    CHECK(moved == 4);
    CHECK(fault_countdown::hits() == 0);
    std::vector<faulty> out;
    out.reserve(4);
    for (std::size_t i = 0; i < 4; ++i) out.emplace_back(ring.try_pop().value());
    CHECK(out.back().value() == 3);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
}
