// Stress tests of ringmq::ring: several producers and consumers mixing every push and pop call
// through rings of one to three slots, so that the ring wraps constantly and both sides race
// on full and empty. Each test checks that every item arrives exactly once, that each
// consumer receives each producer's items in order, and that size() stays within capacity.
//
// Item counts shrink under ThreadSanitizer, which makes these tests many times slower.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ringmq/ring.hpp>

#include "support/close_watchdog.hpp"
#include "support/counted.hpp"
#include "support/deliveries.hpp"
#include "support/preempt_build.hpp"
#include "support/ring_configs.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringmq_test::make_item;

namespace {

// Producer and consumer thread counts of one run.
struct team {
  std::size_t producers;
  std::size_t consumers;
};

// Every team that a shape allows, from 4 producers and 4 consumers down to one of each.
template <class Config>
std::vector<team> teams_for() {
  std::vector<team> teams;
  if (Config::multi_producer && Config::multi_consumer) teams.push_back({4, 4});
  if (Config::multi_producer) teams.push_back({3, 1});
  if (Config::multi_consumer) teams.push_back({1, 3});
  teams.push_back({1, 1});
  return teams;
}

// Items per producer in one run, which has up to four producers and eleven threads in all.
// That is more threads than most test machines have cores, and a spinning waiter burns its
// whole time slice whenever the thread it waits for is descheduled. So wait<spin> runs carry
// fewer items. The ring's algorithm is the same under wait<yield>, whose runs carry the full
// count.
template <class Config>
constexpr std::uint32_t items_per_producer() {
  constexpr std::uint32_t count = Config::spins ? 40 : 2500;
  return ringmq_test::preempt_scaled(ringmq_test::thread_sanitizer ? count / 4 : count);
}

// What the threads of one run observed; the main thread checks it after joining them.
struct run_record {
  std::vector<std::vector<std::uint64_t>> received;  // per consumer, in arrival order
  std::vector<std::uint64_t> accepted;               // per producer, pushes that returned true
  std::atomic<std::uint64_t> accepted_total{0};      // all producers, for deciding when to close
  std::atomic<long> failed_blocking_pushes{0};       // push or emplace false on an open ring
  std::atomic<long> size_above_capacity{0};          // watcher samples of size() > capacity()
  bool hung = false;  // the watchdog had to close the ring to end the run
};

// Sends items 0 .. count - 1 of this producer with a random mix of every push call. With
// stop_at_close, a failed push ends the producer; otherwise it is counted as a failure.
template <class Ring>
void produce(Ring& ring, std::uint64_t producer, std::uint32_t count, std::uint64_t seed,
             bool stop_at_close, run_record& record) {
  std::mt19937_64 random(seed);
  std::uint64_t& sent = record.accepted[producer];
  std::array<std::uint64_t, 4> batch{};

  const auto give_up = [&] {
    if (!stop_at_close) record.failed_blocking_pushes.fetch_add(1);
    return true;
  };
  while (sent < count) {
    const std::uint64_t item = make_item(producer, sent);
    bool pushed = false;
    switch (random() % 7) {
      case 0:
        pushed = ring.try_push(std::uint64_t{item});
        break;
      case 1:
        pushed = ring.try_emplace(item);
        break;
      case 2:
        pushed = ring.push(std::uint64_t{item});
        if (!pushed && give_up()) return;
        break;
      case 3:
        pushed = ring.push(item);
        if (!pushed && give_up()) return;
        break;
      case 4:
        pushed = ring.emplace(item);
        if (!pushed && give_up()) return;
        break;
      case 5:
        pushed = ring.push_for(std::uint64_t{item}, 1ms);
        break;
      case 6: {
        const std::size_t want = std::min<std::size_t>(1 + random() % 4, count - sent);
        for (std::size_t i = 0; i < want; ++i) batch[i] = make_item(producer, sent + i);
        const std::size_t done = ring.try_push_bulk(batch.begin(), batch.begin() + want);
        sent += done;
        record.accepted_total.fetch_add(done, std::memory_order_relaxed);
        if (done == 0 && stop_at_close && ring.is_closed()) return;
        if (done == 0) std::this_thread::yield();
        continue;
      }
    }
    if (pushed) {
      ++sent;
      record.accepted_total.fetch_add(1, std::memory_order_relaxed);
    } else if (stop_at_close && ring.is_closed()) {
      return;
    } else {
      std::this_thread::yield();
    }
  }
}

// Receives items with a random mix of every pop call until pop() reports the ring closed and
// drained.
template <class Ring>
void consume(Ring& ring, std::uint64_t seed, std::vector<std::uint64_t>& received) {
  std::mt19937_64 random(seed);
  std::array<std::uint64_t, 4> batch{};

  for (;;) {
    std::optional<std::uint64_t> item;
    std::size_t count = 0;
    switch (random() % 6) {
      case 0:
        item = ring.try_pop();
        break;
      case 1: {
        std::uint64_t out = 0;
        if (ring.try_pop(out)) item = out;
        break;
      }
      case 2:
        item = ring.pop();
        if (!item) return;
        break;
      case 3:
        item = ring.pop_for(1ms);
        break;
      case 4:
      case 5:
        count = ring.try_pop_bulk(batch.data(), 1 + random() % batch.size());
        received.insert(received.end(), batch.begin(), batch.begin() + count);
        break;
    }
    if (item) {
      received.push_back(*item);
    } else if (count == 0 && ring.is_closed()) {
      // Closed: pop() takes what is left and returns nothing once the ring is drained.
      while (std::optional<std::uint64_t> rest = ring.pop()) received.push_back(*rest);
      return;
    } else if (count == 0) {
      std::this_thread::yield();
    }
  }
}

// Samples size() and empty() until stop is set, counting samples above capacity(). Sets
// started after the first sample.
template <class Ring>
void watch(const Ring& ring, const std::atomic<bool>& stop, std::atomic<bool>& started,
           run_record& record) {
  while (!stop.load()) {
    if (ring.size() > ring.capacity()) record.size_above_capacity.fetch_add(1);
    // empty() is called only so that it, too, runs against concurrent pushes and pops.
    static_cast<void>(ring.empty());
    started = true;
    std::this_thread::yield();
  }
}

// Runs one team against ring. By default the main thread closes the ring after every producer
// has finished. With close_after_items, it closes the ring as soon as that many pushes have
// succeeded, while the producers are still pushing.
template <class Ring>
void run_team(Ring& ring, team members, std::uint32_t count, std::uint64_t seed, run_record& record,
              std::size_t close_after_items = 0) {
  const bool close_early = close_after_items != 0;
  record.received.assign(members.consumers, {});
  record.accepted.assign(members.producers, 0);
  for (auto& items : record.received) items.reserve(members.producers * count);

  ringmq_test::close_watchdog watchdog(ring, 60s);
  // The watcher starts sampling before any producer starts, so it samples during every run.
  std::atomic<bool> stop_watching{false};
  std::atomic<bool> watcher_started{false};
  std::thread watcher([&] { watch(ring, stop_watching, watcher_started, record); });
  while (!watcher_started.load()) std::this_thread::yield();
  std::vector<std::thread> consumers;
  for (std::size_t c = 0; c < members.consumers; ++c) {
    consumers.emplace_back([&, c] { consume(ring, seed + 1000 + c, record.received[c]); });
  }
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < members.producers; ++p) {
    producers.emplace_back([&, p] { produce(ring, p, count, seed + p, close_early, record); });
  }

  if (close_early) {
    // Close under load, once enough items went in and while the producers still push.
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (record.accepted_total.load() < close_after_items &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ring.close();
    for (std::thread& producer : producers) producer.join();
  } else {
    for (std::thread& producer : producers) producer.join();
    ring.close();
  }
  for (std::thread& consumer : consumers) consumer.join();
  stop_watching = true;
  watcher.join();
  watchdog.stop();
  record.hung = watchdog.fired();
}

// Checks the record of a run, with the items left in the ring after it as one more log.
std::string check_record(const run_record& record, const std::vector<std::uint64_t>& leftover) {
  std::vector<std::vector<std::uint64_t>> logs = record.received;
  logs.push_back(leftover);
  return ringmq_test::check_deliveries(logs, record.accepted);
}

template <class Ring>
std::vector<std::uint64_t> take_leftover(Ring& ring) {
  std::vector<std::uint64_t> leftover;
  while (std::optional<std::uint64_t> item = ring.try_pop()) leftover.push_back(*item);
  return leftover;
}

}  // namespace

// Each shape with every wait policy, varying the capacity mode and slot layout between them.
#define RINGMQ_STRESS_CONFIGS_FOR(shape_name)                                                      \
  ringmq_test::shape_name##_spin_runtime_padded, ringmq_test::shape_name##_yield_static_packed,    \
      ringmq_test::shape_name##_park_runtime_packed, ringmq_test::shape_name##_park_static_padded, \
      ringmq_test::shape_name##_sleep_only_runtime_padded

#define RINGMQ_STRESS_CONFIGS                                       \
  RINGMQ_STRESS_CONFIGS_FOR(mpmc), RINGMQ_STRESS_CONFIGS_FOR(mpsc), \
      RINGMQ_STRESS_CONFIGS_FOR(spmc), RINGMQ_STRESS_CONFIGS_FOR(spsc)

TEMPLATE_TEST_CASE("ring: stress delivers every item once", "[ring][stress]",
                   RINGMQ_STRESS_CONFIGS) {
  constexpr std::uint32_t count = items_per_producer<TestType>();
  for (const team members : teams_for<TestType>()) {
    ringmq_test::for_each_capacity<TestType, std::uint64_t, 1, 2, 3>(
        [&](auto& ring, std::size_t capacity) {
          const std::uint64_t seed =
              0x57E55000 + capacity * 100 + members.producers * 10 + members.consumers;
          INFO("capacity " << capacity << ", " << members.producers << " producers, "
                           << members.consumers << " consumers, seed " << seed);
          run_record record;
          run_team(ring, members, count, seed, record);

          CHECK_FALSE(record.hung);
          CHECK(record.failed_blocking_pushes.load() == 0);
          CHECK(record.size_above_capacity.load() == 0);
          std::uint64_t received = 0;
          for (const auto& items : record.received) received += items.size();
          CHECK(received == members.producers * std::uint64_t{count});
          const std::vector<std::uint64_t> leftover = take_leftover(ring);
          CHECK(leftover.empty());
          const std::string mismatch = check_record(record, leftover);
          CHECK(mismatch == "");
          CHECK(ring.empty());
        });
  }
}

TEMPLATE_TEST_CASE("ring: stress close under load", "[ring][stress]", RINGMQ_STRESS_CONFIGS) {
  // The ring closes while producers still push: pushes start failing, consumers drain, and
  // every push that returned true is popped, or for a single producer whose push was in
  // flight during close, left in the ring.
  constexpr std::uint32_t count = items_per_producer<TestType>();
  for (const team members : teams_for<TestType>()) {
    ringmq_test::for_each_capacity<TestType, std::uint64_t, 1, 3>(
        [&](auto& ring, std::size_t capacity) {
          const std::uint64_t seed =
              0xC105E000 + capacity * 100 + members.producers * 10 + members.consumers;
          INFO("capacity " << capacity << ", " << members.producers << " producers, "
                           << members.consumers << " consumers, seed " << seed);
          run_record record;
          const std::size_t close_after = members.producers * count / 2;
          run_team(ring, members, count, seed, record, close_after);

          CHECK_FALSE(record.hung);
          CHECK(record.size_above_capacity.load() == 0);
          std::uint64_t accepted = 0;
          for (const std::uint64_t pushed : record.accepted) accepted += pushed;
          CHECK(accepted >= close_after);
          const std::vector<std::uint64_t> leftover = take_leftover(ring);
          if (TestType::multi_producer) CHECK(leftover.empty());
          const std::string mismatch = check_record(record, leftover);
          CHECK(mismatch == "");
        });
  }
}

TEMPLATE_TEST_CASE("ring: stress destroys every element once", "[ring][stress]",
                   ringmq_test::mpmc_park_runtime_padded, ringmq_test::mpsc_park_static_packed,
                   ringmq_test::spmc_sleep_only_runtime_padded,
                   ringmq_test::spsc_yield_runtime_packed) {
  // Counted elements through a ring of 8 slots. The consumers stop 5 items short, so the ring
  // is destroyed holding elements that crossed threads.
  using ringmq_test::counted;
  const std::uint64_t per_producer = items_per_producer<TestType>() / 2;
  constexpr std::uint64_t left_in_ring = 5;

  for (const team members : teams_for<TestType>()) {
    INFO(members.producers << " producers, " << members.consumers << " consumers");
    const std::uint64_t total = members.producers * per_producer;
    std::atomic<std::uint64_t> tickets{0};
    std::atomic<std::uint64_t> popped_sum{0};
    std::uint64_t left_sum = 0;
    std::size_t left_count = 0;
    counted::reset();
    {
      auto ring = TestType::template make<counted, 8>();
      ringmq_test::close_watchdog watchdog(*ring, 60s);
      std::vector<std::thread> threads;
      for (std::size_t p = 0; p < members.producers; ++p) {
        threads.emplace_back([&, p] {
          for (std::uint64_t i = 0; i < per_producer; ++i) {
            const std::uint64_t value = p * per_producer + i + 1;
            if (i % 3 == 0) {
              while (!ring->try_emplace(value)) std::this_thread::yield();
            } else if (i % 3 == 1) {
              static_cast<void>(ring->push(counted(value)));
            } else {
              static_cast<void>(ring->emplace(value));
            }
          }
        });
      }
      for (std::size_t c = 0; c < members.consumers; ++c) {
        threads.emplace_back([&] {
          while (tickets.fetch_add(1) < total - left_in_ring) {
            const std::optional<counted> item = ring->pop();
            if (item) popped_sum.fetch_add(item->value());
          }
        });
      }
      for (std::thread& thread : threads) thread.join();
      watchdog.stop();
      REQUIRE_FALSE(watchdog.fired());

      left_count = ring->size();
      CHECK(counted::live() == static_cast<long>(left_count));
      // Read the values left behind without taking them out: pop and push back each once.
      for (std::size_t i = 0; i < left_count; ++i) {
        std::optional<counted> item = ring->try_pop();
        REQUIRE(item.has_value());
        left_sum += item->value();
        REQUIRE(ring->try_push(std::move(*item)));
      }
    }
    CHECK(left_count == left_in_ring);
    CHECK(popped_sum.load() + left_sum == total * (total + 1) / 2);
    CHECK(counted::live() == 0);
    CHECK(counted::constructions() == counted::destructions());
    CHECK(counted::errors() == 0);
  }
}
