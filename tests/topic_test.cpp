// Tests of ringmq::topic: routing to ring and work-queue subscriptions, predicate bindings, every
// overflow policy with exact counts, publish results, unsubscribing, close, configuration errors
// and what the topic does with the messages it copies.
//
// Threads appear only where a call must wait. A consumer, unsubscribe() or close() releases a
// publisher blocked on a full inbox, and the test learns that the publisher has entered the
// subscription from a predicate that raises a flag. No test sleeps or measures time. A block
// timeout is short, and the test only needs the call to return.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/topic.hpp>

#include "support/counted.hpp"

using namespace std::chrono_literals;
using ringmq::dead_letter_reason;
using ringmq::overflow_policy;
using ringmq::publish_result;
using ringmq::publish_status;
using ringmq::queue_inbox;
using ringmq::ring_inbox;
using ringmq::subscription_stats;
using ringmq_test::counted;
using ringmq_test::counted_error;

namespace {

using int_topic = ringmq::topic<int>;
// Most behaviours are tested with any number of publishing threads and with a single one.
using multi_topic = ringmq::topic<int>;
using single_topic = ringmq::topic<int, ringmq::producers<ringmq::single>>;

// Checks every field of a publish_result, one check per field.
void check_result(const publish_result& actual, const publish_result& expected) {
  CHECK(actual.status == expected.status);
  CHECK(actual.matched == expected.matched);
  CHECK(actual.delivered == expected.delivered);
  CHECK(actual.dropped == expected.dropped);
  CHECK(actual.timed_out == expected.timed_out);
  CHECK(actual.dropped_oldest == expected.dropped_oldest);
  CHECK(actual.matched == actual.delivered + actual.dropped);
}

// Checks every field of a subscription's stats, one check per field.
void check_stats(const subscription_stats& actual, const subscription_stats& expected) {
  CHECK(actual.matched == expected.matched);
  CHECK(actual.delivered == expected.delivered);
  CHECK(actual.dropped_oldest == expected.dropped_oldest);
  CHECK(actual.dropped_newest == expected.dropped_newest);
  CHECK(actual.block_timeouts == expected.block_timeouts);
  CHECK(actual.dropped_closed == expected.dropped_closed);
  CHECK(actual.queued == expected.queued);
}

// Pops everything left in a ring subscription's inbox, oldest first.
template <class Subscription>
std::vector<int> drain(Subscription& subscription) {
  std::vector<int> out;
  while (std::optional<int> value = subscription.inbox().try_pop()) out.push_back(*value);
  return out;
}

// Receives and acknowledges everything visible in a work-queue subscription's inbox.
template <class Subscription>
std::vector<int> receive_all(Subscription& subscription) {
  std::vector<int> out;
  auto& queue = subscription.inbox();
  while (auto delivery = queue.try_receive()) {
    out.push_back(delivery->body());
    CHECK(queue.ack(delivery->receipt()));
  }
  return out;
}

// A predicate that matches every message and raises `entered` each time a publisher calls it,
// which it does from inside the subscription's slot.
struct entry_signal {
  std::atomic<int>* entered;
  bool operator()(std::string_view, const int&) const {
    entered->fetch_add(1, std::memory_order_release);
    return true;
  }
};

void wait_for_entries(const std::atomic<int>& entered, int count) {
  while (entered.load(std::memory_order_acquire) < count) std::this_thread::yield();
}

template <class Error, class Call>
std::string error_of(Call call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no exception)";
}

}  // namespace

// ---- routing -------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("topic: publish reaches every matching ring subscription", "[topic]",
                   multi_topic, single_topic) {
  TestType topic;
  auto created = topic.subscribe("orders.created");
  auto any_order = topic.subscribe("orders.*");
  auto all = topic.subscribe("#");
  auto shipping = topic.subscribe("shipping.#");

  check_result(topic.publish("orders.created", 1), {.matched = 3, .delivered = 3});
  check_result(topic.publish("orders.cancelled", 2), {.matched = 2, .delivered = 2});
  check_result(topic.publish("shipping", 3), {.matched = 2, .delivered = 2});
  check_result(topic.publish("billing.paid", 4), {.matched = 1, .delivered = 1});

  CHECK(drain(created) == std::vector<int>{1});
  CHECK(drain(any_order) == std::vector<int>{1, 2});
  CHECK(drain(all) == std::vector<int>{1, 2, 3, 4});
  CHECK(drain(shipping) == std::vector<int>{3});
  check_stats(any_order.stats(), {.matched = 2, .delivered = 2});
  check_stats(shipping.stats(), {.matched = 1, .delivered = 1});
}

TEMPLATE_TEST_CASE("topic: publish without a key uses the empty key", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto everything = topic.subscribe("#");
  auto empty_key = topic.subscribe("");
  auto one_word = topic.subscribe("*");

  check_result(topic.publish(7), {.matched = 2, .delivered = 2});
  CHECK(drain(everything) == std::vector<int>{7});
  CHECK(drain(empty_key) == std::vector<int>{7});
  CHECK(drain(one_word).empty());
}

TEST_CASE("topic: publish with no subscription matches none", "[topic]") {
  int_topic topic;
  check_result(topic.publish("a.b", 1), {});
  auto other = topic.subscribe("x.#");
  check_result(topic.publish("a.b", 1), {});
  CHECK(other.inbox().empty());
}

TEST_CASE("topic: each subscription gets its own copy", "[topic]") {
  ringmq::topic<std::string> topic;
  auto first = topic.subscribe("#");
  auto second = topic.subscribe("#");
  const std::string message = "payload that does not fit the small-string buffer";
  REQUIRE(topic.publish(message).delivered == 2);

  std::optional<std::string> a = first.inbox().try_pop();
  std::optional<std::string> b = second.inbox().try_pop();
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(*a == message);
  CHECK(*b == message);
  CHECK(a->data() != b->data());
  CHECK(message == "payload that does not fit the small-string buffer");
}

TEMPLATE_TEST_CASE("topic: predicate subscription sees key and message", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto large = topic.subscribe([](std::string_view, const int& value) { return value >= 100; });
  auto eu_keys =
      topic.subscribe([](std::string_view key, const int&) { return key.ends_with(".eu"); });

  check_result(topic.publish("orders.eu", 5), {.matched = 1, .delivered = 1});
  check_result(topic.publish("orders.us", 500), {.matched = 1, .delivered = 1});
  check_result(topic.publish("orders.eu", 700), {.matched = 2, .delivered = 2});
  check_result(topic.publish("orders.us", 1), {});

  CHECK(drain(large) == std::vector<int>{500, 700});
  CHECK(drain(eu_keys) == std::vector<int>{5, 700});
  CHECK(large.pattern().empty());
}

TEST_CASE("topic: move-only predicate is accepted", "[topic]") {
  int_topic topic;
  auto threshold = std::make_unique<int>(10);
  auto above = topic.subscribe([limit = std::move(threshold)](std::string_view, const int& value) {
    return value > *limit;
  });
  REQUIRE(topic.publish(11).delivered == 1);
  REQUIRE(topic.publish(9).matched == 0);
  CHECK(drain(above) == std::vector<int>{11});
}

TEST_CASE("topic: work-queue subscription leases, retries and acks", "[topic]") {
  ringmq::manual_clock clock;
  using manual_queue = ringmq::work_queue<int, ringmq::clock<ringmq::manual_clock>>;
  int_topic topic;
  auto jobs = topic.subscribe<manual_queue>(
      "jobs.#",
      queue_inbox{.queue = {.capacity = 8, .visibility_timeout = 10s, .max_receive_count = 2}},
      clock);
  static_assert(std::is_same_v<std::remove_reference_t<decltype(jobs.inbox())>, manual_queue>);

  check_result(topic.publish("jobs.resize", 1), {.matched = 1, .delivered = 1});
  check_result(topic.publish("jobs.crop", 2), {.matched = 1, .delivered = 1});

  manual_queue& queue = jobs.inbox();
  auto first = queue.try_receive();
  REQUIRE(first.has_value());
  CHECK(first->body() == 1);
  CHECK(queue.nack(first->receipt()));  // visible again at once: no backoff

  auto second = queue.try_receive();
  REQUIRE(second.has_value());
  CHECK(second->body() == 2);
  CHECK(queue.ack(second->receipt()));

  auto retry = queue.try_receive();
  REQUIRE(retry.has_value());
  CHECK(retry->body() == 1);
  CHECK(retry->receive_count() == 2);
  clock.advance(11s);  // the lease ends: the second failed attempt dead-letters the message
  CHECK_FALSE(queue.try_receive().has_value());
  auto letter = queue.dead_letters().try_receive();
  REQUIRE(letter.has_value());
  CHECK(letter->body == 1);
  CHECK(letter->reason == dead_letter_reason::max_receives);
  check_stats(jobs.stats(), {.matched = 2, .delivered = 2});
}

TEST_CASE("topic: default work-queue subscription", "[topic]") {
  int_topic topic;
  int_topic::queue_subscription jobs = topic.subscribe("#", queue_inbox{});
  REQUIRE(topic.publish(3).delivered == 1);
  CHECK(receive_all(jobs) == std::vector<int>{3});
  CHECK(jobs.inbox().stats().acked == 1);
}

TEST_CASE("topic: competing consumers share one subscription", "[topic]") {
  int_topic topic;
  auto shared = topic.subscribe("#", ring_inbox{.capacity = 64});
  for (int value = 0; value < 40; ++value) REQUIRE(topic.publish(value).delivered == 1);

  std::vector<int> taken[2];
  std::thread other([&] { taken[1] = drain(shared); });
  taken[0] = drain(shared);
  other.join();

  std::vector<int> seen(40, 0);
  for (const auto& log : taken) {
    for (const int value : log) ++seen.at(static_cast<std::size_t>(value));
  }
  for (int value = 0; value < 40; ++value) {
    INFO("message " << value);
    CHECK(seen[static_cast<std::size_t>(value)] == 1);
  }
}

// ---- overflow policies ---------------------------------------------------------------------

TEMPLATE_TEST_CASE("topic: ring drop_newest keeps the first messages", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto slow =
      topic.subscribe("#", ring_inbox{.capacity = 2, .overflow = overflow_policy::drop_newest});
  check_result(topic.publish(1), {.matched = 1, .delivered = 1});
  check_result(topic.publish(2), {.matched = 1, .delivered = 1});
  check_result(topic.publish(3), {.matched = 1, .dropped = 1});
  check_result(topic.publish(4), {.matched = 1, .dropped = 1});
  check_stats(slow.stats(), {.matched = 4, .delivered = 2, .dropped_newest = 2, .queued = 2});
  CHECK(drain(slow) == std::vector<int>{1, 2});
}

TEMPLATE_TEST_CASE("topic: ring drop_oldest keeps the last messages", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto slow =
      topic.subscribe("#", ring_inbox{.capacity = 2, .overflow = overflow_policy::drop_oldest});
  check_result(topic.publish(1), {.matched = 1, .delivered = 1});
  check_result(topic.publish(2), {.matched = 1, .delivered = 1});
  check_result(topic.publish(3), {.matched = 1, .delivered = 1, .dropped_oldest = 1});
  check_result(topic.publish(4), {.matched = 1, .delivered = 1, .dropped_oldest = 1});
  check_result(topic.publish(5), {.matched = 1, .delivered = 1, .dropped_oldest = 1});
  check_stats(slow.stats(), {.matched = 5, .delivered = 5, .dropped_oldest = 3, .queued = 2});
  CHECK(drain(slow) == std::vector<int>{4, 5});
}

TEMPLATE_TEST_CASE("topic: ring block times out and counts it", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto slow = topic.subscribe(
      "#", ring_inbox{.capacity = 1, .overflow = overflow_policy::block, .block_timeout = 1ms});
  auto fast = topic.subscribe("#", ring_inbox{.capacity = 4});
  check_result(topic.publish(1), {.matched = 2, .delivered = 2});
  check_result(topic.publish(2), {.matched = 2, .delivered = 1, .dropped = 1, .timed_out = 1});
  check_stats(slow.stats(), {.matched = 2, .delivered = 1, .block_timeouts = 1, .queued = 1});
  CHECK(drain(slow) == std::vector<int>{1});
  CHECK(drain(fast) == std::vector<int>{1, 2});
}

TEMPLATE_TEST_CASE("topic: ring block waits until a consumer makes room", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto slow = topic.subscribe("#", ring_inbox{.capacity = 1});
  std::vector<publish_result> results(5);
  std::thread publisher([&] {
    for (int value = 0; value < 5; ++value)
      results[static_cast<std::size_t>(value)] = topic.publish(value);
  });
  std::vector<int> received;
  for (int count = 0; count < 5; ++count) {
    std::optional<int> value = slow.inbox().pop();
    REQUIRE(value.has_value());
    received.push_back(*value);
  }
  publisher.join();
  CHECK(received == std::vector<int>{0, 1, 2, 3, 4});
  for (const publish_result& result : results) check_result(result, {.matched = 1, .delivered = 1});
  check_stats(slow.stats(), {.matched = 5, .delivered = 5});
}

TEMPLATE_TEST_CASE("topic: work-queue drop_oldest dead-letters the oldest visible", "[topic]",
                   multi_topic, single_topic) {
  TestType topic;
  auto jobs = topic.subscribe(
      "#", queue_inbox{.queue = {.capacity = 2}, .overflow = overflow_policy::drop_oldest});
  check_result(topic.publish(1), {.matched = 1, .delivered = 1});
  check_result(topic.publish(2), {.matched = 1, .delivered = 1});
  check_result(topic.publish(3), {.matched = 1, .delivered = 1, .dropped_oldest = 1});

  auto& queue = jobs.inbox();
  auto letter = queue.dead_letters().try_receive();
  REQUIRE(letter.has_value());
  CHECK(letter->body == 1);
  CHECK(letter->reason == dead_letter_reason::evicted);

  // With every message leased, nothing is visible to evict, so the new message is dropped.
  auto first = queue.try_receive();
  auto second = queue.try_receive();
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(first->body() == 2);
  CHECK(second->body() == 3);
  check_result(topic.publish(4), {.matched = 1, .dropped = 1});
  check_stats(
      jobs.stats(),
      {.matched = 4, .delivered = 3, .dropped_oldest = 1, .dropped_newest = 1, .queued = 2});
  CHECK(queue.stats().evicted == 1);
  CHECK(queue.ack(first->receipt()));
  CHECK(queue.ack(second->receipt()));
}

TEMPLATE_TEST_CASE("topic: work-queue drop_newest and block timeout", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto newest = topic.subscribe(
      "#", queue_inbox{.queue = {.capacity = 1}, .overflow = overflow_policy::drop_newest});
  auto blocking = topic.subscribe("#", queue_inbox{.queue = {.capacity = 1}, .block_timeout = 1ms});
  check_result(topic.publish(1), {.matched = 2, .delivered = 2});
  check_result(topic.publish(2), {.matched = 2, .dropped = 2, .timed_out = 1});
  check_stats(newest.stats(), {.matched = 2, .delivered = 1, .dropped_newest = 1, .queued = 1});
  check_stats(blocking.stats(), {.matched = 2, .delivered = 1, .block_timeouts = 1, .queued = 1});
  CHECK(receive_all(newest) == std::vector<int>{1});
  CHECK(receive_all(blocking) == std::vector<int>{1});
}

TEST_CASE("topic: work-queue block waits for an ack", "[topic]") {
  int_topic topic;
  auto jobs = topic.subscribe("#", queue_inbox{.queue = {.capacity = 1}});
  std::vector<publish_result> results(3);
  std::thread publisher([&] {
    for (int value = 0; value < 3; ++value)
      results[static_cast<std::size_t>(value)] = topic.publish(value);
  });
  std::vector<int> received;
  while (received.size() < 3) {
    auto delivery = jobs.inbox().receive_for(1min);
    REQUIRE(delivery.has_value());
    received.push_back(delivery->body());
    REQUIRE(jobs.inbox().ack(delivery->receipt()));
  }
  publisher.join();
  CHECK(received == std::vector<int>{0, 1, 2});
  for (const publish_result& result : results) check_result(result, {.matched = 1, .delivered = 1});
}

// ---- unsubscribe ---------------------------------------------------------------------------

TEMPLATE_TEST_CASE("topic: destroying a subscription unsubscribes it", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto lasting = topic.subscribe("#");
  {
    auto scoped = topic.subscribe("#");
    CHECK(topic.subscription_count() == 2);
    check_result(topic.publish(1), {.matched = 2, .delivered = 2});
  }
  CHECK(topic.subscription_count() == 1);
  check_result(topic.publish(2), {.matched = 1, .delivered = 1});
  CHECK(drain(lasting) == std::vector<int>{1, 2});
}

TEMPLATE_TEST_CASE("topic: unsubscribe keeps the inbox to drain", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto leaving = topic.subscribe("#");
  REQUIRE(topic.publish(1).delivered == 1);
  CHECK(leaving.is_subscribed());
  leaving.unsubscribe();
  leaving.unsubscribe();  // idempotent
  CHECK_FALSE(leaving.is_subscribed());
  CHECK(topic.subscription_count() == 0);
  check_result(topic.publish(2), {});

  CHECK(leaving.inbox().is_closed());
  CHECK(leaving.inbox().pop() == std::optional<int>(1));
  CHECK(leaving.inbox().pop() == std::nullopt);
  check_stats(leaving.stats(), {.matched = 1, .delivered = 1});
}

TEST_CASE("topic: freed slots are reused up to max_subscriptions", "[topic]") {
  int_topic topic({.max_subscriptions = 2});
  CHECK(topic.max_subscriptions() == 2);
  auto first = topic.subscribe("#");
  std::optional<int_topic::ring_subscription> second = topic.subscribe("#");
  const std::string message = error_of<std::length_error>([&] { (void)topic.subscribe("#"); });
  CHECK_THAT(message, Catch::Contains("all 2 subscription slots are in use"));
  CHECK_THAT(message, Catch::Contains("max_subscriptions"));

  second.reset();
  auto third = topic.subscribe("#");
  check_result(topic.publish(5), {.matched = 2, .delivered = 2});
  CHECK(drain(first) == std::vector<int>{5});
  CHECK(drain(third) == std::vector<int>{5});
}

TEMPLATE_TEST_CASE("topic: unsubscribe releases a publisher blocked on the inbox", "[topic]",
                   multi_topic, single_topic) {
  TestType topic;
  std::atomic<int> entered{0};
  auto full = topic.subscribe(entry_signal{&entered}, ring_inbox{.capacity = 1});
  REQUIRE(topic.publish(1).delivered == 1);
  entered.store(0, std::memory_order_relaxed);

  publish_result blocked;
  std::thread publisher([&] { blocked = topic.publish(2); });
  wait_for_entries(entered, 1);  // the publisher is inside the slot, so unsubscribe waits for it
  full.unsubscribe();
  publisher.join();

  check_result(blocked, {.matched = 1, .dropped = 1});
  check_stats(full.stats(), {.matched = 2, .delivered = 1, .dropped_closed = 1, .queued = 1});
  CHECK(drain(full) == std::vector<int>{1});
}

TEST_CASE("topic: move assignment unsubscribes the old subscription", "[topic]") {
  int_topic topic;
  auto target = topic.subscribe("a");
  auto source = topic.subscribe("b");
  target = std::move(source);
  CHECK(topic.subscription_count() == 1);
  check_result(topic.publish("a", 1), {});
  check_result(topic.publish("b", 2), {.matched = 1, .delivered = 1});
  CHECK(drain(target) == std::vector<int>{2});
  CHECK(target.pattern() == "b");
  CHECK_FALSE(source.is_subscribed());
  CHECK_THAT(error_of<std::logic_error>([&] { (void)source.inbox(); }),
             Catch::Contains("moved from"));
}

TEST_CASE("topic: subscription may outlive its topic", "[topic]") {
  auto topic = std::make_unique<int_topic>();
  auto survivor = topic->subscribe("#");
  REQUIRE(topic->publish(4).delivered == 1);
  topic.reset();
  CHECK(survivor.inbox().is_closed());
  CHECK(drain(survivor) == std::vector<int>{4});
  survivor.unsubscribe();
  CHECK_FALSE(survivor.is_subscribed());
}

TEMPLATE_TEST_CASE("topic: publish after subscribe returns reaches it", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  std::optional<typename TestType::ring_subscription> subscription;
  std::atomic<bool> subscribed{false};
  std::thread subscriber([&] {
    subscription.emplace(topic.subscribe("news.*"));
    subscribed.store(true, std::memory_order_release);
  });
  while (!subscribed.load(std::memory_order_acquire)) std::this_thread::yield();
  check_result(topic.publish("news.sport", 9), {.matched = 1, .delivered = 1});
  subscriber.join();
  CHECK(drain(*subscription) == std::vector<int>{9});
}

// ---- close ---------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("topic: close fails publishes and drains subscriptions", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  auto ring_sub = topic.subscribe("#");
  auto queue_sub = topic.subscribe("#", queue_inbox{});
  REQUIRE(topic.publish(1).delivered == 2);
  topic.close();
  topic.close();  // idempotent
  CHECK(topic.is_closed());

  const publish_result after = topic.publish(2);
  CHECK(after.status == publish_status::closed);
  CHECK_FALSE(after.ok());
  CHECK(after.matched == 0);

  CHECK(ring_sub.inbox().pop() == std::optional<int>(1));
  CHECK(ring_sub.inbox().pop() == std::nullopt);
  CHECK(receive_all(queue_sub) == std::vector<int>{1});
  CHECK(queue_sub.inbox().is_drained());
  CHECK(ring_sub.is_subscribed());  // still in the table until destroyed
}

TEST_CASE("topic: subscribe after close gives a closed inbox", "[topic]") {
  int_topic topic;
  topic.close();
  auto late = topic.subscribe("#");
  CHECK_FALSE(late.is_subscribed());
  CHECK(late.inbox().is_closed());
  CHECK(late.inbox().pop() == std::nullopt);
  CHECK(topic.subscription_count() == 0);
  auto late_queue = topic.subscribe("#", queue_inbox{});
  CHECK(late_queue.inbox().is_drained());
}

TEMPLATE_TEST_CASE("topic: close releases a publisher blocked on the inbox", "[topic]", multi_topic,
                   single_topic) {
  TestType topic;
  std::atomic<int> entered{0};
  auto full = topic.subscribe(entry_signal{&entered}, queue_inbox{.queue = {.capacity = 1}});
  REQUIRE(topic.publish(1).delivered == 1);
  entered.store(0, std::memory_order_relaxed);

  publish_result blocked;
  std::thread publisher([&] { blocked = topic.publish(2); });
  wait_for_entries(entered, 1);
  topic.close();
  publisher.join();

  check_result(blocked, {.matched = 1, .dropped = 1});
  check_stats(full.stats(), {.matched = 2, .delivered = 1, .dropped_closed = 1, .queued = 1});
  CHECK(receive_all(full) == std::vector<int>{1});
}

TEST_CASE("topic: to_string names every status and policy", "[topic]") {
  CHECK(ringmq::to_string(publish_status::ok) == "ok");
  CHECK(ringmq::to_string(publish_status::closed) == "closed");
  CHECK(ringmq::to_string(overflow_policy::block) == "block");
  CHECK(ringmq::to_string(overflow_policy::drop_oldest) == "drop_oldest");
  CHECK(ringmq::to_string(overflow_policy::drop_newest) == "drop_newest");
}

// ---- configuration errors ------------------------------------------------------------------

TEST_CASE("topic: invalid configuration is rejected", "[topic]") {
  CHECK_THAT(error_of<std::invalid_argument>([] { int_topic topic({.max_subscriptions = 0}); }),
             Catch::Contains("max_subscriptions 0 is invalid"));
  CHECK_THAT(error_of<std::length_error>(
                 [] { int_topic topic({.max_subscriptions = int_topic::max_table_size + 1}); }),
             Catch::Contains("max_subscriptions 65537 is too large"));

  int_topic topic;
  CHECK_THAT(error_of<std::invalid_argument>(
                 [&] { (void)topic.subscribe("#", ring_inbox{.capacity = 0}); }),
             Catch::Contains("capacity 0 is invalid"));
  CHECK_THAT(error_of<std::invalid_argument>(
                 [&] { (void)topic.subscribe("#", ring_inbox{.block_timeout = 0ns}); }),
             Catch::Contains("block_timeout 0 ns is invalid"));
  CHECK_THAT(error_of<std::invalid_argument>(
                 [&] { (void)topic.subscribe("#", queue_inbox{.block_timeout = -1ms}); }),
             Catch::Contains("block_timeout -1000000 ns is invalid"));
  CHECK_THAT(error_of<std::invalid_argument>(
                 [&] { (void)topic.subscribe("#", ring_inbox{.overflow = overflow_policy{7}}); }),
             Catch::Contains("overflow 7 is not an overflow_policy"));
  CHECK_THAT(error_of<std::invalid_argument>(
                 [&] { (void)topic.subscribe("#", queue_inbox{.queue = {.capacity = 0}}); }),
             Catch::Contains("capacity 0 is invalid"));
  CHECK_THAT(error_of<std::invalid_argument>([&] { (void)topic.subscribe("orders.eu*"); }),
             Catch::Contains("\"orders.eu*\" is invalid: word \"eu*\""));
  CHECK(topic.subscription_count() == 0);

  // A drop policy ignores block_timeout.
  auto dropping = topic.subscribe(
      "#", ring_inbox{.overflow = overflow_policy::drop_newest, .block_timeout = 0ns});
  CHECK(dropping.overflow() == overflow_policy::drop_newest);
}

// ---- what happens to the copies ------------------------------------------------------------

TEMPLATE_TEST_CASE("topic: counted messages are destroyed once", "[topic]", ringmq::topic<counted>,
                   (ringmq::topic<counted, ringmq::producers<ringmq::single>>)) {
  counted::reset();
  {
    TestType topic;
    auto lasting = topic.subscribe("#", ring_inbox{.capacity = 8});
    auto oldest =
        topic.subscribe("#", ring_inbox{.capacity = 2, .overflow = overflow_policy::drop_oldest});
    auto newest =
        topic.subscribe("#", ring_inbox{.capacity = 2, .overflow = overflow_policy::drop_newest});
    auto queue_oldest =
        topic.subscribe("#", queue_inbox{.queue = {.capacity = 2, .dead_letter_capacity = 1},
                                         .overflow = overflow_policy::drop_oldest});
    auto filtered = topic.subscribe("odd", ring_inbox{.capacity = 8});
    for (std::uint64_t value = 0; value < 6; ++value) {
      const counted message(value);
      const publish_result result = topic.publish(value % 2 == 1 ? "odd" : "even", message);
      CHECK(result.delivered + result.dropped == result.matched);
    }
    std::optional<counted> first = lasting.inbox().try_pop();
    REQUIRE(first.has_value());
    CHECK(first->value() == 0);
    CHECK(filtered.inbox().size() == 3);
    CHECK(queue_oldest.inbox().stats().dropped ==
          3);  // evicted, then dropped by the full dead-letter queue
    // The subscriptions, then the topic, are destroyed with messages still queued.
  }
  CHECK(counted::live() == 0);
  CHECK(counted::constructions() == counted::destructions());
  CHECK(counted::errors() == 0);
}

TEMPLATE_TEST_CASE("topic: a throwing copy leaves the topic usable", "[topic]",
                   ringmq::topic<counted>,
                   (ringmq::topic<counted, ringmq::producers<ringmq::single>>)) {
  counted::reset();
  {
    TestType topic;
    auto ring_sub = topic.subscribe("#");
    auto queue_sub = topic.subscribe("#", queue_inbox{});
    counted poison(1);
    poison.throw_on_copy = true;
    CHECK_THROWS_AS(topic.publish(poison), counted_error);
    CHECK(ring_sub.inbox().empty());
    CHECK(queue_sub.inbox().size() == 0);

    const counted fine(2);
    check_result(topic.publish(fine), {.matched = 2, .delivered = 2});
    ring_sub.unsubscribe();  // returns: the failed publish left the slot
    queue_sub.unsubscribe();
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
}

TEST_CASE("topic: a throwing predicate leaves the topic usable", "[topic]") {
  int_topic topic;
  auto picky = topic.subscribe([](std::string_view key, const int&) -> bool {
    if (key == "bad") throw std::runtime_error("predicate failed on purpose");
    return true;
  });
  CHECK_THROWS_AS(topic.publish("bad", 1), std::runtime_error);
  check_result(topic.publish("good", 2), {.matched = 1, .delivered = 1});
  CHECK(drain(picky) == std::vector<int>{2});
  picky.unsubscribe();
  CHECK_FALSE(picky.is_subscribed());
}

TEST_CASE("topic: options pick the ring inbox type", "[topic]") {
  using spinning =
      ringmq::topic<int, ringmq::slot_layout<ringmq::packed>, ringmq::wait<ringmq::spin>>;
  static_assert(
      std::is_same_v<
          spinning::ring_type,
          ringmq::ring<int, ringmq::producers<ringmq::multi>, ringmq::consumers<ringmq::multi>,
                       ringmq::wait<ringmq::spin>, ringmq::slot_layout<ringmq::packed>>>);
  static_assert(
      std::is_same_v<
          single_topic::ring_type,
          ringmq::ring<int, ringmq::producers<ringmq::single>, ringmq::consumers<ringmq::multi>,
                       ringmq::wait<ringmq::park>, ringmq::slot_layout<ringmq::padded>>>);
  spinning topic;
  auto inbox = topic.subscribe("#", ring_inbox{.capacity = 1, .block_timeout = 1ms});
  check_result(topic.publish(1), {.matched = 1, .delivered = 1});
  check_result(topic.publish(2), {.matched = 1, .dropped = 1, .timed_out = 1});
  CHECK(drain(inbox) == std::vector<int>{1});
}
