// Fault injection into ringmq::work_queue and its dead-letter queue. A body copy that throws in
// a send, a receive, a batch or a dead-letter visitor loses no message and invents none. Each
// accepted message ends acked once, still queued, or a dead letter. Nothing leaks, and the queue
// keeps working.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

#include <ringmq/clock.hpp>
#include <ringmq/work_queue.hpp>

#include "support/counted.hpp"
#include "support/faults.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;
using ringmq_test::fault_countdown;
using ringmq_test::faulty;
using ringmq_test::sweep_faults;
using ringmq_test::throws_fault;

namespace {

using queue_type = ringmq::work_queue<faulty, ringmq::clock<ringmq::manual_clock>>;
using delivery_type = queue_type::delivery_type;

const ringmq::queue_config config{
    .capacity = 4, .visibility_timeout = 10s, .max_receive_count = 2, .dead_letter_capacity = 8};

// Acks every visible message and returns the bodies.
std::vector<std::uint64_t> receive_all(queue_type& queue) {
  std::vector<std::uint64_t> values;
  while (std::optional<delivery_type> delivery = queue.try_receive()) {
    values.push_back(delivery->body().value());
    CHECK(queue.ack(delivery->receipt()));
  }
  return values;
}

std::vector<std::uint64_t> take_dead_letters(queue_type& queue) {
  std::vector<std::uint64_t> values;
  while (auto letter = queue.dead_letters().try_receive()) values.push_back(letter->body.value());
  return values;
}

std::vector<std::uint64_t> sorted(std::vector<std::uint64_t> values) {
  std::sort(values.begin(), values.end());
  return values;
}

}  // namespace

TEST_CASE("work_queue fault: throwing copies lose and invent nothing", "[work_queue][fault]") {
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    ringmq::manual_clock clock;
    queue_type queue(config, clock);
    std::vector<std::uint64_t> accepted;  // values of the messages the queue took
    std::vector<std::uint64_t> acked;
    std::vector<delivery_type> leases;
    leases.reserve(8);  // so that keeping a delivery never reallocates

    const auto send_copy = [&](std::uint64_t value, auto send) {
      (void)throws_fault([&] {
        const faulty body(value);
        if (send(body).ok()) accepted.push_back(value);
      });
    };
    const auto receive_one = [&] {
      (void)throws_fault([&] {
        if (std::optional<delivery_type> delivery = queue.try_receive()) {
          leases.push_back(std::move(*delivery));
        }
      });
    };

    send_copy(1, [&](const faulty& body) { return queue.try_send(body); });
    send_copy(2, [&](const faulty& body) { return queue.send(body); });
    send_copy(3, [&](const faulty& body) { return queue.send_for(body, 0ms); });
    (void)throws_fault([&] {
      const std::vector<faulty> batch{faulty(4), faulty(5)};
      const std::size_t before = queue.size();
      try {
        (void)queue.try_send_batch(batch.begin(), batch.end());
      } catch (const ringmq_test::injected_fault&) {
        // The batch sends a prefix of the range: those messages are queued.
        for (std::size_t i = 0; i < queue.size() - before; ++i) accepted.push_back(4 + i);
        throw;
      }
      for (std::size_t i = 0; i < queue.size() - before; ++i) accepted.push_back(4 + i);
    });

    receive_one();
    receive_one();
    if (!leases.empty()) {
      acked.push_back(leases[0].body().value());
      CHECK(queue.ack(leases[0].receipt()));
    }
    if (leases.size() > 1) CHECK(queue.nack(leases[1].receipt()));  // visible again at once
    (void)throws_fault([&] {
      // Deliveries written before a copy throws stay with the caller, leased.
      (void)queue.try_receive_batch(std::back_inserter(leases), 4);
    });
    if (leases.size() > 2) CHECK(queue.reject(leases[2].receipt(), "bad body"));

    // A visitor that copies dead letters and throws leaves them all in place.
    const std::size_t letters = queue.dead_letters().size();
    (void)throws_fault([&] {
      queue.dead_letters().for_each([](const auto& letter) { faulty copy(letter.body); });
    });
    CHECK(queue.dead_letters().size() == letters);

    // The open leases expire, a failed attempt each. A message that failed before becomes a
    // dead letter, because max_receive_count is 2.
    clock.advance(11s);
    receive_one();
    const std::size_t moved = queue.redrive(8);
    CHECK(moved <= letters + 4);
    receive_one();

    fault_countdown::disarm();
    clock.advance(11s);  // ends every lease the test still has open
    for (const delivery_type& delivery : leases) CHECK_FALSE(queue.ack(delivery.receipt()));
    leases.clear();
    const std::vector<std::uint64_t> drained = receive_all(queue);
    const std::vector<std::uint64_t> dead = take_dead_letters(queue);
    std::vector<std::uint64_t> outcomes = acked;
    outcomes.insert(outcomes.end(), drained.begin(), drained.end());
    outcomes.insert(outcomes.end(), dead.begin(), dead.end());
    CHECK(sorted(outcomes) == sorted(accepted));
    CHECK(queue.size() == 0);
    const ringmq::queue_stats stats = queue.stats();
    CHECK(stats.visible + stats.in_flight + stats.delayed == 0);
    CHECK(stats.acked == acked.size() + drained.size());
    CHECK(stats.dropped == 0);
    CHECK(stats.dead_lettered == dead.size() + stats.redriven);
    CHECK(stats.redriven == moved);

    // Still usable.
    REQUIRE(queue.try_send(faulty(99)).ok());
    CHECK(receive_all(queue) == std::vector<std::uint64_t>{99});
  });
  // 19 fault points when no fault fires: 11 in the sends (the test's constructions and copies
  // into the batch vector, and the library's copies), and 8 copies by the receives.
  CHECK(runs >= 20);
}

TEST_CASE("work_queue fault: failed receive copy requeues at the tail", "[work_queue][fault]") {
  counted::reset();
  {
    ringmq::manual_clock clock;
    queue_type queue(config, clock);
    REQUIRE(queue.try_send(faulty(1)).ok());
    REQUIRE(queue.try_send(faulty(2)).ok());
    {
      const ringmq_test::armed_fault fault(1);  // the first copy: the receive's copy of body 1
      CHECK_THROWS_AS(queue.try_receive(), ringmq_test::injected_fault);
    }
    CHECK(queue.stats().received == 0);
    CHECK(queue.stats().visible == 2);
    std::optional<delivery_type> second = queue.try_receive();
    std::optional<delivery_type> first = queue.try_receive();
    REQUIRE(second);
    REQUIRE(first);
    CHECK(second->body().value() == 2);
    CHECK(first->body().value() == 1);
    CHECK(first->receive_count() == 1);  // the failed receive was no hand-out
    CHECK(first->failure_count() == 0);
    CHECK(queue.ack(first->receipt()));
    CHECK(queue.ack(second->receipt()));
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
}

TEST_CASE("work_queue fault: redrive copies no body", "[work_queue][fault]") {
  counted::reset();
  {
    ringmq::manual_clock clock;
    queue_type queue(config, clock);
    for (std::uint64_t v = 1; v <= 3; ++v) {
      REQUIRE(queue.try_send(faulty(v)).ok());
      std::optional<delivery_type> delivery = queue.try_receive();
      REQUIRE(delivery);
      REQUIRE(queue.reject(delivery->receipt()));
    }
    REQUIRE(queue.dead_letters().size() == 3);
    {
      const ringmq_test::armed_fault fault(1);  // any copy would throw
      CHECK(queue.redrive(8) == 3);
      CHECK(fault_countdown::hits() == 0);
    }
    CHECK(queue.dead_letters().empty());
    CHECK(receive_all(queue) == std::vector<std::uint64_t>{1, 2, 3});
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
}
