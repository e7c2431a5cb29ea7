// Fault injection into ringmq::topic. When a copy throws while a publish walks the
// subscriptions, the subscriptions visited before keep their copies and the rest get none. No
// delivery is counted for the failed copy, nothing leaks, and the topic keeps working.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <ringmq/topic.hpp>

#include "support/counted.hpp"
#include "support/faults.hpp"

using ringmq_test::counted;
using ringmq_test::fault_countdown;
using ringmq_test::faulty;
using ringmq_test::sweep_faults;
using ringmq_test::throws_fault;

namespace {

using topic_type = ringmq::topic<faulty>;
using queue_type = ringmq::work_queue<faulty>;

// Pops what a ring inbox holds.
template <class Ring>
std::vector<std::uint64_t> drain(Ring& inbox) {
  std::vector<std::uint64_t> values;
  while (std::optional<faulty> element = inbox.try_pop()) values.push_back(element->value());
  return values;
}

std::vector<std::uint64_t> drain(queue_type& inbox) {
  std::vector<std::uint64_t> values;
  while (std::optional<queue_type::delivery_type> delivery = inbox.try_receive()) {
    values.push_back(delivery->body().value());
    CHECK(inbox.ack(delivery->receipt()));
  }
  return values;
}

}  // namespace

TEST_CASE("topic fault: throwing copy reaches only earlier subscriptions", "[topic][fault]") {
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    topic_type topic;
    // Subscriptions are visited in the order they were made, in a fresh topic.
    auto first = topic.subscribe("orders.#");
    auto second = topic.subscribe("orders.*", ringmq::queue_inbox{});
    auto third = topic.subscribe("orders.new", {.capacity = 4});
    auto unmatched = topic.subscribe("payments.#");
    // expected[i]: the values subscription i must hold.
    std::vector<std::uint64_t> expected[3];

    for (std::uint64_t value = 1; value <= 3; ++value) {
      (void)throws_fault([&] {
        const faulty message(value);
        const long before = fault_countdown::hits();
        try {
          const ringmq::publish_result result = topic.publish("orders.new", message);
          CHECK(result.matched == 3);
          CHECK(result.delivered == 3);
          for (auto& values : expected) values.push_back(value);
        } catch (const ringmq_test::injected_fault&) {
          // Each delivery makes one copy, so the copy that threw names the subscription.
          const long reached = n - before - 1;
          REQUIRE(reached >= 0);
          REQUIRE(reached < 3);
          for (long i = 0; i < reached; ++i) expected[i].push_back(value);
          throw;
        }
      });
    }

    fault_countdown::disarm();
    CHECK(first.stats().delivered == expected[0].size());
    CHECK(second.stats().delivered == expected[1].size());
    CHECK(third.stats().delivered == expected[2].size());
    CHECK(first.stats().matched == expected[0].size());  // no count records the failed copy
    CHECK(drain(first.inbox()) == expected[0]);
    CHECK(drain(second.inbox()) == expected[1]);
    CHECK(drain(third.inbox()) == expected[2]);
    CHECK(unmatched.stats().matched == 0);

    // Still usable: the next publish reaches every matching subscription.
    const ringmq::publish_result result = topic.publish("orders.new", faulty(9));
    CHECK(result.delivered == 3);
    CHECK(drain(first.inbox()) == std::vector<std::uint64_t>{9});
    CHECK(drain(second.inbox()) == std::vector<std::uint64_t>{9});
    CHECK(third.inbox().size() == 1);  // destroyed with its subscription
  });
  // Three messages built by the test and three copies per publish.
  CHECK(runs >= 13);
}

TEST_CASE("topic fault: eviction before a throwing copy stays counted", "[topic][fault]") {
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    topic_type topic;
    auto ring_sub = topic.subscribe(
        "#", ringmq::ring_inbox{.capacity = 1, .overflow = ringmq::overflow_policy::drop_oldest});
    auto queue_sub =
        topic.subscribe("#", ringmq::queue_inbox{.queue = {.capacity = 1},
                                                 .overflow = ringmq::overflow_policy::drop_oldest});
    std::vector<std::uint64_t> published;  // publishes that returned
    for (std::uint64_t value = 1; value <= 3; ++value) {
      if (!throws_fault([&] { (void)topic.publish(faulty(value)); })) published.push_back(value);
    }
    fault_countdown::disarm();

    // Every copy a ring inbox took is queued or counted as evicted.
    const ringmq::subscription_stats ring_stats = ring_sub.stats();
    CHECK(ring_stats.delivered == ring_stats.queued + ring_stats.dropped_oldest);
    // A work-queue inbox keeps what it evicts as dead letters.
    queue_type& inbox = queue_sub.inbox();
    const ringmq::subscription_stats queue_stats = queue_sub.stats();
    CHECK(queue_stats.dropped_oldest == inbox.dead_letters().size());
    CHECK(queue_stats.delivered == queue_stats.queued + inbox.dead_letters().size());
    CHECK(drain(ring_sub.inbox()).size() == ring_stats.queued);
    CHECK(drain(inbox).size() == queue_stats.queued);
    if (!published.empty()) CHECK(ring_stats.delivered >= published.size());
    CHECK(topic.publish(faulty(9)).delivered == 2);
  });
  CHECK(runs >= 8);
}

TEMPLATE_TEST_CASE("topic fault: throw in a blocked publish keeps unsubscribe working",
                   "[topic][fault]", ringmq::topic<faulty>,
                   (ringmq::topic<faulty, ringmq::producers<ringmq::single>>)) {
  using namespace std::chrono_literals;
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    TestType topic;
    // Full inboxes that block: the second publish copies, finds no room, and waits with a
    // second copy, which may throw while the publish is outside its read section.
    auto blocking = topic.subscribe("#", ringmq::ring_inbox{.capacity = 1, .block_timeout = 1ms});
    auto queued =
        topic.subscribe("#", ringmq::queue_inbox{.queue = {.capacity = 1}, .block_timeout = 1ms});
    (void)throws_fault([&] { (void)topic.publish(faulty(1)); });
    (void)throws_fault([&] { (void)topic.publish(faulty(2)); });
    fault_countdown::disarm();

    // An unsubscribe waits for every publish that can still reach the subscription, so a
    // publish that left a count behind would hang it here.
    blocking.unsubscribe();
    CHECK(blocking.inbox().size() <= 1);
    const ringmq::subscription_stats stats = queued.stats();
    CHECK(stats.delivered == stats.queued);
    auto later = topic.subscribe("#");
    CHECK(topic.publish(faulty(3)).delivered == 1);  // the queue inbox is full and times out
    CHECK(drain(later.inbox()) == std::vector<std::uint64_t>{3});
    queued.unsubscribe();
  });
  // Two messages built by the test, a copy into each inbox for the first publish, and for the
  // second the waiting push's copy (with producers<multi> also the copy of its first try).
  CHECK(runs >= 6);
}
