// Fault injection into ringmq::broadcast_ring. A publish whose copy or constructor throws
// publishes nothing, and a read whose copy throws leaves the element unread. Every reader still
// reads exactly the published elements in order, nothing leaks, and the ring keeps working.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <ringmq/broadcast_ring.hpp>

#include "support/counted.hpp"
#include "support/faults.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;
using ringmq_test::fault_countdown;
using ringmq_test::faulty;
using ringmq_test::sweep_faults;
using ringmq_test::throws_fault;

namespace {

template <class Reader>
std::vector<std::uint64_t> read_all(Reader& reader) {
  std::vector<std::uint64_t> values;
  while (reader.try_read([&](const faulty& element) { values.push_back(element.value()); })) {
  }
  return values;
}

}  // namespace

TEMPLATE_TEST_CASE("broadcast_ring fault: throwing copies lose and repeat nothing",
                   "[broadcast_ring][fault]", ringmq::broadcast_ring<faulty>,
                   (ringmq::broadcast_ring<faulty, ringmq::producers<ringmq::multi>>)) {
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    std::optional<TestType> ring(std::in_place, 4, 2);
    std::optional<typename TestType::reader> copier = ring->try_join();
    std::optional<typename TestType::reader> visitor = ring->try_join();
    REQUIRE(copier);
    REQUIRE(visitor);
    std::vector<std::uint64_t> accepted;
    std::vector<std::uint64_t> copied;  // what the copying reader got
    const auto publish_copy = [&](std::uint64_t value, auto publish) {
      (void)throws_fault([&] {
        const faulty source(value);
        if (publish(source)) accepted.push_back(value);
      });
    };
    const auto read_copy = [&] {
      (void)throws_fault([&] {
        if (std::optional<faulty> element = copier->try_read()) copied.push_back(element->value());
      });
    };

    publish_copy(1, [&](const faulty& x) { return ring->try_publish(x); });
    publish_copy(2, [&](const faulty& x) { return ring->publish(x); });
    (void)throws_fault([&] {
      if (ring->try_emplace(std::uint64_t{3})) accepted.push_back(3);
    });
    read_copy();
    read_copy();
    publish_copy(4, [&](const faulty& x) { return ring->publish_for(x, 0ms); });
    publish_copy(5, [&](const faulty& x) { return ring->try_publish(x); });
    publish_copy(6,
                 [&](const faulty& x) { return ring->try_publish(x); });  // full unless one threw

    fault_countdown::disarm();
    const std::vector<std::uint64_t> rest = read_all(*copier);
    copied.insert(copied.end(), rest.begin(), rest.end());
    CHECK(copied == accepted);
    CHECK(read_all(*visitor) == accepted);

    // Still usable.
    REQUIRE(ring->try_publish(faulty(9)));
    CHECK(read_all(*copier) == std::vector<std::uint64_t>{9});
    CHECK(read_all(*visitor) == std::vector<std::uint64_t>{9});
    copier.reset();
    visitor.reset();
    ring.reset();
    CHECK(counted::live() == 0);
  });
  // Five elements built by the test, a copy or construction for each of the four publishes that
  // find room, and two copies by the reader: 11 fault points, and one run past them.
  CHECK(runs >= 12);
}
