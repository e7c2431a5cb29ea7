// Stress tests of ringmq::topic, with several publishers and with a single one: publishers run
// while subscriptions are created and destroyed, and competing consumers read long-lived
// subscriptions of every inbox kind and overflow policy. A churning thread makes and destroys
// subscriptions that it reads itself, and a flickering thread destroys each one it makes at once.
//
// After the run the main thread checks every record. A long-lived subscription that blocks
// receives each matching message exactly once. One that drops receives each message at most
// once, in order per publisher, and its counters account for every other one. A churning
// subscription receives each message at most once. It receives exactly once each message whose
// publish started after subscribe returned and finished before unsubscribe began. A publisher
// learns of a new subscription through an acquire load, and the churning thread learns of
// finished publishes the same way, so "after" and "before" are happens-before here.
//
// Nothing here measures speed. A watchdog closes the topic after a generous limit, which
// releases every waiting thread, and the test reports the hang. Counts shrink under
// ThreadSanitizer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/topic.hpp>

#include "support/deliveries.hpp"
#include "support/preempt_build.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringmq::overflow_policy;
using ringmq::queue_inbox;
using ringmq::ring_inbox;
using ringmq_test::check_deliveries;
using ringmq_test::make_item;
using ringmq_test::producer_of;
using ringmq_test::sequence_of;

namespace {

// Two publishers with producers<multi>, one with producers<single>.
constexpr std::size_t max_publishers = 2;
constexpr std::uint64_t items_per_publisher =
    ringmq_test::preempt_scaled(ringmq_test::thread_sanitizer ? 9000 : 30000);
// Messages a churning subscription takes before it unsubscribes.
constexpr std::size_t churn_batch = 40;
// Each publisher waits for subscription number k before its k-th segment of items, so that at
// least this many subscriptions come and go while the publishers run.
constexpr std::uint64_t churn_rounds = 30;
constexpr std::uint64_t segment = items_per_publisher / churn_rounds;
static_assert(segment >= churn_batch, "a churning subscription must be able to fill its batch");

// Even sequence numbers go to "orders.eu", odd ones to "orders.us".
std::string_view key_of(std::uint64_t sequence) {
  return sequence % 2 == 0 ? "orders.eu" : "orders.us";
}

// Closes the topic every 10 ms once `limit` has passed without stop(), so that threads waiting
// because of a lost wake-up return and the test reports the hang instead of hanging.
template <class Topic>
class topic_watchdog {
 public:
  topic_watchdog(Topic& topic, std::chrono::seconds limit)
      : thread_([this, &topic, limit] { run(topic, limit); }) {}
  topic_watchdog(const topic_watchdog&) = delete;
  topic_watchdog& operator=(const topic_watchdog&) = delete;
  ~topic_watchdog() { stop(); }

  void stop() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    stop_requested_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  bool fired() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return fired_;
  }

 private:
  void run(Topic& topic, std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stop_requested_.wait_for(lock, limit, [this] { return stopped_; })) return;
    fired_ = true;
    while (!stopped_) {
      topic.close();
      stop_requested_.wait_for(lock, 10ms, [this] { return stopped_; });
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopped_ = false;
  bool fired_ = false;
  std::thread thread_;
};

// What the publishers share with the churning thread.
struct publisher_progress {
  // The number of the latest subscription the churning thread has finished making.
  std::atomic<std::uint64_t> generation{0};
  // Per publisher: how many of its publishes have returned.
  std::atomic<std::uint64_t> completed[max_publishers] = {};
  std::atomic<bool> done{false};
};

// A publisher's log of when it first saw each generation: (generation, first sequence number
// published after seeing it).
using generation_log = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

// The first sequence of `log` published after the publisher saw generation g or a later one.
std::uint64_t first_sequence_after(const generation_log& log, std::uint64_t g) {
  for (const auto& [seen, sequence] : log) {
    if (seen >= g) return sequence;
  }
  return items_per_publisher;
}

// One subscription made and destroyed by the churning thread, and what it received.
struct churn_record {
  std::uint64_t generation = 0;
  std::uint64_t completed_before_unsubscribe[max_publishers] = {};
  std::vector<std::uint64_t> received;
  ringmq::subscription_stats stats;
  std::string kind;
};

// Checks one churning subscription and returns the first problem, or "".
std::string check_churn(const churn_record& record, const generation_log (&logs)[max_publishers],
                        std::size_t publishers) {
  const std::string name = record.kind + " subscription " + std::to_string(record.generation);
  std::vector<std::vector<int>> seen(publishers, std::vector<int>(items_per_publisher, 0));
  for (const std::uint64_t item : record.received) {
    const std::uint64_t p = producer_of(item);
    const std::uint64_t s = sequence_of(item);
    if (p >= publishers || s >= items_per_publisher) {
      return name + " received an item that was never published";
    }
    if (++seen[p][s] > 1) return name + " received item " + std::to_string(item) + " twice";
  }
  for (std::size_t p = 0; p < publishers; ++p) {
    const std::uint64_t first = first_sequence_after(logs[p], record.generation);
    const std::uint64_t end = record.completed_before_unsubscribe[p];
    for (std::uint64_t s = first; s < end; ++s) {
      if (seen[p][s] == 0) {
        return name + " missed item " + std::to_string(p) + ":" + std::to_string(s) +
               ", published after subscribe returned (from " + std::to_string(first) +
               ") and before unsubscribe began (up to " + std::to_string(end) + ")";
      }
    }
  }
  const ringmq::subscription_stats& stats = record.stats;
  if (stats.delivered != record.received.size()) {
    return name + " delivered " + std::to_string(stats.delivered) + " but its consumer took " +
           std::to_string(record.received.size());
  }
  if (stats.matched != stats.delivered + stats.dropped_closed || stats.dropped_newest != 0 ||
      stats.block_timeouts != 0 || stats.dropped_oldest != 0) {
    return name + " counted drops other than those of its closing inbox";
  }
  return "";
}

// Takes messages from a churning subscription, ring or work queue, without waiting.
template <class Subscription>
bool take_one(Subscription& subscription, std::vector<std::uint64_t>& out) {
  if constexpr (requires { subscription.inbox().try_pop(); }) {
    std::optional<std::uint64_t> item = subscription.inbox().try_pop();
    if (!item) return false;
    out.push_back(*item);
  } else {
    auto delivery = subscription.inbox().try_receive();
    if (!delivery) return false;
    out.push_back(delivery->body());
    (void)subscription.inbox().ack(delivery->receipt());
  }
  return true;
}

// Runs one churning subscription: publishes the generation, takes churn_batch messages (or
// stops when the publishers are done), notes the finished publishes, unsubscribes and drains.
template <class Subscription>
churn_record churn_once(Subscription subscription, std::uint64_t generation, std::string kind,
                        publisher_progress& progress, std::size_t publishers) {
  churn_record record;
  record.generation = generation;
  record.kind = std::move(kind);
  // Release: pairs with each publisher's acquire load before it publishes.
  progress.generation.store(generation, std::memory_order_release);

  while (record.received.size() < churn_batch && !progress.done.load(std::memory_order_acquire)) {
    if (!take_one(subscription, record.received)) std::this_thread::yield();
  }
  for (std::size_t p = 0; p < publishers; ++p) {
    // Acquire: pairs with the publisher's release after a publish returned.
    record.completed_before_unsubscribe[p] = progress.completed[p].load(std::memory_order_acquire);
  }
  subscription.unsubscribe();
  while (take_one(subscription, record.received)) {
  }
  record.stats = subscription.stats();
  return record;
}

// Checks a consumer log of a subscription that may drop: items valid, none twice, and each
// publisher's items in increasing order. Returns the first problem, or "".
std::string check_at_most_once(const std::vector<std::uint64_t>& log, const std::string& name,
                               std::size_t publishers) {
  std::vector<std::int64_t> last(publishers, -1);
  for (const std::uint64_t item : log) {
    const std::uint64_t p = producer_of(item);
    const auto s = static_cast<std::int64_t>(sequence_of(item));
    if (p >= publishers || s >= static_cast<std::int64_t>(items_per_publisher)) {
      return name + " received an item that was never published";
    }
    if (s <= last[p]) return name + " received item " + std::to_string(item) + " out of order";
    last[p] = s;
  }
  return "";
}

// Runs the whole scenario on a topic of type Topic with `publishers` publishing threads.
template <class Topic>
void run_churn_stress(std::size_t publishers) {
  Topic topic({.max_subscriptions = 16});
  publisher_progress progress;

  // Long-lived subscriptions, each read by its own consumers until the topic is closed.
  auto every = topic.subscribe("#", ring_inbox{.capacity = 64});
  auto europe = topic.subscribe("orders.eu", queue_inbox{.queue = {.capacity = 64}});
  auto oldest =
      topic.subscribe("#", ring_inbox{.capacity = 16, .overflow = overflow_policy::drop_oldest});
  auto newest =
      topic.subscribe("*.us", ring_inbox{.capacity = 16, .overflow = overflow_policy::drop_newest});
  auto evicting = topic.subscribe(
      "orders.#",
      queue_inbox{.queue = {.capacity = 16,
                            .dead_letter_capacity = 2 * items_per_publisher * max_publishers},
                  .overflow = overflow_policy::drop_oldest});

  std::vector<std::vector<std::uint64_t>> every_logs(2);
  std::vector<std::vector<std::uint64_t>> europe_logs(2);
  std::vector<std::uint64_t> oldest_log;
  std::vector<std::uint64_t> newest_log;
  std::vector<std::uint64_t> evicting_log;
  std::atomic<std::uint64_t> failed_acks{0};
  std::vector<std::thread> consumers;
  for (std::size_t c = 0; c < 2; ++c) {
    // Competing consumers of one ring subscription, and of one work-queue subscription.
    consumers.emplace_back([&, c] {
      while (std::optional<std::uint64_t> item = every.inbox().pop()) {
        every_logs[c].push_back(*item);
      }
    });
    consumers.emplace_back([&, c] {
      auto& queue = europe.inbox();
      while (!queue.is_drained()) {
        if (auto delivery = queue.receive_for(10ms)) {
          europe_logs[c].push_back(delivery->body());
          if (!queue.ack(delivery->receipt())) failed_acks.fetch_add(1);
        }
      }
    });
  }
  consumers.emplace_back([&] {
    while (std::optional<std::uint64_t> item = oldest.inbox().pop()) oldest_log.push_back(*item);
  });
  consumers.emplace_back([&] {
    while (std::optional<std::uint64_t> item = newest.inbox().pop()) newest_log.push_back(*item);
  });
  consumers.emplace_back([&] {
    auto& queue = evicting.inbox();
    while (!queue.is_drained()) {
      if (auto delivery = queue.receive_for(10ms)) {
        evicting_log.push_back(delivery->body());
        if (!queue.ack(delivery->receipt())) failed_acks.fetch_add(1);
      }
    }
  });

  topic_watchdog<Topic> watchdog(topic, ringmq_test::thread_sanitizer ? 240s : 60s);

  // Publishers log when they first see each churn generation.
  generation_log generation_logs[max_publishers];
  std::uint64_t closed_publishes[max_publishers] = {};
  std::vector<std::thread> publisher_threads;
  for (std::size_t p = 0; p < publishers; ++p) {
    publisher_threads.emplace_back([&, p] {
      std::uint64_t last_generation = 0;
      for (std::uint64_t s = 0; s < items_per_publisher; ++s) {
        // Acquire: pairs with the churning thread's release after subscribe returned.
        std::uint64_t generation = progress.generation.load(std::memory_order_acquire);
        while (s % segment == 0 && generation < s / segment + 1) {
          std::this_thread::yield();  // wait for the subscription of this segment
          generation = progress.generation.load(std::memory_order_acquire);
        }
        if (generation != last_generation) {
          generation_logs[p].emplace_back(generation, s);
          last_generation = generation;
        }
        const ringmq::publish_result result = topic.publish(key_of(s), make_item(p, s));
        if (!result) ++closed_publishes[p];
        // Release: pairs with the churning thread's acquire before it unsubscribes.
        progress.completed[p].store(s + 1, std::memory_order_release);
      }
    });
  }

  // The churning thread: ring, predicate and work-queue subscriptions, one after another.
  std::vector<churn_record> churned;
  std::thread churner([&] {
    for (std::uint64_t generation = 1; !progress.done.load(std::memory_order_acquire);
         ++generation) {
      switch (generation % 3) {
        case 0:
          churned.push_back(churn_once(topic.subscribe("#", ring_inbox{.capacity = 32}), generation,
                                       "ring", progress, publishers));
          break;
        case 1:
          churned.push_back(churn_once(
              topic.subscribe([](std::string_view, const std::uint64_t&) { return true; },
                              ring_inbox{.capacity = 32}),
              generation, "predicate", progress, publishers));
          break;
        default:
          churned.push_back(
              churn_once(topic.subscribe("orders.*", queue_inbox{.queue = {.capacity = 32}}),
                         generation, "work queue", progress, publishers));
          break;
      }
    }
  });

  // The flickering thread destroys each subscription as soon as it is made, so that publishers
  // often hold one that is being destroyed. Its predicate reads a heap object that dies with the
  // subscription, which a sanitizer reports if a publisher calls it too late.
  std::thread flickerer([&] {
    while (!progress.done.load(std::memory_order_acquire)) {
      auto alive = std::make_unique<std::uint64_t>(1);
      auto brief =
          topic.subscribe([owned = std::move(alive)](std::string_view,
                                                     const std::uint64_t&) { return *owned == 1; },
                          ring_inbox{.capacity = 4, .overflow = overflow_policy::drop_newest});
    }
  });

  for (std::thread& publisher : publisher_threads) publisher.join();
  progress.done.store(true, std::memory_order_release);
  churner.join();
  flickerer.join();
  topic.close();  // the consumers drain their inboxes and stop
  for (std::thread& consumer : consumers) consumer.join();
  watchdog.stop();
  REQUIRE_FALSE(watchdog.fired());

  const std::uint64_t total = items_per_publisher * publishers;
  for (std::size_t p = 0; p < publishers; ++p) CHECK(closed_publishes[p] == 0);
  CHECK(failed_acks.load() == 0);

  // Blocking subscriptions: every matching item exactly once, over the competing consumers.
  const std::vector<std::uint64_t> all(publishers, items_per_publisher);
  CHECK(check_deliveries(every_logs, all) == "");
  CHECK(every.stats().delivered == total);
  CHECK(every.stats().matched == total);

  std::vector<std::vector<std::uint64_t>> europe_halves = europe_logs;
  std::size_t europe_count = 0;
  for (auto& log : europe_halves) {
    for (std::uint64_t& item : log) {
      CHECK(sequence_of(item) % 2 == 0);
      item = make_item(producer_of(item), sequence_of(item) / 2);  // renumber the even items
    }
    europe_count += log.size();
  }
  CHECK(check_deliveries(europe_halves,
                         std::vector<std::uint64_t>(publishers, items_per_publisher / 2)) == "");
  CHECK(europe.stats().delivered == total / 2);
  CHECK(europe_count == total / 2);

  // drop_oldest ring: every message delivered, the ones not received were evicted.
  const ringmq::subscription_stats oldest_stats = oldest.stats();
  CHECK(check_at_most_once(oldest_log, "drop_oldest ring", publishers) == "");
  CHECK(oldest_stats.matched == total);
  CHECK(oldest_stats.delivered == total);
  CHECK(oldest_log.size() + oldest_stats.dropped_oldest == total);

  // drop_newest ring: only "*.us" items. The ones not received were dropped as they came.
  const ringmq::subscription_stats newest_stats = newest.stats();
  CHECK(check_at_most_once(newest_log, "drop_newest ring", publishers) == "");
  for (const std::uint64_t item : newest_log) CHECK(sequence_of(item) % 2 == 1);
  CHECK(newest_stats.matched == total / 2);
  CHECK(newest_log.size() == newest_stats.delivered);
  CHECK(newest_stats.delivered + newest_stats.dropped_newest == total / 2);

  // drop_oldest work queue: each message acknowledged, dead-lettered as evicted, or dropped.
  const ringmq::subscription_stats evicting_stats = evicting.stats();
  std::vector<std::uint64_t> evicted_items;
  evicting.inbox().dead_letters().for_each([&](const auto& letter) {
    CHECK(letter.reason == ringmq::dead_letter_reason::evicted);
    evicted_items.push_back(letter.body);
  });
  CHECK(evicting.inbox().dead_letters().dropped() == 0);
  CHECK(check_at_most_once(evicting_log, "drop_oldest work queue", publishers) == "");
  std::vector<std::uint64_t> accounted = evicting_log;
  accounted.insert(accounted.end(), evicted_items.begin(), evicted_items.end());
  std::sort(accounted.begin(), accounted.end());
  CHECK(std::adjacent_find(accounted.begin(), accounted.end()) == accounted.end());
  CHECK(evicting_stats.matched == total);
  CHECK(evicted_items.size() == evicting_stats.dropped_oldest);
  CHECK(accounted.size() + evicting_stats.dropped_newest == total);

  // Churning subscriptions.
  CHECK(churned.size() >= churn_rounds);

  for (const churn_record& record : churned) {
    INFO(record.kind << " subscription " << record.generation);
    CHECK(check_churn(record, generation_logs, publishers) == "");
  }
  CHECK(topic.subscription_count() == 5);
}

}  // namespace

TEST_CASE("topic stress: subscriptions churn while publishers run", "[topic][stress]") {
  run_churn_stress<ringmq::topic<std::uint64_t>>(max_publishers);
}

TEST_CASE("topic stress: subscriptions churn around a single publisher", "[topic][stress]") {
  run_churn_stress<ringmq::topic<std::uint64_t, ringmq::producers<ringmq::single>>>(1);
}
