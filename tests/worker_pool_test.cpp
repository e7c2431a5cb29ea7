// Tests of ringmq::worker_pool: settling by the handler's result, exceptions as retries with
// their text in the dead letter, lease extension by the keeper, stop() without losing messages,
// configuration errors, and exactly-once handling across several threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ringmq/worker_pool.hpp>

#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringmq::handler_result;
using steady_clock = std::chrono::steady_clock;

namespace {

using int_queue = ringmq::work_queue<int>;
using manual_queue = ringmq::work_queue<int, ringmq::clock<ringmq::manual_clock>>;

// Upper bound for anything that must happen soon, far above any scheduling delay.
constexpr auto generous_bound = 30s;

// Waits until condition() holds or the generous bound passes, and returns whether it held.
bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = steady_clock::now() + generous_bound;
  while (!condition()) {
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Collects the bodies still in the queue, visible now, after the pool has stopped.
std::vector<int> drain(int_queue& queue) {
  std::vector<int> bodies;
  while (std::optional<int_queue::delivery_type> delivery = queue.try_receive()) {
    bodies.push_back(delivery->body());
    REQUIRE(queue.ack(delivery->receipt()));
  }
  return bodies;
}

// A body whose copy constructor throws while copies_fail is set. Moves never throw.
struct fragile {
  static inline std::atomic<bool> copies_fail{false};

  explicit fragile(int v) : value(v) {}
  fragile(const fragile& other) : value(other.value) {
    if (copies_fail.load()) throw std::runtime_error("fragile copy failed");
  }
  fragile(fragile&& other) noexcept : value(other.value) {}
  fragile& operator=(const fragile&) = default;
  fragile& operator=(fragile&&) noexcept = default;

  int value;
};

}  // namespace

TEST_CASE("worker_pool: handler results settle the message", "[worker_pool]") {
  int_queue queue({.capacity = 16});
  const auto handler = [](int_queue::delivery_type& delivery) {
    switch (delivery.body()) {
      case 1:
        return handler_result::ack;
      case 2:  // fails once, then succeeds
        return delivery.receive_count() == 1 ? handler_result::retry : handler_result::ack;
      default:
        return handler_result::reject;
    }
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 2});

  REQUIRE(queue.try_send(1));
  REQUIRE(queue.try_send(2));
  const ringmq::send_result rejected = queue.try_send(3);
  REQUIRE(rejected);
  REQUIRE(wait_until([&] { return pool.stats().handled == 4; }));
  pool.stop();

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.handled == 4);
  CHECK(stats.acked == 2);
  CHECK(stats.retried == 1);
  CHECK(stats.rejected == 1);
  CHECK(stats.failed == 0);
  CHECK(stats.expired_leases == 0);
  CHECK(stats.receive_errors == 0);

  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.acked == 2);
  CHECK(queue_stats.nacked == 1);
  CHECK(queue_stats.rejected == 1);
  CHECK(queue_stats.in_flight == 0);
  CHECK(queue.size() == 0);

  const auto letter = queue.dead_letters().try_receive();
  REQUIRE(letter);
  CHECK(letter->id == rejected.id);
  CHECK(letter->body == 3);
  CHECK(letter->reason == ringmq::dead_letter_reason::rejected);
  CHECK(letter->detail == "rejected by handler");
}

TEST_CASE("worker_pool: handler may take the body alone", "[worker_pool]") {
  int_queue queue({.capacity = 16});
  std::atomic<int> sum{0};
  // A move-only handler works, because the pool stores the one it is given.
  auto weight = std::make_unique<int>(10);
  ringmq::worker_pool pool(queue, [&sum, weight = std::move(weight)](const int& body) {
    sum += body * *weight;
    return handler_result::ack;
  });

  REQUIRE(queue.try_send(1));
  REQUIRE(queue.try_send(2));
  REQUIRE(wait_until([&] { return pool.stats().acked == 2; }));
  pool.stop();
  CHECK(sum == 30);
}

TEST_CASE("worker_pool: generic handler gets the delivery", "[worker_pool]") {
  int_queue queue({.capacity = 4});
  std::atomic<std::uint32_t> receive_count{0};
  ringmq::worker_pool pool(queue, [&](auto& delivery) {
    receive_count = delivery.receive_count();
    return handler_result::ack;
  });

  REQUIRE(queue.try_send(7));
  REQUIRE(wait_until([&] { return pool.stats().acked == 1; }));
  pool.stop();
  CHECK(receive_count == 1);
}

TEST_CASE("worker_pool: handler result names", "[worker_pool]") {
  CHECK(ringmq::to_string(handler_result::ack) == "ack");
  CHECK(ringmq::to_string(handler_result::retry) == "retry");
  CHECK(ringmq::to_string(handler_result::reject) == "reject");
}

TEST_CASE("worker_pool: exception text reaches the dead letter", "[worker_pool]") {
  int_queue queue({.capacity = 4, .max_receive_count = 3});
  const auto handler = [](int_queue::delivery_type& delivery) -> handler_result {
    throw std::runtime_error("disk full on receive " + std::to_string(delivery.receive_count()));
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 2});

  const ringmq::send_result sent = queue.try_send(5);
  REQUIRE(sent);
  REQUIRE(wait_until([&] { return queue.dead_letters().size() == 1; }));
  pool.stop();

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.handled == 3);
  CHECK(stats.failed == 3);
  CHECK(stats.retried == 0);
  CHECK(stats.expired_leases == 0);

  const auto letter = queue.dead_letters().try_receive();
  REQUIRE(letter);
  CHECK(letter->id == sent.id);
  CHECK(letter->reason == ringmq::dead_letter_reason::max_receives);
  CHECK(letter->failure_count == 3);
  CHECK(letter->receive_count == 3);
  CHECK(letter->detail == "disk full on receive 3");
  CHECK(queue.stats().nacked == 3);
}

TEST_CASE("worker_pool: non-standard exception gets a fixed detail", "[worker_pool]") {
  int_queue queue({.capacity = 4, .max_receive_count = 1});
  ringmq::worker_pool pool(queue, [](int&) -> handler_result { throw 42; });

  REQUIRE(queue.try_send(5));
  REQUIRE(wait_until([&] { return queue.dead_letters().size() == 1; }));
  pool.stop();

  CHECK(pool.stats().failed == 1);
  const auto letter = queue.dead_letters().try_receive();
  REQUIRE(letter);
  CHECK(letter->reason == ringmq::dead_letter_reason::max_receives);
  CHECK(letter->detail == "handler threw an exception that is not a std::exception");
}

TEST_CASE("worker_pool: keeper extends a blocked handler's lease", "[worker_pool]") {
  // The manual clock moves only here, so each step below leaves 40 ms on a 100 ms lease: inside
  // the 50 ms extension window and not yet ended. The test waits for each extension before the
  // next step, so it has no timing threshold.
  ringmq::manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 100ms}, clock);
  std::atomic<bool> in_handler{false};
  std::atomic<bool> finish{false};
  const auto handler = [&](int&) {
    in_handler = true;
    wait_until([&] { return finish.load(); });
    return handler_result::ack;
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 2, .poll = 5ms, .extend_at = 0.5});

  REQUIRE(queue.try_send(1));
  REQUIRE(wait_until([&] { return in_handler.load(); }));
  constexpr std::uint64_t steps = 10;
  for (std::uint64_t step = 1; step <= steps; ++step) {
    clock.advance(60ms);
    REQUIRE(wait_until([&] { return pool.stats().extended == step; }));
  }
  finish = true;
  REQUIRE(wait_until([&] { return pool.stats().handled == 1; }));
  pool.stop();

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.acked == 1);
  CHECK(stats.expired_leases == 0);
  CHECK(stats.extended == steps);
  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.received == 1);
  CHECK(queue_stats.redelivered == 0);
  CHECK(queue_stats.expired_leases == 0);
  CHECK(queue_stats.acked == 1);
}

TEST_CASE("worker_pool: slow handler keeps its message on steady_clock", "[worker_pool][stress]") {
  // Each lease lasts at most 250 ms and each handler sleeps 750 ms, so an ack that takes effect
  // proves at least three extensions per message. The keeper extends once less than 225 ms is
  // left, and passes every 50 ms, so only a keeper thread that got no CPU time for about 175 ms
  // could lose a lease.
  int_queue queue({.capacity = 8, .visibility_timeout = 250ms, .max_visibility_timeout = 250ms});
  const auto handler = [](int&) {
    std::this_thread::sleep_for(750ms);
    return handler_result::ack;
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 2, .extend_at = 0.9});

  const auto start = steady_clock::now();
  REQUIRE(queue.try_send(1));
  REQUIRE(queue.try_send(2));
  REQUIRE(wait_until([&] { return pool.stats().handled == 2; }));
  pool.stop();
  CHECK(steady_clock::now() - start < generous_bound);

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.acked == 2);
  CHECK(stats.expired_leases == 0);
  CHECK(stats.extended >= 6);
  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.redelivered == 0);
  CHECK(queue_stats.expired_leases == 0);
  CHECK(queue_stats.acked == 2);
}

TEST_CASE("worker_pool: slow handler loses lease without extension", "[worker_pool]") {
  ringmq::manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 100ms}, clock);
  std::atomic<int> calls{0};
  std::atomic<bool> finish{false};
  const auto handler = [&](int&) {
    if (++calls == 1) wait_until([&] { return finish.load(); });
    return handler_result::ack;
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 1, .poll = 5ms, .extend_at = 0});

  REQUIRE(queue.try_send(1));
  REQUIRE(wait_until([&] { return calls == 1; }));
  clock.advance(150ms);  // the lease ends while the handler runs
  finish = true;
  REQUIRE(wait_until([&] { return pool.stats().acked == 1; }));
  pool.stop();

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(calls == 2);
  CHECK(stats.handled == 2);
  CHECK(stats.expired_leases == 1);
  CHECK(stats.extended == 0);
  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.expired_leases == 1);
  CHECK(queue_stats.redelivered == 1);
  CHECK(queue_stats.acked == 1);
}

TEST_CASE("worker_pool: stop lets running handlers settle", "[worker_pool]") {
  int_queue queue({.capacity = 64});
  std::atomic<const ringmq::worker_pool<int_queue>*> running_pool{nullptr};
  std::atomic<int> started{0};
  std::mutex acked_mutex;
  std::set<int> acked;
  const auto handler = [&](int& body) {
    ++started;
    // Runs until stop() requests a stop, so stop() finds every worker in a handler.
    wait_until([&] { return running_pool.load()->stop_requested(); });
    std::lock_guard lock(acked_mutex);
    acked.insert(body);
    return handler_result::ack;
  };
  ringmq::worker_pool<int_queue> pool(queue, handler, {.threads = 2});
  running_pool = &pool;

  constexpr int sent = 20;
  for (int body = 0; body < sent; ++body) REQUIRE(queue.try_send(int{body}));
  REQUIRE(wait_until([&] { return started == 2; }));
  pool.stop();

  // Both handlers finished and acked, and every other message is still in the queue.
  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(started == 2);
  CHECK(stats.handled == 2);
  CHECK(stats.acked == 2);
  CHECK(queue.stats().in_flight == 0);
  CHECK(queue.size() == sent - 2);

  std::set<int> all(acked.begin(), acked.end());
  for (const int body : drain(queue)) CHECK(all.insert(body).second);
  CHECK(all.size() == static_cast<std::size_t>(sent));
}

TEST_CASE("worker_pool: stop during mixed results loses nothing", "[worker_pool]") {
  int_queue queue({.capacity = 256});
  std::mutex acked_mutex;
  std::multiset<int> acked;
  const auto handler = [&](int_queue::delivery_type& delivery) {
    std::this_thread::sleep_for(1ms);
    if (delivery.body() % 3 == 0 && delivery.receive_count() == 1) {
      return handler_result::retry;
    }
    std::lock_guard lock(acked_mutex);
    acked.insert(delivery.body());
    return handler_result::ack;
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 3, .poll = 5ms});

  constexpr int sent = 200;
  for (int body = 0; body < sent; ++body) REQUIRE(queue.try_send(int{body}));
  REQUIRE(wait_until([&] { return pool.stats().handled >= 20; }));
  pool.stop();

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.acked == acked.size());
  CHECK(stats.expired_leases == 0);
  CHECK(queue.stats().in_flight == 0);

  std::multiset<int> all = acked;
  for (const int body : drain(queue)) all.insert(body);
  for (int body = 0; body < sent; ++body) CHECK(all.count(body) == 1);
  CHECK(all.size() == static_cast<std::size_t>(sent));
}

TEST_CASE("worker_pool: stop is idempotent", "[worker_pool]") {
  int_queue queue({.capacity = 8});
  auto pool = std::make_unique<ringmq::worker_pool<int_queue>>(
      queue, [](int&) { return handler_result::ack; },
      ringmq::worker_pool_config{.threads = 3, .poll = 5ms});

  REQUIRE(queue.try_send(1));
  REQUIRE(wait_until([&] { return pool->stats().acked == 1; }));

  // Two concurrent calls both return after the threads are joined.
  std::thread other([&] { pool->stop(); });
  pool->stop();
  other.join();
  CHECK(pool->stop_requested());
  pool->stop();

  // No worker receives any more.
  REQUIRE(queue.try_send(2));
  CHECK(queue.stats().received == 1);
  CHECK(pool->stats().handled == 1);
  pool.reset();  // the destructor's stop() does nothing either
  CHECK(queue.size() == 1);
}

TEST_CASE("worker_pool: stop from a handler throws", "[worker_pool]") {
  int_queue queue({.capacity = 4});
  std::atomic<ringmq::worker_pool<int_queue>*> running_pool{nullptr};
  std::mutex error_mutex;
  std::string error;
  ringmq::worker_pool<int_queue> pool(queue, [&](int&) {
    ringmq::worker_pool<int_queue>& self = *running_pool.load();
    try {
      self.stop();
    } catch (const std::logic_error& e) {
      std::lock_guard lock(error_mutex);
      error = e.what();
    }
    self.request_stop();
    return handler_result::ack;
  });
  running_pool = &pool;

  REQUIRE(queue.try_send(1));
  REQUIRE(wait_until([&] { return pool.stop_requested(); }));
  pool.stop();

  CHECK(pool.stats().acked == 1);
  std::lock_guard lock(error_mutex);
  CHECK_THAT(error, Catch::Contains("called from a handler"));
  CHECK_THAT(error, Catch::Contains("request_stop()"));
}

TEST_CASE("worker_pool: closed queue still delivers delayed messages", "[worker_pool]") {
  ringmq::manual_clock clock;
  manual_queue queue({.capacity = 4}, clock);
  REQUIRE(queue.try_send(1, {.delay = 1s}));
  queue.close();
  ringmq::worker_pool pool(queue, [](int&) { return handler_result::ack; },
                           {.threads = 2, .poll = 5ms});

  clock.advance(1s);
  REQUIRE(wait_until([&] { return pool.stats().acked == 1; }));
  pool.stop();
  CHECK(queue.size() == 0);
}

TEST_CASE("worker_pool: body copy that throws is retried", "[worker_pool]") {
  using fragile_queue = ringmq::work_queue<fragile>;
  fragile_queue queue({.capacity = 4});
  REQUIRE(queue.try_send(fragile(3)));
  fragile::copies_fail = true;
  std::atomic<int> handled_value{0};
  const auto handler = [&](fragile& body) {
    handled_value = body.value;
    return handler_result::ack;
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 1, .poll = 5ms});

  REQUIRE(wait_until([&] { return pool.stats().receive_errors >= 1; }));
  fragile::copies_fail = false;
  REQUIRE(wait_until([&] { return pool.stats().acked == 1; }));
  pool.stop();

  CHECK(handled_value == 3);
  CHECK(pool.stats().handled == 1);
  CHECK(queue.size() == 0);
}

TEST_CASE("worker_pool: invalid config throws", "[worker_pool]") {
  int_queue queue({.capacity = 4});
  const auto ack = [](int&) { return handler_result::ack; };
  using pool_type = ringmq::worker_pool<int_queue>;

  CHECK_THROWS_WITH(pool_type(queue, ack, {.threads = 0}), Catch::Contains("threads 0 is invalid"));
  CHECK_THROWS_WITH(pool_type(queue, ack, {.poll = 0ms}), Catch::Contains("poll 0 ns is invalid"));
  CHECK_THROWS_WITH(pool_type(queue, ack, {.poll = -1ms}),
                    Catch::Contains("poll -1000000 ns is invalid"));
  CHECK_THROWS_WITH(pool_type(queue, ack, {.extend_at = -0.5}),
                    Catch::Contains("extend_at -0.500000 is invalid"));
  CHECK_THROWS_WITH(pool_type(queue, ack, {.extend_at = 1.0}),
                    Catch::Contains("extend_at 1.000000 is invalid"));
  CHECK_THROWS_WITH(pool_type(queue, ack, {.extend_at = std::nan("")}),
                    Catch::Contains("extend_at nan is invalid"));
  CHECK_THROWS_AS(pool_type(queue, ack, {.threads = 0}), std::invalid_argument);

  CHECK_THROWS_WITH(pool_type(queue, std::function<handler_result(int&)>{}),
                    Catch::Contains("handler is empty"));
  handler_result (*no_function)(int&) = nullptr;
  CHECK_THROWS_AS(pool_type(queue, no_function), std::invalid_argument);

  // The limits of the valid range work.
  CHECK_NOTHROW(pool_type(queue, ack, {.poll = 1ns, .extend_at = 0.0}));
  CHECK_NOTHROW(pool_type(queue, ack, {.extend_at = 0.999}));
  CHECK(queue.stats().received == 0);
}

TEST_CASE("worker_pool: several threads handle each message once", "[worker_pool]") {
  const int sent = ringmq_test::thread_sanitizer ? 2000 : 20000;
  int_queue queue({.capacity = 256});
  std::vector<std::atomic<int>> acks(static_cast<std::size_t>(sent));
  const auto handler = [&](int& body) {
    acks[static_cast<std::size_t>(body)].fetch_add(1, std::memory_order_relaxed);
    return handler_result::ack;
  };
  ringmq::worker_pool pool(queue, handler, {.threads = 4});

  for (int body = 0; body < sent; ++body) REQUIRE(queue.send(int{body}));
  REQUIRE(wait_until([&] { return pool.stats().handled == static_cast<std::uint64_t>(sent); }));
  pool.stop();

  int wrong = 0;
  for (const std::atomic<int>& count : acks) {
    if (count.load() != 1) ++wrong;
  }
  CHECK(wrong == 0);
  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.acked == static_cast<std::uint64_t>(sent));
  CHECK(stats.expired_leases == 0);
  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.redelivered == 0);
  CHECK(queue_stats.acked == static_cast<std::uint64_t>(sent));
  CHECK(queue.size() == 0);
}
