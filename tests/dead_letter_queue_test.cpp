// Tests of ringmq::dead_letter_queue on its own (order, both overflow policies, capacity 0,
// clear, counters, destruction of every body) and of the dead_letter_overflow option through a
// work_queue.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/dead_letter_queue.hpp>
#include <ringmq/work_queue.hpp>

#include "support/counted.hpp"

using namespace std::chrono_literals;
using ringmq::dead_letter_reason;
using ringmq::drop_newest;
using ringmq::drop_oldest;
using ringmq::manual_clock;
using ringmq_test::counted;

namespace {

using letter = ringmq::dead_letter<int>;

letter make_letter(std::uint64_t id) {
  return letter{.body = static_cast<int>(id) * 10,
                .id = id,
                .receive_count = 0,
                .failure_count = 0,
                .reason = dead_letter_reason::rejected,
                .detail = "letter " + std::to_string(id)};
}

// The ids of the dead letters in the order for_each visits them.
template <class Queue>
std::vector<std::uint64_t> ids_of(const Queue& queue) {
  std::vector<std::uint64_t> ids;
  queue.for_each([&ids](const auto& dead) { ids.push_back(dead.id); });
  return ids;
}

// Adds letters with ids first, first + 1, ..., last, requiring that each is kept.
template <class Queue>
void add_kept(Queue& queue, std::uint64_t first, std::uint64_t last) {
  for (std::uint64_t id = first; id <= last; ++id) REQUIRE(queue.add(make_letter(id)));
}

using ids = std::vector<std::uint64_t>;

}  // namespace

TEST_CASE("dead_letter_queue: starts empty", "[dead_letter]") {
  const ringmq::dead_letter_queue<int> queue(3);
  CHECK(queue.capacity() == 3);
  CHECK(queue.size() == 0);
  CHECK(queue.empty());
  CHECK(queue.dropped() == 0);
  CHECK(queue.added() == 0);
  CHECK(ids_of(queue).empty());
}

TEST_CASE("dead_letter_queue: try_receive returns the oldest first", "[dead_letter]") {
  ringmq::dead_letter_queue<int> queue(4);
  letter first = make_letter(1);
  first.receive_count = 3;
  first.failure_count = 2;
  first.reason = dead_letter_reason::max_receives;
  first.sent_at = std::chrono::steady_clock::time_point(5s);
  first.dead_lettered_at = std::chrono::steady_clock::time_point(9s);
  REQUIRE(queue.add(std::move(first)));
  add_kept(queue, 2, 3);
  CHECK(queue.size() == 3);
  CHECK_FALSE(queue.empty());
  CHECK(ids_of(queue) == ids{1, 2, 3});

  const std::optional<letter> oldest = queue.try_receive();
  REQUIRE(oldest.has_value());
  CHECK(oldest->id == 1);
  CHECK(oldest->body == 10);
  CHECK(oldest->receive_count == 3);
  CHECK(oldest->failure_count == 2);
  CHECK(oldest->reason == dead_letter_reason::max_receives);
  CHECK(oldest->detail == "letter 1");
  CHECK(oldest->sent_at == std::chrono::steady_clock::time_point(5s));
  CHECK(oldest->dead_lettered_at == std::chrono::steady_clock::time_point(9s));
  CHECK(queue.size() == 2);

  CHECK(queue.try_receive()->id == 2);
  CHECK(queue.try_receive()->id == 3);
  CHECK_FALSE(queue.try_receive().has_value());
  CHECK(queue.empty());
  CHECK(queue.added() == 3);
  CHECK(queue.dropped() == 0);
}

TEST_CASE("dead_letter_queue: drop_oldest discards the oldest when full", "[dead_letter]") {
  ringmq::dead_letter_queue<int, std::chrono::steady_clock, drop_oldest> queue(3);
  add_kept(queue, 1, 3);

  CHECK(queue.add(make_letter(4)));
  CHECK(ids_of(queue) == ids{2, 3, 4});
  CHECK(queue.size() == 3);
  CHECK(queue.dropped() == 1);
  CHECK(queue.added() == 4);

  // The order stays the same after the buffer wraps around.
  CHECK(queue.add(make_letter(5)));
  CHECK(queue.add(make_letter(6)));
  CHECK(queue.add(make_letter(7)));
  CHECK(ids_of(queue) == ids{5, 6, 7});
  CHECK(queue.dropped() == 4);
  CHECK(queue.added() == 7);

  CHECK(queue.try_receive()->id == 5);
  CHECK(queue.add(make_letter(8)));
  CHECK(ids_of(queue) == ids{6, 7, 8});
  CHECK(queue.dropped() == 4);
}

TEST_CASE("dead_letter_queue: drop_newest discards the new letter when full", "[dead_letter]") {
  ringmq::dead_letter_queue<int, std::chrono::steady_clock, drop_newest> queue(3);
  add_kept(queue, 1, 3);

  CHECK_FALSE(queue.add(make_letter(4)));
  CHECK(ids_of(queue) == ids{1, 2, 3});
  CHECK(queue.size() == 3);
  CHECK(queue.dropped() == 1);
  CHECK(queue.added() == 4);

  CHECK(queue.try_receive()->id == 1);
  CHECK(queue.add(make_letter(5)));
  CHECK_FALSE(queue.add(make_letter(6)));
  CHECK(ids_of(queue) == ids{2, 3, 5});
  CHECK(queue.dropped() == 2);
  CHECK(queue.added() == 6);
}

TEST_CASE("dead_letter_queue: capacity 0 drops every letter", "[dead_letter]") {
  SECTION("drop_oldest") {
    ringmq::dead_letter_queue<int, std::chrono::steady_clock, drop_oldest> queue(0);
    CHECK(queue.capacity() == 0);
    CHECK_FALSE(queue.add(make_letter(1)));
    CHECK_FALSE(queue.add(make_letter(2)));
    CHECK(queue.dropped() == 2);
    CHECK(queue.added() == 2);
    CHECK(queue.size() == 0);
    CHECK(queue.empty());
    CHECK_FALSE(queue.try_receive().has_value());
    CHECK(ids_of(queue).empty());
    CHECK(queue.clear() == 0);
  }
  SECTION("drop_newest") {
    ringmq::dead_letter_queue<int, std::chrono::steady_clock, drop_newest> queue(0);
    CHECK_FALSE(queue.add(make_letter(1)));
    CHECK(queue.dropped() == 1);
    CHECK(queue.added() == 1);
    CHECK(queue.empty());
    CHECK_FALSE(queue.try_receive().has_value());
  }
}

TEST_CASE("dead_letter_queue: clear discards without counting drops", "[dead_letter]") {
  ringmq::dead_letter_queue<int> queue(3);
  add_kept(queue, 1, 3);
  REQUIRE(queue.try_receive().has_value());
  REQUIRE(queue.add(make_letter(4)));  // the buffer now wraps

  CHECK(queue.clear() == 3);
  CHECK(queue.size() == 0);
  CHECK(queue.empty());
  CHECK(queue.dropped() == 0);
  CHECK(queue.added() == 4);
  CHECK(queue.clear() == 0);

  add_kept(queue, 5, 7);
  CHECK(ids_of(queue) == ids{5, 6, 7});
}

TEST_CASE("dead_letter_queue: take_front stops when take declines", "[dead_letter]") {
  ringmq::dead_letter_queue<int> queue(5);
  add_kept(queue, 1, 4);
  std::vector<int> taken_bodies;
  const auto take_below_three = [&taken_bodies](letter& dead) {
    if (dead.id >= 3) return false;
    taken_bodies.push_back(dead.body);
    return true;
  };

  CHECK(queue.take_front(0, take_below_three) == 0);
  CHECK(queue.take_front(10, take_below_three) == 2);
  CHECK(taken_bodies == std::vector<int>{10, 20});
  CHECK(ids_of(queue) == ids{3, 4});
  CHECK(queue.take_front(1, [](letter&) { return true; }) == 1);
  CHECK(ids_of(queue) == ids{4});
  CHECK(queue.dropped() == 0);
}

TEST_CASE("dead_letter_queue: every body is destroyed exactly once", "[dead_letter]") {
  using counted_letter = ringmq::dead_letter<counted>;
  const auto make_counted = [](std::uint64_t id) {
    return counted_letter{.body = counted(id),
                          .id = id,
                          .receive_count = 0,
                          .failure_count = 0,
                          .reason = dead_letter_reason::rejected,
                          .detail = {}};
  };
  counted::reset();
  {
    ringmq::dead_letter_queue<counted, std::chrono::steady_clock, drop_oldest> oldest(2);
    ringmq::dead_letter_queue<counted, std::chrono::steady_clock, drop_newest> newest(2);
    ringmq::dead_letter_queue<counted> none(0);
    for (std::uint64_t id = 1; id <= 5; ++id) {
      oldest.add(make_counted(id));
      newest.add(make_counted(id));
      none.add(make_counted(id));
    }
    CHECK(counted::live() == 4);
    CHECK(oldest.dropped() == 3);
    CHECK(newest.dropped() == 3);
    CHECK(none.dropped() == 5);

    {
      const std::optional<counted_letter> received = oldest.try_receive();
      REQUIRE(received.has_value());
      CHECK(received->body.value() == 4);
    }
    CHECK(counted::live() == 3);
    CHECK(newest.clear() == 2);
    CHECK(counted::live() == 1);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEST_CASE("dead_letter_queue: concurrent adds keep the counts exact", "[dead_letter]") {
  ringmq::dead_letter_queue<int> queue(100);
  constexpr std::uint64_t per_thread = 2000;
  std::vector<std::thread> threads;
  for (std::uint64_t t = 0; t < 2; ++t) {
    threads.emplace_back([&queue, t] {
      for (std::uint64_t i = 0; i < per_thread; ++i) queue.add(make_letter(t * per_thread + i));
    });
  }
  for (std::thread& thread : threads) thread.join();

  CHECK(queue.added() == 2 * per_thread);
  CHECK(queue.dropped() == 2 * per_thread - 100);
  CHECK(queue.size() == 100);
}

TEST_CASE("dead_letter_queue: to_string names each reason", "[dead_letter]") {
  CHECK(ringmq::to_string(dead_letter_reason::max_receives) == "max_receives");
  CHECK(ringmq::to_string(dead_letter_reason::rejected) == "rejected");
  CHECK(ringmq::to_string(dead_letter_reason::expired) == "expired");
  CHECK(ringmq::to_string(dead_letter_reason::evicted) == "evicted");
}

// ---- through a work queue ----------------------------------------------------------------------

namespace {

// Sends `count` messages with bodies 1, 2, ... and rejects each, in order.
template <class Queue>
void reject_messages(Queue& queue, int count) {
  for (int body = 1; body <= count; ++body) {
    REQUIRE(queue.try_send(body).ok());
    std::optional<typename Queue::delivery_type> delivery = queue.try_receive();
    REQUIRE(delivery.has_value());
    REQUIRE(queue.reject(delivery->receipt(), "rejected " + std::to_string(body)));
  }
}

template <class Queue>
std::vector<int> bodies_of(const Queue& queue) {
  std::vector<int> bodies;
  queue.dead_letters().for_each([&bodies](const auto& dead) { bodies.push_back(dead.body); });
  return bodies;
}

}  // namespace

TEST_CASE("dead_letter_queue: a work queue drops the oldest by default", "[dead_letter]") {
  using queue_type = ringmq::work_queue<int, ringmq::clock<manual_clock>>;
  STATIC_REQUIRE(std::is_same_v<queue_type::dead_letter_queue_type,
                                ringmq::dead_letter_queue<int, manual_clock, drop_oldest>>);
  manual_clock clock;
  queue_type queue({.capacity = 4, .dead_letter_capacity = 2}, clock);
  reject_messages(queue, 3);

  CHECK(bodies_of(queue) == std::vector<int>{2, 3});
  const ringmq::queue_stats stats = queue.stats();
  CHECK(stats.dead_letters == 2);
  CHECK(stats.dead_lettered == 3);
  CHECK(stats.dropped == 1);
  CHECK(stats.rejected == 3);
  CHECK(queue.dead_letters().capacity() == 2);
}

TEST_CASE("dead_letter_queue: dead_letter_overflow<drop_newest> keeps the first letters",
          "[dead_letter]") {
  using queue_type = ringmq::work_queue<int, ringmq::dead_letter_overflow<drop_newest>,
                                        ringmq::clock<manual_clock>>;
  STATIC_REQUIRE(std::is_same_v<queue_type::dead_letter_queue_type,
                                ringmq::dead_letter_queue<int, manual_clock, drop_newest>>);
  manual_clock clock;
  queue_type queue({.capacity = 4, .dead_letter_capacity = 2}, clock);
  reject_messages(queue, 3);

  CHECK(bodies_of(queue) == std::vector<int>{1, 2});
  const ringmq::queue_stats stats = queue.stats();
  CHECK(stats.dead_letters == 2);
  CHECK(stats.dead_lettered == 3);
  CHECK(stats.dropped == 1);

  // The dropped message is gone for good: redrive brings back the two that were kept.
  CHECK(queue.redrive(10) == 2);
  CHECK(queue.try_receive()->body() == 1);
  CHECK(queue.try_receive()->body() == 2);
  CHECK_FALSE(queue.try_receive().has_value());
}

TEST_CASE("dead_letter_queue: dead_letter_capacity 0 in a work queue drops every letter",
          "[dead_letter]") {
  manual_clock clock;
  ringmq::work_queue<int, ringmq::clock<manual_clock>> queue(
      {.capacity = 4, .dead_letter_capacity = 0}, clock);
  reject_messages(queue, 3);

  const ringmq::queue_stats stats = queue.stats();
  CHECK(stats.dead_letters == 0);
  CHECK(stats.dead_lettered == 3);
  CHECK(stats.dropped == 3);
  CHECK(stats.visible == 0);
  CHECK(queue.size() == 0);
  CHECK(queue.dead_letters().empty());
  CHECK(queue.redrive(10) == 0);
}

TEST_CASE("dead_letter_queue: a work queue's dead letters can be inspected and cleared",
          "[dead_letter]") {
  manual_clock clock;
  ringmq::work_queue<int, ringmq::clock<manual_clock>> queue(
      {.capacity = 4, .dead_letter_capacity = 8}, clock);
  reject_messages(queue, 3);
  const auto& inspected = std::as_const(queue).dead_letters();

  std::vector<std::string> details;
  inspected.for_each([&details](const auto& dead) { details.push_back(dead.detail); });
  CHECK(details == std::vector<std::string>{"rejected 1", "rejected 2", "rejected 3"});

  CHECK(queue.dead_letters().clear() == 3);
  const ringmq::queue_stats stats = queue.stats();
  CHECK(stats.dead_letters == 0);
  CHECK(stats.dead_lettered == 3);
  CHECK(stats.dropped == 0);
}
