// Tests of ringmq::work_queue with a manual_clock: configuration, sends, receives, leases,
// settles, backoff, dead-lettering, retention, batches, statistics, close, redrive and what the
// queue does with the bodies it holds. Time moves only through manual_clock::advance, so no test
// sleeps.
#include <catch2/catch.hpp>

#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/work_queue.hpp>

#include "support/counted.hpp"
#include "support/elements.hpp"
#include "support/receipt_fields.hpp"

using namespace std::chrono_literals;
using ringmq::dead_letter_reason;
using ringmq::manual_clock;
using ringmq::queue_config;
using ringmq::queue_stats;
using ringmq::receipt;
using ringmq::send_status;
using ringmq_test::counted;
using ringmq_test::counted_error;
using ringmq_test::fields_of;
using ringmq_test::forge;
using ringmq_test::receipt_fields;

namespace {

using manual_queue = ringmq::work_queue<int, ringmq::clock<manual_clock>>;
using time_point = manual_clock::time_point;

// A time on a manual_clock that started at 0.
time_point at(std::chrono::nanoseconds since_start) { return time_point{since_start}; }

// Checks every field of a stats() snapshot against `expected`, one check per field, and checks
// that the counts add up, which is true whenever no call is in progress.
void check_stats(const queue_stats& actual, std::string_view step, const queue_stats& expected) {
  INFO("stats " << step);
  CHECK(actual.visible == expected.visible);
  CHECK(actual.in_flight == expected.in_flight);
  CHECK(actual.delayed == expected.delayed);
  CHECK(actual.dead_letters == expected.dead_letters);
  CHECK(actual.oldest_visible_age == expected.oldest_visible_age);
  CHECK(actual.sent == expected.sent);
  CHECK(actual.received == expected.received);
  CHECK(actual.redelivered == expected.redelivered);
  CHECK(actual.acked == expected.acked);
  CHECK(actual.nacked == expected.nacked);
  CHECK(actual.released == expected.released);
  CHECK(actual.expired_leases == expected.expired_leases);
  CHECK(actual.rejected == expected.rejected);
  CHECK(actual.evicted == expected.evicted);
  CHECK(actual.dead_lettered == expected.dead_lettered);
  CHECK(actual.dropped == expected.dropped);
  CHECK(actual.redriven == expected.redriven);
  CHECK(actual.sent + actual.redriven ==
        actual.acked + actual.dead_lettered + actual.visible + actual.in_flight + actual.delayed);
}

// Receives one message, failing the test when none is visible.
template <class Queue>
typename Queue::delivery_type receive(Queue& queue, ringmq::receive_options options = {}) {
  std::optional<typename Queue::delivery_type> delivery = queue.try_receive(options);
  REQUIRE(delivery.has_value());
  return std::move(*delivery);
}

// Removes the oldest dead letter, failing the test when there is none.
template <class Queue>
typename Queue::dead_letter_type take_dead_letter(Queue& queue) {
  std::optional<typename Queue::dead_letter_type> letter = queue.dead_letters().try_receive();
  REQUIRE(letter.has_value());
  return std::move(*letter);
}

// Receives a message if one is visible and returns whether it did. The lease of a message
// received this way runs until it expires, because its receipt is dropped.
template <class Queue>
bool receives_a_message(Queue& queue) {
  return queue.try_receive().has_value();
}

// Constructs a queue from `config` and returns the message of the Error it throws, or a note
// that it threw nothing. An exception of another type fails the test.
template <class Error>
std::string construction_error(const queue_config& config) {
  manual_clock clock;
  try {
    manual_queue queue(config, clock);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no exception)";
}

// Every call that takes a receipt, in each of its forms.
struct settle_call {
  const char* name;
  bool (*call)(manual_queue&, const receipt&);
};

const std::array<settle_call, 9> settle_calls{{
    {"ack", [](manual_queue& q, const receipt& r) { return q.ack(r); }},
    {"nack", [](manual_queue& q, const receipt& r) { return q.nack(r); }},
    {"nack with delay", [](manual_queue& q, const receipt& r) { return q.nack(r, 5s); }},
    {"nack with detail", [](manual_queue& q, const receipt& r) { return q.nack(r, "failed"); }},
    {"release", [](manual_queue& q, const receipt& r) { return q.release(r); }},
    {"extend", [](manual_queue& q, const receipt& r) { return q.extend(r, 10s); }},
    {"extend by zero", [](manual_queue& q, const receipt& r) { return q.extend(r, 0s); }},
    {"reject", [](manual_queue& q, const receipt& r) { return q.reject(r, "bad"); }},
    {"reject without detail", [](manual_queue& q, const receipt& r) { return q.reject(r); }},
}};

// Calls every settle_call with `stale`, checking that each returns false and that the queue's
// statistics stay as they were.
void check_stale(manual_queue& queue, const receipt& stale) {
  const queue_stats before = queue.stats();
  for (const settle_call& settle : settle_calls) {
    INFO("settle call: " << settle.name);
    CHECK_FALSE(settle.call(queue, stale));
  }
  check_stats(queue.stats(), "after the stale settles", before);
}

// A body whose copy constructor throws counted_error once after arm() is called. Moves never
// throw. The counted member lets a test check that a failed copy destroys what it built.
struct throwing_copy {
  explicit throwing_copy(std::uint64_t value) noexcept : item(value) {}
  throwing_copy(const throwing_copy& other) : item(other.item) {
    if (armed) {
      armed = false;
      throw counted_error("throwing_copy: copy failed on purpose (armed)");
    }
  }
  throwing_copy(throwing_copy&&) noexcept = default;
  throwing_copy& operator=(const throwing_copy&) = default;
  throwing_copy& operator=(throwing_copy&&) noexcept = default;
  ~throwing_copy() = default;

  static void arm() noexcept { armed = true; }

  counted item;
  static inline bool armed = false;  // only single-threaded tests use it
};

}  // namespace

// ---- configuration -----------------------------------------------------------------------------

TEST_CASE("work_queue: config validation names the bad value", "[work_queue]") {
  using Catch::Matchers::Contains;
  using std::invalid_argument;

  SECTION("capacity 0") {
    CHECK_THAT(construction_error<invalid_argument>({.capacity = 0}), Contains("capacity 0"));
  }
  SECTION("capacity 2^32 - 1") {
    CHECK_THAT(construction_error<std::length_error>({.capacity = 4294967295U}),
               Contains("capacity 4294967295"));
  }
  SECTION("capacity SIZE_MAX") {
    const std::size_t huge = std::numeric_limits<std::size_t>::max();
    CHECK_THAT(construction_error<std::length_error>({.capacity = huge}),
               Contains("capacity " + std::to_string(huge)));
  }
  SECTION("visibility_timeout 0") {
    CHECK_THAT(construction_error<invalid_argument>({.visibility_timeout = 0s}),
               Contains("visibility_timeout 0 ns"));
  }
  SECTION("negative visibility_timeout") {
    CHECK_THAT(construction_error<invalid_argument>({.visibility_timeout = -1s}),
               Contains("visibility_timeout -1000000000 ns"));
  }
  SECTION("max_visibility_timeout below visibility_timeout") {
    const std::string message = construction_error<invalid_argument>(
        {.visibility_timeout = 30s, .max_visibility_timeout = 10s});
    CHECK_THAT(message, Contains("max_visibility_timeout 10000000000 ns"));
    CHECK_THAT(message, Contains("visibility_timeout 30000000000 ns"));
  }
  SECTION("retention 0") {
    CHECK_THAT(construction_error<invalid_argument>({.retention = 0s}), Contains("retention 0 ns"));
  }
  SECTION("negative retention") {
    CHECK_THAT(construction_error<invalid_argument>({.retention = -5ns}),
               Contains("retention -5 ns"));
  }
  SECTION("negative backoff initial") {
    CHECK_THAT(construction_error<invalid_argument>({.backoff = {.initial = -1ns}}),
               Contains("backoff initial -1 ns"));
  }
  SECTION("backoff max below initial") {
    const std::string message =
        construction_error<invalid_argument>({.backoff = {.initial = 2s, .max = 1s}});
    CHECK_THAT(message, Contains("initial 2000000000 ns"));
    CHECK_THAT(message, Contains("max 1000000000 ns"));
  }
  SECTION("backoff multiplier below 1") {
    CHECK_THAT(construction_error<invalid_argument>({.backoff = {.multiplier = 0.5}}),
               Contains("backoff multiplier 0.5"));
  }
  SECTION("backoff multiplier NaN") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::string message =
        construction_error<invalid_argument>({.backoff = {.multiplier = nan}});
    CHECK_THAT(message, Contains("backoff multiplier"));
    CHECK_THAT(message, Contains("nan"));
  }
}

TEST_CASE("work_queue: config limits that are valid", "[work_queue]") {
  manual_clock clock;

  SECTION("defaults") {
    manual_queue queue({}, clock);
    CHECK(queue.capacity() == 1024);
    CHECK(queue.config().visibility_timeout == 30s);
  }
  SECTION("capacity 1 holds one message") {
    manual_queue queue({.capacity = 1}, clock);
    CHECK(queue.try_send(1).ok());
    CHECK(queue.try_send(2).status == send_status::full);
    CHECK(queue.size() == 1);
  }
  SECTION("max_visibility_timeout equal to visibility_timeout") {
    manual_queue queue({.visibility_timeout = 5s, .max_visibility_timeout = 5s}, clock);
    CHECK(queue.config().max_visibility_timeout == 5s);
  }
  SECTION("multiplier 1 and zero backoff") {
    manual_queue queue({.backoff = {.initial = 0s, .max = 0s, .multiplier = 1.0}}, clock);
    CHECK(queue.config().backoff.multiplier == 1.0);
  }
}

// ---- send --------------------------------------------------------------------------------------

TEST_CASE("work_queue: try_send and send_for report failures", "[work_queue]") {
  manual_clock clock;
  ringmq::work_queue<std::string, ringmq::clock<manual_clock>> queue({.capacity = 2}, clock);
  const std::string original = "a body long enough to live on the heap, not inline";

  const ringmq::send_result first = queue.try_send(std::string("first"));
  REQUIRE(first.status == send_status::ok);
  CHECK(first.ok());
  CHECK(static_cast<bool>(first));
  CHECK(first.id != 0);

  SECTION("full, with the argument left intact") {
    const std::string copy = "second";
    const ringmq::send_result second = queue.try_send(copy);
    REQUIRE(second.ok());
    CHECK(second.id != 0);
    CHECK(second.id != first.id);

    std::string body = original;
    const ringmq::send_result full = queue.try_send(std::move(body));
    CHECK(full.status == send_status::full);
    CHECK(full.id == 0);
    CHECK_FALSE(full.ok());
    CHECK_FALSE(static_cast<bool>(full));
    CHECK(body == original);

    CHECK(queue.try_send(std::as_const(body)).status == send_status::full);

    const ringmq::send_result timed = queue.send_for(std::move(body), 0s);
    CHECK(timed.status == send_status::timeout);
    CHECK(timed.id == 0);
    CHECK(body == original);
    CHECK(queue.send_for(std::move(body), 1ms).status == send_status::timeout);
    CHECK(body == original);
    CHECK(queue.send_for(std::as_const(body), 1ms).status == send_status::timeout);

    queue.close();
    CHECK(queue.send_for(std::move(body), 1ms).status == send_status::closed);
    CHECK(queue.send(std::move(body)).status == send_status::closed);
    CHECK(body == original);

    queue_stats expected;
    expected.visible = 2;
    expected.sent = 2;
    check_stats(queue.stats(), "after the failed sends", expected);
  }
  SECTION("closed, with the argument left intact") {
    queue.close();
    CHECK(queue.is_closed());
    std::string body = original;
    const ringmq::send_result closed = queue.try_send(std::move(body));
    CHECK(closed.status == send_status::closed);
    CHECK(closed.id == 0);
    CHECK(body == original);
    CHECK(queue.try_send(std::as_const(body)).status == send_status::closed);
    CHECK(queue.send(std::move(body)).status == send_status::closed);
    CHECK(queue.send_for(std::move(body), 1s).status == send_status::closed);
    CHECK(body == original);

    queue_stats expected;
    expected.visible = 1;
    expected.sent = 1;
    check_stats(queue.stats(), "after close", expected);
  }
}

TEST_CASE("work_queue: send_status names each status", "[work_queue]") {
  CHECK(ringmq::to_string(send_status::ok) == "ok");
  CHECK(ringmq::to_string(send_status::full) == "full");
  CHECK(ringmq::to_string(send_status::closed) == "closed");
  CHECK(ringmq::to_string(send_status::timeout) == "timeout");
}

TEST_CASE("work_queue: a throwing copy in send leaves the queue unchanged", "[work_queue]") {
  counted::reset();
  {
    manual_clock clock;
    ringmq::work_queue<counted, ringmq::clock<manual_clock>> queue({.capacity = 2}, clock);
    counted body(7);
    body.throw_on_copy = true;

    CHECK_THROWS_AS(queue.try_send(body), counted_error);
    CHECK(queue.size() == 0);
    check_stats(queue.stats(), "after the failed copy", {});

    // The slot went back to the free list, so the queue still has room for its full capacity.
    CHECK(queue.try_send(counted(1)).ok());
    CHECK(queue.try_send(counted(2)).ok());
    CHECK(queue.try_send(counted(3)).status == send_status::full);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEST_CASE("work_queue: message ids are unique and never 0", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 3}, clock);
  std::set<ringmq::message_id> ids;
  constexpr int sends = 50;

  for (int i = 0; i < sends; ++i) {
    const ringmq::send_result sent = queue.try_send(i);
    REQUIRE(sent.ok());
    CHECK(sent.id != 0);
    ids.insert(sent.id);
    // Keep two messages in the queue so that ids are issued from every slot.
    if (queue.size() == 3) {
      const auto delivery = receive(queue);
      CHECK(delivery.id() == delivery.receipt().id());
      REQUIRE(queue.ack(delivery.receipt()));
    }
  }
  CHECK(ids.size() == static_cast<std::size_t>(sends));
}

// ---- receive -----------------------------------------------------------------------------------

TEST_CASE("work_queue: visible messages come out in send order", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 8}, clock);
  for (int body = 1; body <= 5; ++body) REQUIRE(queue.try_send(body).ok());

  CHECK(receive(queue).body() == 1);
  CHECK(receive(queue).body() == 2);
  REQUIRE(queue.try_send(6).ok());
  for (int body = 3; body <= 6; ++body) CHECK(receive(queue).body() == body);
  CHECK_FALSE(receives_a_message(queue));

  queue_stats expected;
  expected.in_flight = 6;
  expected.sent = 6;
  expected.received = 6;
  check_stats(queue.stats(), "after six receives", expected);
}

TEST_CASE("work_queue: a delivery describes its message", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2}, clock);
  clock.advance(3s);
  const ringmq::send_result sent = queue.try_send(42);
  REQUIRE(sent.ok());
  clock.advance(1s);

  auto delivery = receive(queue);
  CHECK(delivery.body() == 42);
  CHECK(std::as_const(delivery).body() == 42);
  CHECK(delivery.id() == sent.id);
  CHECK(delivery.receipt().id() == sent.id);
  CHECK(delivery.receive_count() == 1);
  CHECK(delivery.failure_count() == 0);
  CHECK(delivery.sent_at() == at(3s));
  CHECK(queue.now() == at(4s));
  CHECK(std::move(delivery).body() == 42);
}

TEST_CASE("work_queue: delayed messages become visible at sent plus delay", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4}, clock);
  queue_stats expected;

  SECTION("one delayed message") {
    REQUIRE(queue.try_send(1, {.delay = 10s}).ok());
    expected.delayed = 1;
    expected.sent = 1;
    check_stats(queue.stats(), "after the send", expected);
    CHECK_FALSE(receives_a_message(queue));

    clock.advance(10s - 1ns);
    CHECK_FALSE(receives_a_message(queue));
    check_stats(queue.stats(), "just before the delay ends", expected);

    clock.advance(1ns);
    const auto delivery = receive(queue);
    CHECK(delivery.body() == 1);
    CHECK(delivery.sent_at() == at(0s));
    CHECK(delivery.receive_count() == 1);
    CHECK(delivery.failure_count() == 0);
    expected.delayed = 0;
    expected.in_flight = 1;
    expected.received = 1;
    check_stats(queue.stats(), "after the receive", expected);
  }
  SECTION("stats() makes a due message visible") {
    REQUIRE(queue.try_send(1, {.delay = 10s}).ok());
    clock.advance(10s);
    expected.visible = 1;
    expected.sent = 1;
    expected.oldest_visible_age = 10s;
    check_stats(queue.stats(), "at the delay's end", expected);
  }
  SECTION("zero and negative delays mean none") {
    REQUIRE(queue.try_send(1, {.delay = 0s}).ok());
    REQUIRE(queue.try_send(2, {.delay = -5s}).ok());
    expected.visible = 2;
    expected.sent = 2;
    check_stats(queue.stats(), "after the sends", expected);
    CHECK(receive(queue).body() == 1);
    CHECK(receive(queue).body() == 2);
  }
  SECTION("due messages join the visible list in deadline order") {
    REQUIRE(queue.try_send(1).ok());
    REQUIRE(queue.try_send(2, {.delay = 20s}).ok());
    REQUIRE(queue.try_send(3, {.delay = 10s}).ok());
    clock.advance(30s);
    CHECK(receive(queue).body() == 1);
    CHECK(receive(queue).body() == 3);
    CHECK(receive(queue).body() == 2);
  }
  SECTION("a huge delay never ends") {
    REQUIRE(queue.try_send(1, {.delay = std::chrono::nanoseconds::max()}).ok());
    clock.advance(std::chrono::hours(24 * 365 * 100));
    CHECK_FALSE(receives_a_message(queue));
    expected.delayed = 1;
    expected.sent = 1;
    check_stats(queue.stats(), "after a century", expected);
  }
  SECTION("a delayed message takes capacity") {
    for (int body = 0; body < 4; ++body) REQUIRE(queue.try_send(body, {.delay = 1s}).ok());
    CHECK(queue.try_send(5).status == send_status::full);
    CHECK(queue.size() == 4);
  }
}

// ---- leases ------------------------------------------------------------------------------------

TEST_CASE("work_queue: lease expiry redelivers the message", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 30s}, clock);
  const ringmq::send_result sent = queue.try_send(7);
  REQUIRE(sent.ok());
  const auto first = receive(queue);
  queue_stats expected;
  expected.in_flight = 1;
  expected.sent = 1;
  expected.received = 1;

  SECTION("ack just before the lease ends") {
    clock.advance(30s - 1ns);
    check_stats(queue.stats(), "just before the lease ends", expected);
    CHECK(queue.ack(first.receipt()));
    expected.in_flight = 0;
    expected.acked = 1;
    check_stats(queue.stats(), "after the ack", expected);
  }
  SECTION("the lease ends at its deadline") {
    clock.advance(30s);
    CHECK_FALSE(queue.ack(first.receipt()));

    const auto second = receive(queue);
    CHECK(second.body() == 7);
    CHECK(second.id() == sent.id);
    CHECK(second.sent_at() == at(0s));
    CHECK(second.receive_count() == 2);
    CHECK(second.failure_count() == 1);
    CHECK(second.receipt() != first.receipt());
    expected.received = 2;
    expected.redelivered = 1;
    expected.expired_leases = 1;
    check_stats(queue.stats(), "after the redelivery", expected);

    clock.advance(30s);
    const auto third = receive(queue);
    CHECK(third.receive_count() == 3);
    CHECK(third.failure_count() == 2);
    CHECK(queue.ack(third.receipt()));
    expected.in_flight = 0;
    expected.received = 3;
    expected.redelivered = 2;
    expected.expired_leases = 2;
    expected.acked = 1;
    check_stats(queue.stats(), "after the ack", expected);
  }
  SECTION("stats() makes an expired message visible") {
    clock.advance(31s);
    expected.visible = 1;
    expected.in_flight = 0;
    expected.expired_leases = 1;
    expected.oldest_visible_age = 31s;
    check_stats(queue.stats(), "after the lease ended", expected);
  }
  SECTION("an expired message joins the tail of the visible list") {
    REQUIRE(queue.try_send(8).ok());
    clock.advance(30s);
    REQUIRE(queue.try_send(9).ok());
    CHECK(receive(queue).body() == 8);
    CHECK(receive(queue).body() == 9);
    const auto again = receive(queue);
    CHECK(again.body() == 7);
    CHECK(again.receive_count() == 2);
  }
}

TEST_CASE("work_queue: stale receipts change nothing", "[work_queue]") {
  manual_clock clock;
  const queue_config config{.capacity = 4, .visibility_timeout = 30s};
  manual_queue queue(config, clock);
  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2).ok());

  SECTION("lease ended, before the queue reaps") {
    const auto delivery = receive(queue);
    clock.advance(30s);
    for (const settle_call& settle : settle_calls) {
      INFO("settle call: " << settle.name);
      CHECK_FALSE(settle.call(queue, delivery.receipt()));
    }
    queue_stats expected;
    expected.visible = 2;
    expected.sent = 2;
    expected.received = 1;
    expected.expired_leases = 1;
    expected.oldest_visible_age = 30s;
    check_stats(queue.stats(), "after the settles", expected);
  }
  SECTION("lease ended and reaped") {
    const auto delivery = receive(queue);
    clock.advance(31s);
    check_stale(queue, delivery.receipt());
  }
  SECTION("already settled") {
    const std::array<settle_call, 4> settles{
        {settle_calls[0], settle_calls[1], settle_calls[4], settle_calls[7]}};
    for (const settle_call& settle : settles) {
      INFO("settled by " << settle.name);
      manual_queue settled(config, clock);
      REQUIRE(settled.try_send(1).ok());
      const auto delivery = receive(settled);
      REQUIRE(settle.call(settled, delivery.receipt()));
      check_stale(settled, delivery.receipt());
    }
  }
  SECTION("an earlier delivery of the same message") {
    const auto first = receive(queue);
    REQUIRE(queue.release(first.receipt()));
    REQUIRE(receive(queue).body() == 2);  // leased for the rest of the section
    const auto second = receive(queue);
    REQUIRE(second.id() == first.id());
    check_stale(queue, first.receipt());
    CHECK(queue.ack(second.receipt()));
  }
  SECTION("an earlier message in the same slot") {
    manual_queue single({.capacity = 1}, clock);
    REQUIRE(single.try_send(1).ok());
    const auto first = receive(single);
    REQUIRE(single.ack(first.receipt()));
    REQUIRE(single.try_send(2).ok());
    const auto second = receive(single);
    REQUIRE(fields_of(second.receipt()).slot == fields_of(first.receipt()).slot);
    check_stale(single, first.receipt());
    CHECK(single.ack(second.receipt()));
  }
  SECTION("another queue") {
    // The same calls on a second queue issue the same slot, id and delivery number, so only
    // the queue's tag distinguishes the receipts.
    manual_queue other(config, clock);
    REQUIRE(other.try_send(1).ok());
    REQUIRE(other.try_send(2).ok());
    const auto mine = receive(queue);
    const auto theirs = receive(other);
    REQUIRE(fields_of(mine.receipt()).message == fields_of(theirs.receipt()).message);
    REQUIRE(fields_of(mine.receipt()).slot == fields_of(theirs.receipt()).slot);
    REQUIRE(fields_of(mine.receipt()).delivery == fields_of(theirs.receipt()).delivery);
    check_stale(other, mine.receipt());
    CHECK(queue.ack(mine.receipt()));
    CHECK(other.ack(theirs.receipt()));
  }
  SECTION("a default-constructed receipt") {
    const auto delivery = receive(queue);
    check_stale(queue, receipt{});
    CHECK(queue.ack(delivery.receipt()));
  }
  SECTION("forged receipts") {
    const auto first = receive(queue);
    const auto second = receive(queue);
    const receipt_fields genuine = fields_of(first.receipt());
    const receipt_fields neighbour = fields_of(second.receipt());
    REQUIRE(genuine.message == first.id());
    REQUIRE(forge(genuine) == first.receipt());
    REQUIRE(genuine.slot != neighbour.slot);

    struct forgery {
      const char* name;
      receipt_fields fields;
    };
    std::vector<forgery> forgeries(6, forgery{"", genuine});
    forgeries[0].name = "slot index equal to the capacity";
    forgeries[0].fields.slot = 4;
    forgeries[1].name = "slot index UINT32_MAX";
    forgeries[1].fields.slot = std::numeric_limits<std::uint32_t>::max();
    forgeries[2].name = "another leased slot with its delivery number";
    forgeries[2].fields.slot = neighbour.slot;
    forgeries[2].fields.delivery = neighbour.delivery;
    forgeries[3].name = "id plus one";
    forgeries[3].fields.message += 1;
    forgeries[4].name = "the other lease's id";
    forgeries[4].fields.message = neighbour.message;
    forgeries[5].name = "the next delivery number";
    forgeries[5].fields.delivery += 1;
    forgeries.push_back({"queue tag 0", genuine});
    forgeries.back().fields.queue = 0;

    for (const forgery& forged : forgeries) {
      INFO("forged: " << forged.name);
      check_stale(queue, forge(forged.fields));
    }
    CHECK(queue.ack(first.receipt()));
    CHECK(queue.ack(second.receipt()));
  }
}

TEST_CASE("work_queue: extend moves the end of the lease", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s, .max_visibility_timeout = 60s},
                     clock);
  REQUIRE(queue.try_send(1).ok());
  const auto delivery = receive(queue);
  queue_stats leased;
  leased.in_flight = 1;
  leased.sent = 1;
  leased.received = 1;
  queue_stats expired = leased;
  expired.in_flight = 0;
  expired.visible = 1;
  expired.expired_leases = 1;

  SECTION("longer") {
    clock.advance(10s);
    REQUIRE(queue.extend(delivery.receipt(), 40s));
    clock.advance(20s);
    check_stats(queue.stats(), "at the old end", leased);
    clock.advance(20s - 1ns);
    check_stats(queue.stats(), "just before the new end", leased);
    clock.advance(1ns);
    CHECK_FALSE(queue.ack(delivery.receipt()));
    expired.oldest_visible_age = 50s;
    check_stats(queue.stats(), "at the new end", expired);
  }
  SECTION("shorter") {
    clock.advance(10s);
    REQUIRE(queue.extend(delivery.receipt(), 5s));
    clock.advance(5s - 1ns);
    CHECK_FALSE(receives_a_message(queue));
    clock.advance(1ns);
    const auto again = receive(queue);
    CHECK(again.receive_count() == 2);
    CHECK(again.failure_count() == 1);
    CHECK_FALSE(queue.ack(delivery.receipt()));
  }
  SECTION("capped by max_visibility_timeout") {
    REQUIRE(queue.extend(delivery.receipt(), 1h));
    clock.advance(60s - 1ns);
    check_stats(queue.stats(), "just before the cap", leased);
    clock.advance(1ns);
    expired.oldest_visible_age = 60s;
    check_stats(queue.stats(), "at the cap", expired);
  }
  SECTION("a huge timeout is capped too") {
    REQUIRE(queue.extend(delivery.receipt(), std::chrono::hours::max()));
    clock.advance(60s);
    expired.oldest_visible_age = 60s;
    check_stats(queue.stats(), "at the cap", expired);
  }
  SECTION("zero acts as release") {
    clock.advance(1s);
    REQUIRE(queue.extend(delivery.receipt(), 0s));
    queue_stats released = leased;
    released.in_flight = 0;
    released.visible = 1;
    released.released = 1;
    released.oldest_visible_age = 1s;
    check_stats(queue.stats(), "after extend by zero", released);
    CHECK_FALSE(queue.ack(delivery.receipt()));
    const auto again = receive(queue);
    CHECK(again.receive_count() == 2);
    CHECK(again.failure_count() == 0);
  }
  SECTION("a negative timeout acts as release") {
    REQUIRE(queue.extend(delivery.receipt(), -1s));
    queue_stats released = leased;
    released.in_flight = 0;
    released.visible = 1;
    released.released = 1;
    check_stats(queue.stats(), "after a negative extend", released);
  }
  SECTION("extend keeps the receipt valid") {
    REQUIRE(queue.extend(delivery.receipt(), 10s));
    REQUIRE(queue.extend(delivery.receipt(), 20s));
    clock.advance(15s);
    CHECK(queue.ack(delivery.receipt()));
    queue_stats acked = leased;
    acked.in_flight = 0;
    acked.acked = 1;
    check_stats(queue.stats(), "after the ack", acked);
  }
  SECTION("extend after the lease ended fails") {
    clock.advance(30s);
    CHECK_FALSE(queue.extend(delivery.receipt(), 10s));
    expired.oldest_visible_age = 30s;
    check_stats(queue.stats(), "after the late extend", expired);
  }
}

TEST_CASE("work_queue: per-receive visibility timeout", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s, .max_visibility_timeout = 60s},
                     clock);
  REQUIRE(queue.try_send(1).ok());
  queue_stats expected;
  expected.sent = 1;
  expected.received = 1;

  SECTION("shorter than the queue's") {
    const auto delivery = receive(queue, {.visibility_timeout = 5s});
    clock.advance(5s - 1ns);
    expected.in_flight = 1;
    check_stats(queue.stats(), "just before the lease ends", expected);
    clock.advance(1ns);
    CHECK_FALSE(queue.ack(delivery.receipt()));
    expected.in_flight = 0;
    expected.visible = 1;
    expected.expired_leases = 1;
    expected.oldest_visible_age = 5s;
    check_stats(queue.stats(), "at the lease's end", expected);
  }
  SECTION("longer than max_visibility_timeout is capped") {
    const auto delivery = receive(queue, {.visibility_timeout = 2min});
    clock.advance(60s - 1ns);
    CHECK_FALSE(receives_a_message(queue));
    clock.advance(1ns);
    CHECK_FALSE(queue.ack(delivery.receipt()));
    CHECK(receive(queue).receive_count() == 2);
  }
  SECTION("zero ends the lease at once as a failed attempt") {
    const auto delivery = receive(queue, {.visibility_timeout = 0s});
    CHECK_FALSE(queue.ack(delivery.receipt()));
    expected.visible = 1;
    expected.expired_leases = 1;
    check_stats(queue.stats(), "after the zero lease", expected);
    const auto again = receive(queue);
    CHECK(again.receive_count() == 2);
    CHECK(again.failure_count() == 1);
    CHECK(queue.ack(again.receipt()));
  }
  SECTION("negative acts as zero") {
    const auto delivery = receive(queue, {.visibility_timeout = -1s});
    CHECK_FALSE(queue.extend(delivery.receipt(), 10s));
    expected.visible = 1;
    expected.expired_leases = 1;
    check_stats(queue.stats(), "after the negative lease", expected);
  }
}

// ---- settles -----------------------------------------------------------------------------------

TEST_CASE("work_queue: release does not count a failure", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .max_receive_count = 1}, clock);
  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2).ok());
  queue_stats expected;
  expected.sent = 2;

  const auto first = receive(queue);
  REQUIRE(first.body() == 1);
  CHECK(queue.release(first.receipt()));
  CHECK_FALSE(queue.release(first.receipt()));
  expected.visible = 2;
  expected.received = 1;
  expected.released = 1;
  check_stats(queue.stats(), "after the release", expected);

  // The released message joins the tail of the visible list.
  const auto second = receive(queue);
  CHECK(second.body() == 2);
  const auto again = receive(queue);
  CHECK(again.body() == 1);
  CHECK(again.receive_count() == 2);
  CHECK(again.failure_count() == 0);

  // Releases never count toward max_receive_count, but the first nack reaches it.
  REQUIRE(queue.release(second.receipt()));
  REQUIRE(queue.release(again.receipt()));
  for (int round = 0; round < 4; ++round) {
    const auto delivery = receive(queue);  // message 2 or 1, alternately
    CHECK(queue.release(delivery.receipt()));
  }
  for (int i = 0; i < 2; ++i) {
    const auto delivery = receive(queue);
    CHECK(delivery.failure_count() == 0);
    CHECK(queue.nack(delivery.receipt()));
  }
  const auto letter = take_dead_letter(queue);
  CHECK(letter.reason == dead_letter_reason::max_receives);
  CHECK(letter.failure_count == 1);
  expected.visible = 0;
  expected.received = 9;
  expected.redelivered = 7;
  expected.released = 7;
  expected.nacked = 2;
  expected.dead_lettered = 2;
  expected.dead_letters = 1;
  check_stats(queue.stats(), "after the nacks", expected);
}

TEST_CASE("work_queue: nack without backoff makes the message visible at once", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2}, clock);
  REQUIRE(queue.try_send(1).ok());

  const auto first = receive(queue);
  CHECK(queue.nack(first.receipt()));
  CHECK_FALSE(queue.nack(first.receipt()));
  queue_stats expected;
  expected.visible = 1;
  expected.sent = 1;
  expected.received = 1;
  expected.nacked = 1;
  check_stats(queue.stats(), "after the nack", expected);

  const auto second = receive(queue);
  CHECK(second.receive_count() == 2);
  CHECK(second.failure_count() == 1);
  CHECK(queue.nack(second.receipt(), "text is kept only when the message is dead-lettered"));
  const auto third = receive(queue);
  CHECK(third.failure_count() == 2);
  CHECK(queue.dead_letters().empty());
}

TEST_CASE("work_queue: nack with fixed backoff", "[work_queue]") {
  manual_clock clock;
  ringmq::work_queue<int, ringmq::clock<manual_clock>, ringmq::backoff<ringmq::fixed_backoff>>
      queue({.capacity = 2, .backoff = {.initial = 5s, .max = 1min}}, clock);
  REQUIRE(queue.try_send(1).ok());
  queue_stats expected;
  expected.sent = 1;

  for (std::uint32_t failures = 1; failures <= 3; ++failures) {
    INFO("failure " << failures);
    const auto delivery = receive(queue);
    CHECK(delivery.failure_count() == failures - 1);
    REQUIRE(queue.nack(delivery.receipt()));
    expected.received = failures;
    expected.redelivered = failures - 1;
    expected.nacked = failures;
    expected.delayed = 1;
    check_stats(queue.stats(), "after the nack", expected);

    clock.advance(5s - 1ns);
    CHECK_FALSE(receives_a_message(queue));
    clock.advance(1ns);
  }
  CHECK(receive(queue).failure_count() == 3);
}

TEST_CASE("work_queue: nack with exponential backoff", "[work_queue]") {
  manual_clock clock;
  ringmq::work_queue<int, ringmq::clock<manual_clock>, ringmq::backoff<ringmq::exponential_backoff>>
      queue({.capacity = 2, .backoff = {.initial = 1s, .max = 5s, .multiplier = 2.0}}, clock);
  REQUIRE(queue.try_send(1).ok());
  const std::array<std::chrono::nanoseconds, 6> delays{1s, 2s, 4s, 5s, 5s, 5s};

  for (std::size_t i = 0; i < delays.size(); ++i) {
    INFO("failure " << i + 1);
    const auto delivery = receive(queue);
    CHECK(delivery.failure_count() == i);
    REQUIRE(queue.nack(delivery.receipt()));
    CHECK(queue.stats().delayed == 1);

    clock.advance(delays[i] - 1ns);
    CHECK_FALSE(receives_a_message(queue));
    clock.advance(1ns);
  }
  CHECK(receive(queue).failure_count() == delays.size());
}

TEST_CASE("work_queue: nack with jittered backoff", "[work_queue]") {
  manual_clock clock;
  const ringmq::backoff_config numbers{.initial = 1s, .max = 8s, .multiplier = 2.0};
  ringmq::work_queue<int, ringmq::clock<manual_clock>,
                     ringmq::backoff<ringmq::exponential_jitter_backoff>>
      queue({.capacity = 2, .backoff = numbers}, clock);
  const ringmq::send_result sent = queue.try_send(1);
  REQUIRE(sent.ok());
  const ringmq::exponential_jitter_backoff jitter(numbers);
  const ringmq::exponential_backoff ceiling(numbers);

  for (std::uint32_t failures = 1; failures <= 5; ++failures) {
    INFO("failure " << failures);
    const std::chrono::nanoseconds delay = jitter.delay(failures, sent.id);
    CHECK(delay >= 0ns);
    CHECK(delay <= ceiling.delay(failures, sent.id));

    const auto delivery = receive(queue);
    REQUIRE(queue.nack(delivery.receipt()));
    if (delay > 0ns) {
      clock.advance(delay - 1ns);
      CHECK_FALSE(receives_a_message(queue));
      clock.advance(1ns);
    }
  }
  CHECK(receive(queue).failure_count() == 5);
}

TEST_CASE("work_queue: nack with an explicit delay", "[work_queue]") {
  manual_clock clock;
  ringmq::work_queue<int, ringmq::clock<manual_clock>, ringmq::backoff<ringmq::fixed_backoff>>
      queue({.capacity = 2, .backoff = {.initial = 5s, .max = 5s}}, clock);
  REQUIRE(queue.try_send(1).ok());
  const auto delivery = receive(queue);

  SECTION("a positive delay replaces the backoff delay") {
    REQUIRE(queue.nack(delivery.receipt(), 2s));
    queue_stats expected;
    expected.delayed = 1;
    expected.sent = 1;
    expected.received = 1;
    expected.nacked = 1;
    check_stats(queue.stats(), "after the nack", expected);
    clock.advance(2s - 1ns);
    CHECK_FALSE(receives_a_message(queue));
    clock.advance(1ns);
    const auto again = receive(queue);
    CHECK(again.failure_count() == 1);
  }
  SECTION("a delay in another unit") {
    REQUIRE(queue.nack(delivery.receipt(), std::chrono::milliseconds(1500)));
    clock.advance(1499ms);
    CHECK_FALSE(receives_a_message(queue));
    clock.advance(1ms);
    CHECK(receives_a_message(queue));
  }
  SECTION("zero means at once") {
    REQUIRE(queue.nack(delivery.receipt(), 0s));
    CHECK(receive(queue).failure_count() == 1);
  }
  SECTION("negative means at once") {
    REQUIRE(queue.nack(delivery.receipt(), -3s));
    CHECK(receive(queue).failure_count() == 1);
  }
}

TEST_CASE("work_queue: nack detail becomes the dead letter's detail", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .max_receive_count = 2}, clock);
  REQUIRE(queue.try_send(1).ok());

  REQUIRE(queue.nack(receive(queue).receipt(), "first failure"));

  SECTION("with text") {
    REQUIRE(queue.nack(receive(queue).receipt(), "disk full"));
    const auto letter = take_dead_letter(queue);
    CHECK(letter.reason == dead_letter_reason::max_receives);
    CHECK(letter.detail == "disk full");
  }
  SECTION("without text") {
    REQUIRE(queue.nack(receive(queue).receipt()));
    CHECK(take_dead_letter(queue).detail == "nacked on attempt 2 of max_receive_count 2");
  }
  SECTION("with empty text") {
    REQUIRE(queue.nack(receive(queue).receipt(), ""));
    CHECK(take_dead_letter(queue).detail == "nacked on attempt 2 of max_receive_count 2");
  }
}

TEST_CASE("work_queue: reject dead-letters the message at once", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .max_receive_count = 5}, clock);
  const ringmq::send_result sent = queue.try_send(7);
  REQUIRE(sent.ok());
  clock.advance(3s);
  const auto delivery = receive(queue);
  clock.advance(2s);

  SECTION("with detail") {
    CHECK(queue.reject(delivery.receipt(), "bad input"));
    CHECK_FALSE(queue.reject(delivery.receipt(), "bad input"));
    queue_stats expected;
    expected.sent = 1;
    expected.received = 1;
    expected.rejected = 1;
    expected.dead_lettered = 1;
    expected.dead_letters = 1;
    check_stats(queue.stats(), "after the reject", expected);

    const auto letter = take_dead_letter(queue);
    CHECK(letter.body == 7);
    CHECK(letter.id == sent.id);
    CHECK(letter.receive_count == 1);
    CHECK(letter.failure_count == 0);
    CHECK(letter.reason == dead_letter_reason::rejected);
    CHECK(letter.detail == "bad input");
    CHECK(letter.sent_at == at(0s));
    CHECK(letter.dead_lettered_at == at(5s));
  }
  SECTION("without detail") {
    CHECK(queue.reject(delivery.receipt()));
    const auto letter = take_dead_letter(queue);
    CHECK(letter.reason == dead_letter_reason::rejected);
    CHECK(letter.detail.empty());
  }
}

TEST_CASE("work_queue: try_evict_oldest dead-letters the next visible message", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 10s}, clock);
  const ringmq::send_result leased = queue.try_send(1);
  const ringmq::send_result first = queue.try_send(2);
  const ringmq::send_result second = queue.try_send(3);
  REQUIRE(queue.try_send(4, {.delay = 5s}).ok());
  const auto delivery = receive(queue);
  REQUIRE(delivery.receipt().id() == leased.id);
  clock.advance(1s);

  // The leased and the delayed message stay; the visible ones go in line order.
  CHECK(queue.try_evict_oldest("subscription full"));
  CHECK(queue.try_evict_oldest());
  CHECK_FALSE(queue.try_evict_oldest());
  queue_stats expected;
  expected.sent = 4;
  expected.received = 1;
  expected.in_flight = 1;
  expected.delayed = 1;
  expected.evicted = 2;
  expected.dead_lettered = 2;
  expected.dead_letters = 2;
  check_stats(queue.stats(), "after two evictions", expected);

  const auto letter = take_dead_letter(queue);
  CHECK(letter.id == first.id);
  CHECK(letter.body == 2);
  CHECK(letter.reason == dead_letter_reason::evicted);
  CHECK(letter.detail == "subscription full");
  CHECK(letter.receive_count == 0);
  CHECK(letter.dead_lettered_at == at(1s));
  const auto next = take_dead_letter(queue);
  CHECK(next.id == second.id);
  CHECK(next.detail == "evicted to make room for a newer message");

  // The leased message settles as usual, and the freed slots take new sends.
  CHECK(queue.ack(delivery.receipt()));
  CHECK(queue.try_send(5).ok());
  CHECK(queue.try_send(6).ok());

  // A delayed message that came due joins the end of the line and can then be evicted.
  clock.advance(4s);
  for (const int body : {5, 6, 4}) {
    CHECK(queue.try_evict_oldest());
    CHECK(take_dead_letter(queue).body == body);
  }
  CHECK_FALSE(queue.try_evict_oldest());
}

// ---- max_receive_count -------------------------------------------------------------------------

TEST_CASE("work_queue: max_receive_count dead-letters after nacks", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .max_receive_count = 3}, clock);
  const ringmq::send_result sent = queue.try_send(7);
  REQUIRE(sent.ok());
  queue_stats expected;
  expected.sent = 1;

  for (std::uint32_t failures = 1; failures <= 2; ++failures) {
    const auto delivery = receive(queue);
    REQUIRE(queue.nack(delivery.receipt()));
    expected.visible = 1;
    expected.received = failures;
    expected.redelivered = failures - 1;
    expected.nacked = failures;
    check_stats(queue.stats(), "after a nack below the limit", expected);
  }
  clock.advance(4s);
  const auto last = receive(queue);
  CHECK(last.failure_count() == 2);
  REQUIRE(queue.nack(last.receipt()));
  expected.visible = 0;
  expected.received = 3;
  expected.redelivered = 2;
  expected.nacked = 3;
  expected.dead_lettered = 1;
  expected.dead_letters = 1;
  check_stats(queue.stats(), "after the last nack", expected);
  CHECK_FALSE(receives_a_message(queue));

  const auto letter = take_dead_letter(queue);
  CHECK(letter.body == 7);
  CHECK(letter.id == sent.id);
  CHECK(letter.reason == dead_letter_reason::max_receives);
  CHECK(letter.receive_count == 3);
  CHECK(letter.failure_count == 3);
  CHECK(letter.detail == "nacked on attempt 3 of max_receive_count 3");
  CHECK(letter.sent_at == at(0s));
  CHECK(letter.dead_lettered_at == at(4s));
}

TEST_CASE("work_queue: max_receive_count dead-letters after lease expiries", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s, .max_receive_count = 2}, clock);
  REQUIRE(queue.try_send(7).ok());
  queue_stats expected;
  expected.sent = 1;

  SECTION("two expiries") {
    CHECK(receive(queue).failure_count() == 0);
    clock.advance(30s);
    CHECK(receive(queue).failure_count() == 1);
    clock.advance(30s);
    expected.received = 2;
    expected.redelivered = 1;
    expected.expired_leases = 2;
    expected.dead_lettered = 1;
    expected.dead_letters = 1;
    check_stats(queue.stats(), "after the second expiry", expected);

    const auto letter = take_dead_letter(queue);
    CHECK(letter.reason == dead_letter_reason::max_receives);
    CHECK(letter.receive_count == 2);
    CHECK(letter.failure_count == 2);
    CHECK(letter.detail == "lease expired on attempt 2 of max_receive_count 2");
    CHECK(letter.dead_lettered_at == at(60s));
  }
  SECTION("a nack and an expiry") {
    REQUIRE(queue.nack(receive(queue).receipt(), "not this text"));
    CHECK(receive(queue).failure_count() == 1);
    clock.advance(30s);
    CHECK_FALSE(receives_a_message(queue));
    const auto letter = take_dead_letter(queue);
    CHECK(letter.failure_count == 2);
    CHECK(letter.detail == "lease expired on attempt 2 of max_receive_count 2");
  }
}

TEST_CASE("work_queue: max_receive_count 0 never dead-letters", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 1, .max_receive_count = 0}, clock);
  REQUIRE(queue.try_send(7).ok());
  for (int i = 0; i < 100; ++i) REQUIRE(queue.nack(receive(queue).receipt()));
  const auto last = receive(queue);
  CHECK(last.failure_count() == 100);
  CHECK(last.receive_count() == 101);
  CHECK(queue.dead_letters().empty());
}

// ---- retention ---------------------------------------------------------------------------------

TEST_CASE("work_queue: retention expires a message at hand-out", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .retention = 10s}, clock);
  const ringmq::send_result old = queue.try_send(1);
  REQUIRE(old.ok());
  clock.advance(5s);
  REQUIRE(queue.try_send(2).ok());
  clock.advance(5s - 1ns);
  queue_stats expected;
  expected.visible = 2;
  expected.sent = 2;
  expected.oldest_visible_age = 10s - 1ns;
  check_stats(queue.stats(), "just before the retention ends", expected);

  // A visible message past its retention stays until a receive reaches it.
  clock.advance(1ns);
  expected.oldest_visible_age = 10s;
  check_stats(queue.stats(), "at the retention's end", expected);

  const auto delivery = receive(queue);
  CHECK(delivery.body() == 2);
  expected.visible = 0;
  expected.in_flight = 1;
  expected.received = 1;
  expected.dead_lettered = 1;
  expected.dead_letters = 1;
  expected.oldest_visible_age = 0s;
  check_stats(queue.stats(), "after the receive", expected);

  const auto letter = take_dead_letter(queue);
  CHECK(letter.body == 1);
  CHECK(letter.id == old.id);
  CHECK(letter.reason == dead_letter_reason::expired);
  CHECK(letter.detail == "older than the retention period");
  CHECK(letter.receive_count == 0);
  CHECK(letter.failure_count == 0);
  CHECK(letter.sent_at == at(0s));
  CHECK(letter.dead_lettered_at == at(10s));

  // Once the last visible message expires, a receive returns nothing.
  clock.advance(5s);
  REQUIRE(queue.release(delivery.receipt()));
  CHECK_FALSE(receives_a_message(queue));
  CHECK(take_dead_letter(queue).body == 2);
}

TEST_CASE("work_queue: retention expires a message when it comes back", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s, .retention = 10s}, clock);
  queue_stats expected;
  expected.sent = 1;
  expected.dead_lettered = 1;
  expected.dead_letters = 1;

  SECTION("after a nack") {
    REQUIRE(queue.try_send(1).ok());
    const auto delivery = receive(queue);
    clock.advance(10s);
    REQUIRE(queue.nack(delivery.receipt()));
    expected.received = 1;
    expected.nacked = 1;
    check_stats(queue.stats(), "after the nack", expected);
    const auto letter = take_dead_letter(queue);
    CHECK(letter.reason == dead_letter_reason::expired);
    CHECK(letter.receive_count == 1);
    CHECK(letter.failure_count == 1);
  }
  SECTION("after a release") {
    REQUIRE(queue.try_send(1).ok());
    const auto delivery = receive(queue);
    clock.advance(10s);
    REQUIRE(queue.release(delivery.receipt()));
    expected.received = 1;
    expected.released = 1;
    check_stats(queue.stats(), "after the release", expected);
    CHECK(take_dead_letter(queue).reason == dead_letter_reason::expired);
  }
  SECTION("after a lease expiry") {
    REQUIRE(queue.try_send(1).ok());
    REQUIRE(receive(queue).body() == 1);
    clock.advance(30s);
    expected.received = 1;
    expected.expired_leases = 1;
    check_stats(queue.stats(), "after the lease ended", expected);
    const auto letter = take_dead_letter(queue);
    CHECK(letter.reason == dead_letter_reason::expired);
    CHECK(letter.dead_lettered_at == at(30s));
  }
  SECTION("after a delay") {
    REQUIRE(queue.try_send(1, {.delay = 20s}).ok());
    clock.advance(20s);
    check_stats(queue.stats(), "after the delay", expected);
    CHECK(take_dead_letter(queue).reason == dead_letter_reason::expired);
  }
  SECTION("max_receive_count wins over retention") {
    manual_queue limited({.capacity = 2, .max_receive_count = 1, .retention = 10s}, clock);
    REQUIRE(limited.try_send(1).ok());
    const auto delivery = receive(limited);
    clock.advance(10s);
    REQUIRE(limited.nack(delivery.receipt()));
    CHECK(take_dead_letter(limited).reason == dead_letter_reason::max_receives);
  }
}

// ---- batches -----------------------------------------------------------------------------------

TEST_CASE("work_queue: batch send and batch receive", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 30s}, clock);
  const std::vector<int> bodies{1, 2, 3, 4, 5, 6};
  using delivery_type = manual_queue::delivery_type;

  SECTION("send stops when the queue is full") {
    CHECK(queue.try_send_batch(bodies.begin(), bodies.end()) == 4);
    CHECK(queue.try_send_batch(bodies.begin(), bodies.end()) == 0);
    CHECK(queue.try_send_batch(bodies.begin(), bodies.begin()) == 0);
    queue_stats expected;
    expected.visible = 4;
    expected.sent = 4;
    check_stats(queue.stats(), "after the batch", expected);
    for (int body = 1; body <= 4; ++body) CHECK(receive(queue).body() == body);
  }
  SECTION("send with a delay") {
    CHECK(queue.try_send_batch(bodies.begin(), bodies.begin() + 2, {.delay = 5s}) == 2);
    CHECK(queue.stats().delayed == 2);
    clock.advance(5s);
    CHECK(queue.stats().visible == 2);
  }
  SECTION("send after close sends none") {
    queue.close();
    CHECK(queue.try_send_batch(bodies.begin(), bodies.end()) == 0);
  }
  SECTION("send moves through a move iterator and leaves unsent bodies intact") {
    ringmq::work_queue<std::string, ringmq::clock<manual_clock>> strings({.capacity = 2}, clock);
    const std::string text = "a body long enough to live on the heap, not inline";
    std::vector<std::string> items(3, text);
    CHECK(strings.try_send_batch(std::make_move_iterator(items.begin()),
                                 std::make_move_iterator(items.end())) == 2);
    CHECK(items[2] == text);
    CHECK(receive(strings).body() == text);
  }
  SECTION("receive hands out up to max in order") {
    REQUIRE(queue.try_send_batch(bodies.begin(), bodies.end()) == 4);
    std::vector<delivery_type> out;
    CHECK(queue.try_receive_batch(std::back_inserter(out), 0) == 0);
    CHECK(queue.try_receive_batch(std::back_inserter(out), 3) == 3);
    CHECK(queue.try_receive_batch(std::back_inserter(out), 10) == 1);
    CHECK(queue.try_receive_batch(std::back_inserter(out), 10) == 0);
    REQUIRE(out.size() == 4);
    for (std::size_t i = 0; i < out.size(); ++i) {
      CHECK(out[i].body() == static_cast<int>(i) + 1);
      CHECK(out[i].receive_count() == 1);
    }
    queue_stats expected;
    expected.in_flight = 4;
    expected.sent = 4;
    expected.received = 4;
    check_stats(queue.stats(), "after the batch receives", expected);
    for (const delivery_type& delivery : out) CHECK(queue.ack(delivery.receipt()));
  }
  SECTION("receive_batch_for with max 0 or nothing visible") {
    std::vector<delivery_type> out;
    CHECK(queue.receive_batch_for(std::back_inserter(out), 0, 0s) == 0);
    CHECK(queue.receive_batch_for(std::back_inserter(out), 5, 0s) == 0);
    REQUIRE(queue.try_send(1).ok());
    CHECK(queue.receive_batch_for(std::back_inserter(out), 0, 0s) == 0);
    CHECK(out.empty());
  }
  SECTION("batch receives use the per-receive visibility timeout") {
    REQUIRE(queue.try_send_batch(bodies.begin(), bodies.end()) == 4);
    std::vector<delivery_type> out;
    CHECK(queue.try_receive_batch(std::back_inserter(out), 2, {.visibility_timeout = 5s}) == 2);
    CHECK(queue.receive_batch_for(std::back_inserter(out), 5, 1s, {.visibility_timeout = 10s}) ==
          2);
    clock.advance(5s);
    queue_stats expected;
    expected.visible = 2;
    expected.in_flight = 2;
    expected.sent = 4;
    expected.received = 4;
    expected.expired_leases = 2;
    expected.oldest_visible_age = 5s;
    check_stats(queue.stats(), "after the short leases ended", expected);
    CHECK(queue.ack(out[2].receipt()));
    CHECK(queue.ack(out[3].receipt()));
  }
  SECTION("ack_batch acknowledges what works and skips the rest") {
    REQUIRE(queue.try_send_batch(bodies.begin(), bodies.end()) == 4);
    std::vector<delivery_type> out;
    REQUIRE(queue.try_receive_batch(std::back_inserter(out), 4, {.visibility_timeout = 5s}) == 4);
    CHECK(queue.ack(out[1].receipt()));
    const ringmq::receipt foreign = [] {
      ringmq::work_queue<int> other({.capacity = 1});
      REQUIRE(other.try_send(1).ok());
      return receive(other).receipt();
    }();

    // Receipts: one already acked, one from another queue, a default one, two that work.
    const std::vector<receipt> receipts{out[0].receipt(), out[1].receipt(), foreign, receipt{},
                                        out[2].receipt()};
    CHECK(queue.ack_batch(receipts.begin(), receipts.end()) == 2);
    CHECK(queue.ack_batch(receipts.begin(), receipts.end()) == 0);

    // Deliveries work too; a lease that ended does not.
    clock.advance(5s);
    CHECK(queue.ack_batch(out.begin() + 3, out.end()) == 0);
    std::vector<delivery_type> again;
    REQUIRE(queue.try_receive_batch(std::back_inserter(again), 4) == 1);
    CHECK(again[0].body() == 4);
    CHECK(queue.ack_batch(again.begin(), again.end()) == 1);

    queue_stats expected;
    expected.sent = 4;
    expected.received = 5;
    expected.redelivered = 1;
    expected.acked = 4;
    expected.expired_leases = 1;
    check_stats(queue.stats(), "after the batch acks", expected);
  }
  SECTION("batch messages carry their send time") {
    REQUIRE(queue.try_send_batch(bodies.begin(), bodies.begin() + 2) == 2);
    clock.advance(1s);
    REQUIRE(queue.try_send(3).ok());
    std::vector<delivery_type> out;
    REQUIRE(queue.try_receive_batch(std::back_inserter(out), 3) == 3);
    CHECK(out[0].sent_at() == at(0s));
    CHECK(out[1].sent_at() == at(0s));
    CHECK(out[2].sent_at() == at(1s));
    CHECK(queue.ack_batch(out.begin(), out.end()) == 3);
  }
}

// ---- statistics --------------------------------------------------------------------------------

TEST_CASE("work_queue: stats follow each step", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 8, .visibility_timeout = 30s, .max_receive_count = 2}, clock);
  queue_stats expected;
  check_stats(queue.stats(), "of a new queue", expected);

  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2).ok());
  REQUIRE(queue.try_send(3).ok());
  REQUIRE(queue.try_send(4, {.delay = 100s}).ok());
  expected.visible = 3;
  expected.delayed = 1;
  expected.sent = 4;
  check_stats(queue.stats(), "after the sends", expected);

  clock.advance(1s);
  const auto first = receive(queue);
  const auto second = receive(queue);
  expected.visible = 1;
  expected.in_flight = 2;
  expected.received = 2;
  expected.oldest_visible_age = 1s;
  check_stats(queue.stats(), "after two receives", expected);

  REQUIRE(queue.ack(first.receipt()));
  expected.in_flight = 1;
  expected.acked = 1;
  check_stats(queue.stats(), "after the ack", expected);

  REQUIRE(queue.nack(second.receipt()));
  expected.visible = 2;
  expected.in_flight = 0;
  expected.nacked = 1;
  check_stats(queue.stats(), "after the nack", expected);

  const auto third = receive(queue);  // message 3
  const auto second_again = receive(queue);
  REQUIRE(second_again.body() == 2);
  expected.visible = 0;
  expected.in_flight = 2;
  expected.received = 4;
  expected.redelivered = 1;
  expected.oldest_visible_age = 0s;
  check_stats(queue.stats(), "after the redelivery", expected);

  REQUIRE(queue.release(third.receipt()));
  expected.visible = 1;
  expected.in_flight = 1;
  expected.released = 1;
  expected.oldest_visible_age = 1s;
  check_stats(queue.stats(), "after the release", expected);

  REQUIRE(queue.reject(second_again.receipt(), "bad"));
  expected.in_flight = 0;
  expected.rejected = 1;
  expected.dead_lettered = 1;
  expected.dead_letters = 1;
  check_stats(queue.stats(), "after the reject", expected);

  const auto third_again = receive(queue);
  CHECK(third_again.receive_count() == 2);
  clock.advance(30s);
  expected.received = 5;
  expected.redelivered = 2;
  expected.expired_leases = 1;
  expected.oldest_visible_age = 31s;
  check_stats(queue.stats(), "after the lease expiry", expected);

  REQUIRE(queue.nack(receive(queue).receipt()));  // second failure: dead letter
  expected.visible = 0;
  expected.received = 6;
  expected.redelivered = 3;
  expected.nacked = 2;
  expected.dead_lettered = 2;
  expected.dead_letters = 2;
  expected.oldest_visible_age = 0s;
  check_stats(queue.stats(), "after the second failure", expected);

  CHECK(queue.redrive(1) == 1);
  expected.visible = 1;
  expected.dead_letters = 1;
  expected.redriven = 1;
  check_stats(queue.stats(), "after the redrive", expected);

  clock.advance(69s);
  expected.visible = 2;
  expected.delayed = 0;
  expected.oldest_visible_age = 100s;  // message 4, sent at 0 s
  check_stats(queue.stats(), "after the delay ended", expected);
  CHECK(queue.size() == 2);
}

TEST_CASE("work_queue: oldest_visible_age follows the oldest visible message", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 30s}, clock);
  CHECK(queue.stats().oldest_visible_age == 0s);

  REQUIRE(queue.try_send(1).ok());
  CHECK(queue.stats().oldest_visible_age == 0s);
  clock.advance(3s);
  REQUIRE(queue.try_send(2).ok());
  REQUIRE(queue.try_send(3, {.delay = 1s}).ok());  // delayed messages do not count
  CHECK(queue.stats().oldest_visible_age == 3s);

  const auto first = receive(queue);
  CHECK(queue.stats().oldest_visible_age == 0s);
  clock.advance(2s);  // message 3 is visible now, sent at 3 s like message 2
  CHECK(queue.stats().oldest_visible_age == 2s);

  // A message that comes back keeps its sent_at.
  REQUIRE(queue.release(first.receipt()));
  CHECK(queue.stats().oldest_visible_age == 5s);
}

// ---- close -------------------------------------------------------------------------------------

TEST_CASE("work_queue: close stops sends but not receives or settles", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 8, .visibility_timeout = 30s}, clock);
  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2).ok());
  REQUIRE(queue.try_send(3).ok());
  REQUIRE(queue.try_send(4, {.delay = 40s}).ok());
  const auto leased = receive(queue);
  const auto expiring = receive(queue);
  CHECK_FALSE(queue.is_closed());
  queue.close();
  CHECK(queue.is_closed());
  CHECK_FALSE(queue.is_drained());

  CHECK(queue.try_send(5).status == send_status::closed);

  // Visible messages are still handed out, by both receive calls.
  const auto waited = queue.receive_for(1s);
  REQUIRE(waited.has_value());
  CHECK(waited->body() == 3);
  CHECK(queue.ack(waited->receipt()));
  CHECK_FALSE(receives_a_message(queue));

  // Open leases can be extended and settled.
  CHECK(queue.extend(leased.receipt(), 60s));
  CHECK(queue.nack(leased.receipt()));
  const auto nacked = receive(queue);
  CHECK(nacked.failure_count() == 1);
  CHECK(queue.ack(nacked.receipt()));

  // An expired lease and a due delayed message still come back.
  clock.advance(30s);
  const auto back = receive(queue);
  CHECK(back.id() == expiring.id());
  CHECK(back.failure_count() == 1);
  CHECK(queue.reject(back.receipt(), "after close"));
  CHECK_FALSE(queue.is_drained());  // message 4 is still delayed
  clock.advance(10s);
  const auto last = receive(queue);
  CHECK(last.body() == 4);
  CHECK_FALSE(queue.is_drained());  // and now leased
  CHECK(queue.ack(last.receipt()));

  // Dead letters are not held by the queue, so they do not keep it from being drained.
  CHECK(queue.is_drained());
  CHECK(queue.redrive(10) == 0);
  CHECK(queue.dead_letters().size() == 1);
}

TEST_CASE("work_queue: receive_for on a drained queue returns at once", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2}, clock);
  REQUIRE(queue.try_send(1).ok());
  CHECK(queue.ack(receive(queue).receipt()));
  queue.close();
  REQUIRE(queue.is_drained());

  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(queue.receive_for(60s).has_value());
  std::vector<manual_queue::delivery_type> out;
  CHECK(queue.receive_batch_for(std::back_inserter(out), 4, 60s) == 0);
  CHECK(std::chrono::steady_clock::now() - start < 30s);  // did not wait out either 60 s
}

TEST_CASE("work_queue: receive_for on a closed queue waits while a message is held",
          "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s}, clock);
  REQUIRE(queue.try_send(1).ok());
  const auto delivery = receive(queue);
  queue.close();

  // A closed queue with a lease open is not drained: a short wait times out empty.
  CHECK_FALSE(queue.receive_for(1ms).has_value());
  CHECK_FALSE(queue.is_drained());

  SECTION("until the lease is acknowledged") {
    // Whether the ack comes before or during the wait, the queue becomes drained. A receive
    // that missed the ack would wait out the whole 60 s.
    const auto start = std::chrono::steady_clock::now();
    bool acked = false;  // Catch2 checks run on the test's thread only
    std::thread settler([&queue, &delivery, &acked] { acked = queue.ack(delivery.receipt()); });
    CHECK_FALSE(queue.receive_for(60s).has_value());
    settler.join();
    CHECK(acked);
    CHECK(std::chrono::steady_clock::now() - start < 30s);
    CHECK(queue.is_drained());
  }
  SECTION("until the lease ends and the message comes back") {
    std::thread advancer([&clock] { clock.advance(30s); });
    const auto again = queue.receive_for(60s);
    advancer.join();
    REQUIRE(again.has_value());
    CHECK(again->id() == delivery.id());
    CHECK(again->failure_count() == 1);
  }
}

TEST_CASE("work_queue: receive_for sees a manual clock advanced by another thread",
          "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2}, clock);
  REQUIRE(queue.try_send(1, {.delay = 5s}).ok());

  // Whether the advance comes before or during the wait, the message becomes visible. A
  // receive that missed the advance would wait out the whole 60 s and return nothing.
  std::thread advancer([&clock] { clock.advance(5s); });
  const auto delivery = queue.receive_for(60s);
  advancer.join();
  REQUIRE(delivery.has_value());
  CHECK(delivery->body() == 1);
}

// ---- redrive -----------------------------------------------------------------------------------

TEST_CASE("work_queue: redrive returns dead letters oldest first", "[work_queue]") {
  manual_clock clock;
  manual_queue queue({.capacity = 3, .max_receive_count = 2, .dead_letter_capacity = 8}, clock);
  std::array<ringmq::message_id, 3> ids{};
  for (int body = 0; body < 3; ++body) {
    const ringmq::send_result sent = queue.try_send(body);
    REQUIRE(sent.ok());
    ids[static_cast<std::size_t>(body)] = sent.id;
  }
  auto zero = receive(queue);
  auto one = receive(queue);
  auto two = receive(queue);
  clock.advance(4s);

  // Dead-letter in the order 1, 0 (after two nacks), 2.
  REQUIRE(queue.reject(one.receipt()));
  REQUIRE(queue.nack(zero.receipt()));
  REQUIRE(queue.nack(receive(queue).receipt()));
  REQUIRE(queue.reject(two.receipt()));
  REQUIRE(queue.dead_letters().size() == 3);
  queue_stats expected;
  expected.sent = 3;
  expected.received = 4;
  expected.redelivered = 1;
  expected.nacked = 2;
  expected.rejected = 2;
  expected.dead_lettered = 3;
  expected.dead_letters = 3;
  check_stats(queue.stats(), "after dead-lettering", expected);

  SECTION("order, ids, counts and sent_at") {
    clock.advance(1s);
    CHECK(queue.redrive(0) == 0);
    CHECK(queue.redrive(2) == 2);
    expected.visible = 2;
    expected.dead_letters = 1;
    expected.redriven = 2;
    check_stats(queue.stats(), "after the redrive", expected);

    const auto first = receive(queue);
    CHECK(first.body() == 1);
    CHECK(first.id() == ids[1]);
    CHECK(first.receive_count() == 1);
    CHECK(first.failure_count() == 0);
    CHECK(first.sent_at() == at(5s));
    const auto second = receive(queue);
    CHECK(second.body() == 0);
    CHECK(second.id() == ids[0]);
    CHECK(second.receive_count() == 1);
    CHECK(second.failure_count() == 0);

    // Counts start again: two more failures dead-letter message 0 again.
    REQUIRE(queue.nack(second.receipt()));
    const auto second_again = receive(queue);
    CHECK(second_again.failure_count() == 1);
    REQUIRE(queue.nack(second_again.receipt()));
    CHECK(queue.dead_letters().size() == 2);

    CHECK(queue.redrive(10) == 2);
    CHECK(receive(queue).body() == 2);
    CHECK(receive(queue).body() == 0);
    CHECK(queue.stats().redriven == 4);
  }
  SECTION("stops when the queue is full") {
    REQUIRE(queue.try_send(10).ok());
    REQUIRE(queue.try_send(11).ok());
    CHECK(queue.redrive(5) == 1);
    CHECK(queue.redrive(5) == 0);
    expected.visible = 3;
    expected.sent = 5;
    expected.dead_letters = 2;
    expected.redriven = 1;
    expected.oldest_visible_age = 0s;
    check_stats(queue.stats(), "after the partial redrive", expected);

    CHECK(receive(queue).body() == 10);
    CHECK(queue.ack(receive(queue).receipt()));  // 11
    CHECK(queue.redrive(5) == 1);
    std::vector<int> left;
    queue.dead_letters().for_each([&left](const auto& letter) { left.push_back(letter.body); });
    CHECK(left == std::vector<int>{2});
  }
  SECTION("none after close") {
    queue.close();
    CHECK(queue.redrive(5) == 0);
    check_stats(queue.stats(), "after the redrive on a closed queue", expected);
  }
  SECTION("retention counts from the redrive") {
    manual_queue keeping({.capacity = 2, .retention = 10s}, clock);
    REQUIRE(keeping.try_send(1).ok());
    clock.advance(10s);
    CHECK_FALSE(receives_a_message(keeping));
    REQUIRE(keeping.redrive(1) == 1);
    clock.advance(10s - 1ns);
    CHECK(receive(keeping).body() == 1);
  }
}

// ---- bodies ------------------------------------------------------------------------------------

TEST_CASE("work_queue: every body is destroyed exactly once", "[work_queue]") {
  using counted_queue = ringmq::work_queue<counted, ringmq::clock<manual_clock>>;
  counted::reset();
  {
    manual_clock clock;
    counted_queue queue({.capacity = 6,
                         .visibility_timeout = 30s,
                         .max_receive_count = 1,
                         .dead_letter_capacity = 2},
                        clock);
    {
      const counted copied(1);
      REQUIRE(queue.try_send(counted(0)).ok());
      REQUIRE(queue.try_send(copied).ok());
      REQUIRE(queue.send(counted(2)).ok());
      REQUIRE(queue.send_for(counted(3), 0s).ok());
      REQUIRE(queue.try_send(counted(4), {.delay = 10s}).ok());
      REQUIRE(queue.try_send(counted(5)).ok());
      CHECK(queue.try_send(counted(6)).status == send_status::full);
      CHECK(queue.send_for(counted(6), 0s).status == send_status::timeout);
    }
    CHECK(counted::live() == 6);

    REQUIRE(queue.ack(receive(queue).receipt()));  // 0
    CHECK(counted::live() == 5);
    REQUIRE(queue.reject(receive(queue).receipt()));  // 1: dead letters [1]
    REQUIRE(queue.nack(receive(queue).receipt()));    // 2: dead letters [1, 2]
    CHECK(counted::live() == 5);
    REQUIRE(queue.reject(receive(queue).receipt()));  // 3: drops 1, dead letters [2, 3]
    CHECK(counted::live() == 4);
    CHECK(queue.stats().dropped == 1);

    REQUIRE(queue.redrive(1) == 1);  // 2 is visible again, dead letters [3]
    CHECK(counted::live() == 4);
    {
      const auto letter = take_dead_letter(queue);  // 3
      CHECK(letter.body.value() == 3);
    }
    CHECK(counted::live() == 3);

    // Leave 5 leased and 4 delayed in the queue when it is destroyed. A zero lease on 2 ends at
    // once and, with max_receive_count 1, makes 2 a dead letter that the queue also destroys.
    const auto five = receive(queue);
    CHECK(five.body().value() == 5);
    CHECK(counted::live() == 4);
    const auto expiring = receive(queue, {.visibility_timeout = 0s});  // 2
    CHECK(expiring.body().value() == 2);
    CHECK(queue.stats().dead_letters == 1);
    CHECK(counted::live() == 5);  // 5, 4, dead letter 2 and the deliveries of 5 and 2
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEST_CASE("work_queue: a move-only payload travels in a shared_ptr", "[work_queue]") {
  using ringmq_test::move_only;
  using pointer_queue = ringmq::work_queue<std::shared_ptr<move_only>, ringmq::clock<manual_clock>>;
  manual_clock clock;
  std::weak_ptr<move_only> acked_watch;
  std::weak_ptr<move_only> left_watch;
  {
    pointer_queue queue({.capacity = 2}, clock);
    auto payload = std::make_shared<move_only>(42);
    acked_watch = payload;
    REQUIRE(queue.try_send(std::move(payload)).ok());
    CHECK(acked_watch.use_count() == 1);

    auto left = std::make_shared<move_only>(43);
    left_watch = left;
    REQUIRE(queue.try_send(std::move(left)).ok());

    {
      auto delivery = receive(queue);
      REQUIRE(delivery.body() != nullptr);
      CHECK(*delivery.body()->value == 42);
      CHECK(acked_watch.use_count() == 2);
      REQUIRE(queue.ack(delivery.receipt()));
      CHECK(acked_watch.use_count() == 1);
    }
    CHECK(acked_watch.expired());
    CHECK(left_watch.use_count() == 1);
  }
  CHECK(left_watch.expired());
}

TEST_CASE("work_queue: a receive whose copy throws leaves the message visible", "[work_queue]") {
  using fragile_queue = ringmq::work_queue<throwing_copy, ringmq::clock<manual_clock>>;
  counted::reset();
  {
    manual_clock clock;
    fragile_queue queue({.capacity = 2}, clock);
    REQUIRE(queue.try_send(throwing_copy(1)).ok());

    throwing_copy::arm();
    CHECK_THROWS_AS(queue.try_receive(), counted_error);
    queue_stats expected;
    expected.visible = 1;
    expected.sent = 1;
    check_stats(queue.stats(), "after the failed copy", expected);
    CHECK(counted::live() == 1);

    const auto delivery = receive(queue);
    CHECK(delivery.body().item.value() == 1);
    CHECK(delivery.receive_count() == 1);
    CHECK(delivery.failure_count() == 0);
    CHECK(queue.ack(delivery.receipt()));
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEST_CASE("work_queue: steady_clock is the default clock", "[work_queue]") {
  ringmq::work_queue<int> queue({.capacity = 2});
  const auto before = std::chrono::steady_clock::now();
  REQUIRE(queue.try_send(1).ok());
  const auto delivery = receive(queue);
  CHECK(delivery.sent_at() >= before);
  CHECK(delivery.sent_at() <= queue.now());
  CHECK(queue.ack(delivery.receipt()));
}

TEST_CASE("work_queue: leases on steady_clock last their timeout", "[work_queue]") {
  // A lease must not end before its timeout: the message stays leased, and its receipt works,
  // until then.
  ringmq::work_queue<int> queue({.capacity = 2, .visibility_timeout = 2s});
  for (const auto lease : {std::chrono::nanoseconds(2s), std::chrono::nanoseconds(200ms)}) {
    INFO("lease " << lease.count() << " ns");
    REQUIRE(queue.try_send(1).ok());
    const auto start = std::chrono::steady_clock::now();
    const auto delivery = receive(queue, {.visibility_timeout = lease});
    // Check only while the lease surely runs, so that the test does not depend on timing.
    if (std::chrono::steady_clock::now() - start < lease / 2) {
      CHECK_FALSE(queue.try_receive().has_value());
      CHECK(queue.stats().in_flight == 1);
    }
    CHECK(queue.ack(delivery.receipt()));
  }
}

TEST_CASE("work_queue: coarse_steady_clock gives steady_clock times", "[work_queue]") {
  ringmq::work_queue<int, ringmq::clock<ringmq::coarse_steady_clock>> queue({.capacity = 2});
  const auto before = std::chrono::steady_clock::now();
  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2, {.delay = 1h}).ok());
  const auto delivery = receive(queue);
  // The coarse clock lags steady_clock by a tick or a few.
  CHECK(delivery.sent_at() > before - 1s);
  CHECK(delivery.sent_at() <= std::chrono::steady_clock::now());
  CHECK_FALSE(queue.try_receive().has_value());  // the delayed one waits its hour
  CHECK(queue.ack(delivery.receipt()));
  const ringmq::queue_stats stats = queue.stats();
  CHECK(stats.delayed == 1);
  CHECK(stats.acked == 1);
}
