// Fault injection into ringmq::worker_pool: handlers that throw (std exceptions and others),
// hang past their lease, or run when the pool stops, and receives whose body copy throws. Every
// message ends acked once, queued again, or a dead letter, so none is lost.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ringmq/clock.hpp>
#include <ringmq/worker_pool.hpp>

#include "support/counted.hpp"
#include "support/faults.hpp"

using namespace std::chrono_literals;
using ringmq::handler_result;
using ringmq_test::faulty;

namespace {

using int_queue = ringmq::work_queue<int>;
using manual_queue = ringmq::work_queue<int, ringmq::clock<ringmq::manual_clock>>;

// Upper bound for anything that must happen soon, far above any scheduling delay. Reaching it
// fails the test instead of hanging it.
constexpr auto generous_bound = std::chrono::seconds(30);

bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + generous_bound;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// An exception that does not derive from std::exception.
struct plain_error {
  int code;
};

// A gate that handlers wait at until the test opens it, or until the generous bound passes.
class gate {
 public:
  void open() { opened_.set_value(); }
  bool wait() const { return future_.wait_for(generous_bound) == std::future_status::ready; }

 private:
  std::promise<void> opened_;
  std::shared_future<void> future_ = opened_.get_future().share();
};

// Ids of the messages in each final place, checked to be disjoint and to cover every id sent.
struct outcome_ledger {
  std::mutex mutex;
  std::multiset<int> acked;  // bodies whose handler returned ack

  void note_ack(int body) {
    const std::lock_guard lock(mutex);
    acked.insert(body);
  }
};

}  // namespace

TEST_CASE("worker_pool fault: throwing handlers retry then dead-letter", "[worker_pool][fault]") {
  int_queue queue({.capacity = 64, .max_receive_count = 3});
  constexpr int messages = 36;
  for (int body = 0; body < messages; ++body) REQUIRE(queue.try_send(int{body}).ok());

  // body % 6 picks the behavior.
  outcome_ledger ledger;
  std::atomic<int> throws{0};
  ringmq::worker_pool pool(
      queue,
      [&](int_queue::delivery_type& delivery) {
        const int body = delivery.body();
        switch (body % 6) {
          case 0:
            ledger.note_ack(body);
            return handler_result::ack;
          case 1:
            ++throws;
            throw std::runtime_error("runtime failure " + std::to_string(body));
          case 2:
            ++throws;
            throw std::logic_error("logic failure " + std::to_string(body));
          case 3:
            ++throws;
            throw plain_error{body};
          case 4:
            if (delivery.receive_count() == 1) {  // fails once, then succeeds
              ++throws;
              throw std::runtime_error("first attempt of " + std::to_string(body));
            }
            ledger.note_ack(body);
            return handler_result::ack;
          default:
            return handler_result::retry;
        }
      },
      {.threads = 3, .poll = 1ms, .extend_at = 0});

  // Four of six kinds never succeed: 24 dead letters, 12 acks.
  REQUIRE(wait_until([&] { return queue.dead_letters().size() == 24 && queue.size() == 0; }));
  pool.stop();

  std::set<int> dead;
  while (auto letter = queue.dead_letters().try_receive()) {
    INFO("dead letter " << letter->body << ": " << letter->detail);
    CHECK(dead.insert(letter->body).second);
    CHECK(letter->reason == ringmq::dead_letter_reason::max_receives);
    CHECK(letter->failure_count == 3);
    const std::string number = std::to_string(letter->body);
    switch (letter->body % 6) {
      case 1:
        CHECK(letter->detail == "runtime failure " + number);
        break;
      case 2:
        CHECK(letter->detail == "logic failure " + number);
        break;
      case 3:
        CHECK(letter->detail == "handler threw an exception that is not a std::exception");
        break;
      case 5:
        CHECK(letter->detail == "nacked on attempt 3 of max_receive_count 3");
        break;
      default:
        FAIL("a message that succeeds became a dead letter");
    }
  }
  std::set<int> all;
  for (int body = 0; body < messages; ++body) all.insert(body);
  std::set<int> settled(ledger.acked.begin(), ledger.acked.end());
  CHECK(ledger.acked.size() == settled.size());  // acked once each
  for (int body : dead) CHECK(settled.count(body) == 0);
  settled.insert(dead.begin(), dead.end());
  CHECK(settled == all);

  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.acked == 12);
  CHECK(stats.failed == static_cast<std::uint64_t>(throws.load()));
  CHECK(stats.failed == 6 * 3 * 3 + 6);
  CHECK(stats.retried == 6 * 3);
  CHECK(stats.expired_leases == 0);
  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.acked == 12);
  CHECK(queue_stats.in_flight == 0);
  CHECK(queue_stats.visible == 0);
}

TEST_CASE("worker_pool fault: hung handler loses its expired lease", "[worker_pool][fault]") {
  ringmq::manual_clock clock;
  manual_queue queue({.visibility_timeout = 10s}, clock);
  REQUIRE(queue.try_send(7).ok());

  std::atomic<bool> first_started{false};
  gate redelivered;
  std::atomic<int> late_waits_ok{0};
  ringmq::worker_pool pool(
      queue,
      [&](manual_queue::delivery_type& delivery) {
        if (delivery.receive_count() == 1) {
          first_started = true;
          // Hang until another worker got the message: the lease must have ended by then.
          if (redelivered.wait()) ++late_waits_ok;
        } else {
          redelivered.open();
        }
        return handler_result::ack;
      },
      {.threads = 2, .poll = 1ms, .extend_at = 0});  // no keeper: nothing extends the lease

  REQUIRE(wait_until([&] { return first_started.load(); }));
  clock.advance(11s);  // the lease ends; an idle worker's receive reaps and gets the message
  REQUIRE(wait_until([&] { return pool.stats().handled == 2; }));
  pool.stop();

  CHECK(late_waits_ok == 1);
  const ringmq::worker_pool_stats stats = pool.stats();
  CHECK(stats.acked == 1);           // the second worker's ack
  CHECK(stats.expired_leases == 1);  // the hung handler's ack came after its lease
  const ringmq::queue_stats queue_stats = queue.stats();
  CHECK(queue_stats.acked == 1);
  CHECK(queue_stats.expired_leases == 1);
  CHECK(queue_stats.redelivered == 1);
  CHECK(queue.size() == 0);
}

TEST_CASE("worker_pool fault: stop during handlers loses nothing", "[worker_pool][fault]") {
  const bool destroy = GENERATE(false, true);
  INFO((destroy ? "destroyed" : "stopped") << " while two handlers run");
  int_queue queue({.capacity = 32});
  constexpr int messages = 20;
  for (int body = 0; body < messages; ++body) REQUIRE(queue.try_send(int{body}).ok());

  outcome_ledger ledger;
  std::atomic<int> running{0};
  gate release_handlers;
  auto pool = std::make_unique<ringmq::worker_pool<int_queue>>(
      queue,
      [&](int& body) {
        ++running;
        (void)release_handlers.wait();  // a gate that never opens fails the wait_until below
        if (body % 2 == 1) throw std::runtime_error("odd body");  // nacked: visible again
        ledger.note_ack(body);
        return handler_result::ack;
      },
      ringmq::worker_pool_config{.threads = 2, .poll = 1ms});

  REQUIRE(wait_until([&] { return running.load() == 2; }));
  std::thread stopper([&] {
    if (destroy) {
      pool.reset();
    } else {
      pool->stop();
    }
  });
  // With stop(), open the gate only once the stop was requested, so that both handlers finish
  // during it. The destructor gives no such signal, so its handlers may finish before it
  // requests the stop, and later handlers may run.
  if (!destroy) REQUIRE(wait_until([&] { return pool->stop_requested(); }));
  release_handlers.open();
  stopper.join();
  if (!destroy) CHECK(running == 2);  // no handler started after the stop

  const ringmq::queue_stats stats = queue.stats();
  CHECK(stats.in_flight == 0);  // none left leased
  CHECK(stats.acked + stats.nacked == static_cast<std::uint64_t>(running.load()));
  std::multiset<int> outcomes = ledger.acked;
  while (std::optional<int_queue::delivery_type> delivery = queue.try_receive()) {
    outcomes.insert(delivery->body());
    CHECK(queue.ack(delivery->receipt()));
  }
  std::multiset<int> all;
  for (int body = 0; body < messages; ++body) all.insert(body);
  CHECK(outcomes == all);
}

TEST_CASE("worker_pool fault: throwing receive copy requeues message", "[worker_pool][fault]") {
  using faulty_queue = ringmq::work_queue<faulty>;
  ringmq_test::counted::reset();
  {
    faulty_queue queue({.capacity = 4});
    REQUIRE(queue.try_send(faulty(5)).ok());
    std::atomic<int> handled{0};
    {
      const ringmq_test::armed_fault fault(1);  // the pool's first receive copy throws
      ringmq::worker_pool pool(queue,
                               [&](faulty& body) {
                                 if (body.value() == 5) ++handled;
                                 return handler_result::ack;
                               },
                               {.threads = 1, .poll = 1ms});
      REQUIRE(wait_until([&] { return queue.size() == 0; }));
      pool.stop();
      const ringmq::worker_pool_stats stats = pool.stats();
      CHECK(stats.receive_errors == 1);
      CHECK(stats.acked == 1);
    }
    CHECK(handled == 1);
    const ringmq::queue_stats stats = queue.stats();
    CHECK(stats.received == 1);
    CHECK(stats.acked == 1);
  }
  CHECK(ringmq_test::counted::live() == 0);
  CHECK(ringmq_test::counted::errors() == 0);
}
