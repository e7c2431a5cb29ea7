// Stress tests of ringmq::work_queue: producers and consumers mixing every call, leases short
// enough to expire while a consumer still works, a thread that settles other consumers'
// receipts, close() while calls wait, and redrive while consumers run.
//
// After each run the main thread checks the records of every thread against the queue. Each
// accepted message is acknowledged exactly once or is in the dead-letter queue exactly once, and
// no other message shows up. Each hand-out of a message has its own receive_count, nothing is
// handed out after its acknowledgement, and the counters of stats() add up.
//
// Nothing here measures speed. Each run is bounded by a watchdog that ends it after a generous
// limit and reports the hang. Message counts shrink under ThreadSanitizer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ringmq/work_queue.hpp>

#include "support/counted.hpp"
#include "support/preempt_build.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;

namespace {

// Runs `rescue` every 10 ms once `limit` has passed without stop(), so that threads blocked by a
// lost wake-up return and the test can report the hang instead of hanging.
class watchdog {
 public:
  watchdog(std::chrono::seconds limit, std::function<void()> rescue)
      : rescue_(std::move(rescue)), thread_([this, limit] { run(limit); }) {}

  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  ~watchdog() { stop(); }

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
  void run(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stop_requested_.wait_for(lock, limit, [this] { return stopped_; })) return;
    fired_ = true;
    while (!stopped_) {
      lock.unlock();
      rescue_();
      lock.lock();
      stop_requested_.wait_for(lock, 10ms, [this] { return stopped_; });
    }
  }

  std::function<void()> rescue_;
  mutable std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopped_ = false;
  bool fired_ = false;
  std::thread thread_;
};

constexpr std::chrono::seconds run_limit{120};

// The shape of one run.
struct traffic {
  std::size_t producers = 2;
  std::size_t consumers = 2;
  std::uint64_t per_producer = 1000;
  std::size_t capacity = 8;
  std::uint32_t max_receive_count = 0;
  std::chrono::nanoseconds retention = std::chrono::nanoseconds::max();
  bool saboteur = true;  // a thread that settles receipts other consumers hold
  bool redrive = false;  // a thread that redrives dead letters while consumers run
  bool rejects = true;   // consumers reject some messages
  // 0: close after the producers finish. Otherwise close as soon as this many sends succeeded,
  // while the producers still send. Each producer then sends until a send returns closed.
  std::uint64_t close_after = 0;
};

// Halves message counts under ThreadSanitizer, which makes threaded code many times slower, and
// quarters them in the preempt build, where every thread runs on one CPU.
std::uint64_t messages_per_producer(std::uint64_t count) {
  return ringmq_test::preempt_scaled(ringmq_test::thread_sanitizer ? count / 2 : count);
}

// What one thread did. Each thread appends only to its own record, and the main thread reads
// the records after joining every thread.
struct thread_record {
  struct sent_message {
    ringmq::message_id id;
    std::uint64_t value;  // the body
  };
  struct handout {
    ringmq::message_id id;
    std::uint64_t value;
    std::uint32_t receive_count;
    std::uint32_t failure_count;
    std::uint64_t started;  // event number taken before the receive call
  };
  struct acknowledgement {
    ringmq::message_id id;
    std::uint64_t finished;  // event number taken after ack returned true
  };

  std::vector<sent_message> sent;
  std::vector<handout> handouts;
  std::vector<acknowledgement> acks;
  std::vector<ringmq::message_id> rejects;
  std::uint64_t nacks = 0;
  std::uint64_t releases = 0;
  std::uint64_t extends = 0;
  std::uint64_t failed_settles = 0;
  std::uint64_t zero_send_ids = 0;      // sends that returned ok with id 0
  std::uint64_t closed_early = 0;       // sends that returned closed before the main thread closed
  std::uint64_t duplicate_letters = 0;  // dead-letter snapshots that contained an id twice
  std::uint64_t redriven = 0;
};

// Receipts that consumers hold, for the saboteur to settle.
class receipt_board {
 public:
  void post(const ringmq::receipt& r) {
    const std::lock_guard<std::mutex> lock(mutex_);
    receipts_[posted_ % receipts_.size()] = r;
    ++posted_;
  }

  std::optional<ringmq::receipt> pick(std::uint64_t draw) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (posted_ == 0) return std::nullopt;
    return receipts_[draw % std::min<std::uint64_t>(posted_, receipts_.size())];
  }

 private:
  mutable std::mutex mutex_;
  std::array<ringmq::receipt, 16> receipts_{};
  std::uint64_t posted_ = 0;
};

// State that the threads of one run share.
struct run_state {
  std::atomic<std::uint64_t> events{0};    // orders acks before later receives, see check_run
  std::atomic<std::uint64_t> accepted{0};  // sends that returned ok
  std::atomic<bool> draining{false};       // producers are done: consumers take long leases and ack
  std::atomic<bool> closed_by_test{false};
  std::atomic<bool> give_up{false};  // set by the watchdog
  receipt_board board;
};

// A lease length for a receive: mostly far shorter than the time a consumer may need, so that
// leases expire while the consumer works.
ringmq::receive_options pick_lease(std::mt19937_64& random) {
  switch (random() % 6) {
    case 0:
      return {.visibility_timeout = 50us};
    case 1:
      return {.visibility_timeout = 100us};
    case 2:
      return {.visibility_timeout = 200us};
    case 3:
      return {.visibility_timeout = 2ms};
    default:
      return {};  // the queue's visibility_timeout
  }
}

template <class Queue>
void produce(Queue& queue, std::uint64_t producer, std::uint64_t count, std::uint64_t seed,
             run_state& state, thread_record& record) {
  std::mt19937_64 random(seed);
  for (std::uint64_t i = 0; count == 0 || i < count; ++i) {
    const std::uint64_t value = (producer << 32U) | i;
    ringmq::send_options options;
    if (random() % 8 == 0) options.delay = std::chrono::microseconds(random() % 100);
    ringmq::send_result result;
    for (;;) {
      switch (random() % 4) {
        case 0:
          result = queue.send(counted(value), options);
          break;
        case 1:
          result = queue.send_for(counted(value), 1ms, options);
          break;
        default: {
          counted body(value);
          result = queue.try_send(std::move(body), options);
          break;
        }
      }
      if (result.status == ringmq::send_status::ok) break;
      if (result.status == ringmq::send_status::closed) {
        if (!state.closed_by_test.load()) ++record.closed_early;
        return;
      }
      if (state.give_up.load()) return;
      std::this_thread::yield();
    }
    if (result.id == 0) ++record.zero_send_ids;
    record.sent.push_back({result.id, value});
    state.accepted.fetch_add(1);
  }
}

template <class Queue, class Delivery>
void settle(Queue& queue, const Delivery& delivery, bool draining, const traffic& shape,
            std::mt19937_64& random, run_state& state, thread_record& record) {
  const ringmq::receipt& r = delivery.receipt();
  const auto ack = [&] {
    if (queue.ack(r)) {
      record.acks.push_back({delivery.id(), state.events.fetch_add(1)});
    } else {
      ++record.failed_settles;
    }
  };
  if (draining) {
    ack();
    return;
  }

  std::uint64_t action = random() % 100;
  if (action >= 70 && action < 80) {
    // Extend, then settle with another action.
    if (queue.extend(r, std::chrono::microseconds(50 + random() % 500))) {
      ++record.extends;
    } else {
      ++record.failed_settles;
    }
    action = random() % 70;
  }
  bool done = false;
  if (action < 45) {
    ack();
    return;
  } else if (action < 52) {
    done = queue.nack(r);
    if (done) ++record.nacks;
  } else if (action < 57) {
    done = queue.nack(r, std::chrono::microseconds(random() % 100));
    if (done) ++record.nacks;
  } else if (action < 64) {
    done = queue.release(r);
    if (done) ++record.releases;
  } else if (action < 67 && shape.rejects) {
    done = queue.reject(r, "rejected by a consumer");
    if (done) record.rejects.push_back(delivery.id());
  } else if (action < 67) {
    ack();
    return;
  } else if (action < 85) {
    return;  // let the lease expire
  } else {
    // Work past a short lease, then try to acknowledge.
    std::this_thread::sleep_for(std::chrono::microseconds(100 + random() % 200));
    ack();
    return;
  }
  if (!done) ++record.failed_settles;
}

template <class Queue>
void consume(Queue& queue, const traffic& shape, std::uint64_t seed, run_state& state,
             thread_record& record) {
  using delivery_type = typename Queue::delivery_type;
  std::mt19937_64 random(seed);
  std::vector<delivery_type> batch;
  const ringmq::receive_options long_lease{.visibility_timeout = 30s};

  for (;;) {
    if (state.give_up.load()) return;
    const bool draining = state.draining.load();
    const ringmq::receive_options options = draining ? long_lease : pick_lease(random);
    const std::uint64_t started = state.events.fetch_add(1);
    batch.clear();
    switch (random() % 4) {
      case 0:
        if (std::optional<delivery_type> got = queue.try_receive(options)) {
          batch.push_back(std::move(*got));
        }
        break;
      case 1:
        if (std::optional<delivery_type> got = queue.receive_for(1ms, options)) {
          batch.push_back(std::move(*got));
        }
        break;
      case 2:
        queue.try_receive_batch(std::back_inserter(batch), 1 + random() % 4, options);
        break;
      default:
        queue.receive_batch_for(std::back_inserter(batch), 1 + random() % 4, 1ms, options);
        break;
    }
    if (batch.empty()) {
      if (queue.is_drained()) return;
      std::this_thread::yield();
      continue;
    }
    for (const delivery_type& delivery : batch) {
      record.handouts.push_back({delivery.id(), delivery.body().value(), delivery.receive_count(),
                                 delivery.failure_count(), started});
      state.board.post(delivery.receipt());
    }
    for (const delivery_type& delivery : batch) {
      settle(queue, delivery, draining, shape, random, state, record);
    }
  }
}

// Settles receipts that consumers posted, which are mostly stale but sometimes still valid.
template <class Queue>
void sabotage(Queue& queue, const traffic& shape, std::uint64_t seed, run_state& state,
              thread_record& record) {
  std::mt19937_64 random(seed);
  while (!state.draining.load() && !state.give_up.load()) {
    const std::optional<ringmq::receipt> r = state.board.pick(random());
    if (!r) {
      std::this_thread::yield();
      continue;
    }
    bool done = false;
    switch (random() % 6) {
      case 0:
        done = queue.ack(*r);
        if (done) record.acks.push_back({r->id(), state.events.fetch_add(1)});
        break;
      case 1:
        done = queue.nack(*r);
        if (done) ++record.nacks;
        break;
      case 2:
        done = queue.release(*r);
        if (done) ++record.releases;
        break;
      case 3:
      case 4: {
        // A timeout of 0 acts as release and counts as one.
        const std::chrono::microseconds timeout(random() % 300);
        done = queue.extend(*r, timeout);
        if (done && timeout.count() == 0) ++record.releases;
        if (done && timeout.count() != 0) ++record.extends;
        break;
      }
      default:
        if (shape.rejects) {
          done = queue.reject(*r, "rejected by the saboteur");
          if (done) record.rejects.push_back(r->id());
        }
        break;
    }
    if (!done) ++record.failed_settles;
    if (random() % 4 == 0) std::this_thread::yield();
  }
}

// Redrives dead letters in small batches and checks that no snapshot of the dead-letter queue
// contains an id twice.
template <class Queue>
void redrive_loop(Queue& queue, std::uint64_t seed, run_state& state, thread_record& record) {
  std::mt19937_64 random(seed);
  std::vector<ringmq::message_id> ids;
  while (!state.draining.load() && !state.give_up.load()) {
    record.redriven += queue.redrive(1 + random() % 8);
    ids.clear();
    queue.dead_letters().for_each([&](const auto& letter) { ids.push_back(letter.id); });
    std::sort(ids.begin(), ids.end());
    if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) ++record.duplicate_letters;
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 200));
  }
}

// A dead letter left at the end of a run, with its body's value.
struct letter_record {
  ringmq::message_id id;
  std::uint64_t value;
  std::uint32_t receive_count;
  std::uint32_t failure_count;
  ringmq::dead_letter_reason reason;
};

// What a run leaves for the checks.
struct run_result {
  std::vector<thread_record> records;
  std::vector<letter_record> letters;  // oldest first
  ringmq::queue_stats stats;
  std::size_t size_after = 0;
  bool hung = false;
};

// Runs the producers, consumers and helper threads of `shape` against `queue`. With `tick`, a
// clock thread calls it in a loop until the run ends.
template <class Queue>
run_result run_traffic(Queue& queue, const traffic& shape, std::uint64_t seed,
                       const std::function<void()>& tick = {}) {
  run_result result;
  run_state state;
  const std::size_t threads = shape.producers + shape.consumers + 2;
  result.records.resize(threads);
  thread_record& saboteur_record = result.records[shape.producers + shape.consumers];
  thread_record& redrive_record = result.records[shape.producers + shape.consumers + 1];

  watchdog guard(run_limit, [&] {
    state.give_up = true;
    state.draining = true;
    queue.close();
  });

  std::atomic<bool> stop_clock{false};
  std::thread clock_thread;
  if (tick) {
    clock_thread = std::thread([&] {
      while (!stop_clock.load()) tick();
    });
  }

  std::vector<std::thread> consumers;
  for (std::size_t c = 0; c < shape.consumers; ++c) {
    thread_record& record = result.records[shape.producers + c];
    consumers.emplace_back([&, c] { consume(queue, shape, seed + 100 + c, state, record); });
  }
  std::thread saboteur;
  if (shape.saboteur) {
    saboteur = std::thread([&] { sabotage(queue, shape, seed + 200, state, saboteur_record); });
  }
  std::thread redriver;
  if (shape.redrive) {
    redriver = std::thread([&] { redrive_loop(queue, seed + 300, state, redrive_record); });
  }
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < shape.producers; ++p) {
    thread_record& record = result.records[p];
    const std::uint64_t count = shape.close_after == 0 ? shape.per_producer : 0;
    producers.emplace_back([&, p, count] { produce(queue, p, count, seed + p, state, record); });
  }

  if (shape.close_after == 0) {
    for (std::thread& producer : producers) producer.join();
    state.draining = true;
    if (saboteur.joinable()) saboteur.join();
    if (redriver.joinable()) redriver.join();

    // When redriving, bring every dead letter back, so that the consumers acknowledge all of
    // them. Then close, and the consumers stop once the queue is drained.
    if (shape.redrive) {
      while (!state.give_up.load() && !(queue.dead_letters().empty() && queue.size() == 0)) {
        redrive_record.redriven += queue.redrive(16);
        std::this_thread::yield();
      }
    }
    state.closed_by_test = true;
    queue.close();
  } else {
    // Close while the producers send, then let everything in flight finish.
    while (!state.give_up.load() && state.accepted.load() < shape.close_after) {
      std::this_thread::yield();
    }
    state.closed_by_test = true;
    state.draining = true;
    queue.close();
    for (std::thread& producer : producers) producer.join();
    if (saboteur.joinable()) saboteur.join();
    if (redriver.joinable()) redriver.join();
  }
  for (std::thread& consumer : consumers) consumer.join();
  stop_clock = true;
  if (clock_thread.joinable()) clock_thread.join();
  guard.stop();
  result.hung = guard.fired();

  result.stats = queue.stats();
  result.size_after = queue.size();
  while (auto letter = queue.dead_letters().try_receive()) {
    result.letters.push_back({letter->id, letter->body.value(), letter->receive_count,
                              letter->failure_count, letter->reason});
  }
  return result;
}

// Checks a finished run. Returns the problems found, one a line, or an empty string.
std::string check_run(const run_result& run, bool redriven) {
  std::ostringstream problems;
  std::size_t reported = 0;
  const auto problem = [&](const std::string& text) {
    if (++reported <= 20) problems << text << "\n";
  };

  std::map<ringmq::message_id, std::uint64_t> value_of;  // every accepted send
  std::uint64_t nacks = 0;
  std::uint64_t releases = 0;
  std::uint64_t rejects = 0;
  std::uint64_t redriven_count = 0;
  std::uint64_t handouts = 0;
  for (const thread_record& record : run.records) {
    for (const auto& sent : record.sent) {
      if (!value_of.emplace(sent.id, sent.value).second) {
        problem("id " + std::to_string(sent.id) + " returned by two sends");
      }
    }
    if (record.zero_send_ids != 0) problem("a send returned ok with id 0");
    if (record.closed_early != 0) problem("a send returned closed before close()");
    if (record.duplicate_letters != 0) problem("a dead-letter snapshot contained an id twice");
    nacks += record.nacks;
    releases += record.releases;
    rejects += record.rejects.size();
    redriven_count += record.redriven;
    handouts += record.handouts.size();
  }

  // Every accepted message is acknowledged once or is a dead letter once, and nothing else.
  std::map<ringmq::message_id, std::uint64_t> acked_at;  // id -> event number after the ack
  for (const thread_record& record : run.records) {
    for (const auto& ack : record.acks) {
      if (value_of.count(ack.id) == 0) {
        problem("acked id " + std::to_string(ack.id) + " never sent");
      }
      if (!acked_at.emplace(ack.id, ack.finished).second) {
        problem("id " + std::to_string(ack.id) + " acked twice");
      }
    }
  }
  std::map<ringmq::message_id, ringmq::dead_letter_reason> letter_reason;
  for (const letter_record& letter : run.letters) {
    const std::string id = std::to_string(letter.id);
    if (value_of.count(letter.id) == 0) {
      problem("dead letter id " + id + " never sent");
    } else if (letter.value != value_of.at(letter.id)) {
      problem("dead letter id " + id + " has another message's body");
    }
    if (!letter_reason.emplace(letter.id, letter.reason).second) {
      problem("id " + id + " is a dead letter twice");
    }
    if (acked_at.count(letter.id) != 0) problem("id " + id + " is acked and a dead letter");
  }
  for (const auto& [id, value] : value_of) {
    if (acked_at.count(id) == 0 && letter_reason.count(id) == 0) {
      problem("id " + std::to_string(id) + " (body " + std::to_string(value) + ") is lost");
    }
  }

  // Hand-outs: the right body, nothing handed out after its ack, and, without redrive, the
  // hand-outs of each message numbered 1, 2, ... with failure counts that never go down.
  std::map<ringmq::message_id, std::vector<std::pair<std::uint32_t, std::uint32_t>>> counts_of;
  for (const thread_record& record : run.records) {
    for (const auto& handout : record.handouts) {
      const auto sent = value_of.find(handout.id);
      if (sent == value_of.end()) {
        problem("handed out id " + std::to_string(handout.id) + " never sent");
        continue;
      }
      if (handout.value != sent->second) {
        problem("id " + std::to_string(handout.id) + " handed out with another message's body");
      }
      const auto ack = acked_at.find(handout.id);
      if (ack != acked_at.end() && ack->second < handout.started) {
        problem("id " + std::to_string(handout.id) + " handed out after its ack");
      }
      counts_of[handout.id].emplace_back(handout.receive_count, handout.failure_count);
    }
  }
  std::uint64_t final_failures = 0;
  std::uint64_t redeliveries = 0;
  for (auto& [id, counts] : counts_of) {
    std::sort(counts.begin(), counts.end());
    for (const auto& [receives, failures] : counts) {
      if (receives > 1) ++redeliveries;
    }
    if (redriven) continue;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      if (counts[i].first != i + 1) {
        problem("id " + std::to_string(id) + ": hand-out " + std::to_string(i + 1) +
                " has receive_count " + std::to_string(counts[i].first));
        break;
      }
      if (i > 0 && counts[i].second < counts[i - 1].second) {
        problem("id " + std::to_string(id) + ": failure_count went down");
        break;
      }
    }
    if (acked_at.count(id) != 0) final_failures += counts.back().second;
  }
  // Without redrive, each dead letter stays where it arrived. A rejected message is a dead letter
  // with reason rejected, and each dead letter was handed out receive_count times.
  if (!redriven) {
    for (const thread_record& record : run.records) {
      for (const ringmq::message_id id : record.rejects) {
        const auto letter = letter_reason.find(id);
        if (letter == letter_reason.end()) {
          problem("rejected id " + std::to_string(id) + " is not a dead letter");
        } else if (letter->second != ringmq::dead_letter_reason::rejected) {
          problem("rejected id " + std::to_string(id) + " has reason " +
                  std::string(to_string(letter->second)));
        }
      }
    }
    for (const letter_record& letter : run.letters) {
      const std::size_t seen = counts_of.count(letter.id) != 0 ? counts_of.at(letter.id).size() : 0;
      if (letter.receive_count != seen) {
        problem("dead letter id " + std::to_string(letter.id) + " has receive_count " +
                std::to_string(letter.receive_count) + " after " + std::to_string(seen) +
                " hand-outs");
      }
      final_failures += letter.failure_count;
    }
  }

  // The counters of stats() against the records.
  const ringmq::queue_stats& stats = run.stats;
  const auto expect = [&](const char* name, std::uint64_t got, std::uint64_t want) {
    if (got != want) {
      problem(std::string(name) + " is " + std::to_string(got) + ", expected " +
              std::to_string(want));
    }
  };
  expect("size()", run.size_after, 0);
  expect("stats().visible", stats.visible, 0);
  expect("stats().in_flight", stats.in_flight, 0);
  expect("stats().delayed", stats.delayed, 0);
  expect("stats().sent", stats.sent, value_of.size());
  expect("stats().received", stats.received, handouts);
  expect("stats().redelivered", stats.redelivered, redeliveries);
  expect("stats().acked", stats.acked, acked_at.size());
  expect("stats().nacked", stats.nacked, nacks);
  expect("stats().released", stats.released, releases);
  expect("stats().rejected", stats.rejected, rejects);
  expect("stats().redriven", stats.redriven, redriven_count);
  expect("stats().dropped", stats.dropped, 0);
  expect("stats().dead_letters", stats.dead_letters, run.letters.size());
  expect("stats().dead_letters", stats.dead_letters, stats.dead_lettered - stats.redriven);
  expect("stats().sent + redriven", stats.sent + stats.redriven,
         stats.acked + stats.dead_lettered + stats.visible + stats.in_flight + stats.delayed);
  if (!redriven) {
    expect("stats().nacked + expired_leases", stats.nacked + stats.expired_leases, final_failures);
  }
  if (reported > 20) problems << "... and " << reported - 20 << " more\n";
  return problems.str();
}

template <class Clock>
using stress_queue =
    ringmq::work_queue<counted, ringmq::clock<Clock>, ringmq::backoff<ringmq::fixed_backoff>>;

ringmq::queue_config config_for(const traffic& shape) {
  ringmq::queue_config config;
  config.capacity = shape.capacity;
  config.visibility_timeout = 20ms;
  config.max_receive_count = shape.max_receive_count;
  config.retention = shape.retention;
  // Room for every dead letter, so that the checks find each one.
  config.dead_letter_capacity = 2 * shape.producers * shape.per_producer;
  config.backoff = {.initial = 30us, .max = 1ms, .multiplier = 2.0};
  return config;
}

// The shapes every clock runs: thread counts, capacities, retry limits and retention.
std::vector<traffic> shapes() {
  std::vector<traffic> all;
  all.push_back({.producers = 2,
                 .consumers = 2,
                 .per_producer = messages_per_producer(6000),
                 .capacity = 4,
                 .max_receive_count = 3});
  all.push_back({.producers = 4,
                 .consumers = 4,
                 .per_producer = messages_per_producer(3000),
                 .capacity = 16,
                 .max_receive_count = 0});
  all.push_back({.producers = 3,
                 .consumers = 2,
                 .per_producer = messages_per_producer(4000),
                 .capacity = 1,
                 .max_receive_count = 2});
  all.push_back({.producers = 2,
                 .consumers = 3,
                 .per_producer = messages_per_producer(4000),
                 .capacity = 8,
                 .max_receive_count = 4,
                 .retention = 5ms});
  return all;
}

std::string describe(const traffic& shape) {
  std::ostringstream out;
  out << shape.producers << " producers, " << shape.consumers << " consumers, "
      << shape.per_producer << " messages each, capacity " << shape.capacity
      << ", max_receive_count " << shape.max_receive_count << ", retention "
      << (shape.retention == std::chrono::nanoseconds::max()
              ? std::string("none")
              : std::to_string(shape.retention.count()) + " ns")
      << (shape.redrive ? ", redrive" : "") << (shape.saboteur ? ", saboteur" : "")
      << (shape.close_after != 0 ? ", close after " + std::to_string(shape.close_after) + " sends"
                                 : std::string());
  return out.str();
}

// Runs `run_and_destroy`, which must destroy its queue, then checks the run and that every body
// the queue constructed was destroyed exactly once.
void check_counted_bodies(const std::function<run_result()>& run_and_destroy, bool redriven) {
  counted::reset();
  {
    const run_result run = run_and_destroy();
    CHECK_FALSE(run.hung);
    const std::string problems = check_run(run, redriven);
    CHECK(problems == "");
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
}

}  // namespace

TEST_CASE("work_queue: stress settles each message once", "[work_queue][stress]") {
  std::uint64_t seed = 0x5EED0100;
  for (const traffic& shape : shapes()) {
    INFO(describe(shape) << ", seed " << seed);
    check_counted_bodies(
        [&] {
          stress_queue<std::chrono::steady_clock> queue(config_for(shape));
          return run_traffic(queue, shape, seed);
        },
        false);
    seed += 1000;
  }
}

TEST_CASE("work_queue: stress with a ticking manual_clock", "[work_queue][stress]") {
  std::uint64_t seed = 0x5EED0200;
  for (const traffic& shape : shapes()) {
    INFO(describe(shape) << ", seed " << seed);
    check_counted_bodies(
        [&] {
          ringmq::manual_clock clock;
          stress_queue<ringmq::manual_clock> queue(config_for(shape), clock);
          // Each step ends every lease of 50 us within two steps; the sleep lets the consumers
          // run between steps.
          return run_traffic(queue, shape, seed, [&clock] {
            clock.advance(30us);
            std::this_thread::sleep_for(20us);
          });
        },
        false);
    seed += 1000;
  }
}

TEST_CASE("work_queue: stress redrive during consumption", "[work_queue][stress]") {
  std::uint64_t seed = 0x5EED0300;
  for (traffic shape : shapes()) {
    shape.redrive = true;
    INFO(describe(shape) << ", seed " << seed);
    check_counted_bodies(
        [&] {
          stress_queue<std::chrono::steady_clock> queue(config_for(shape));
          return run_traffic(queue, shape, seed);
        },
        true);
    seed += 1000;
  }
}

TEST_CASE("work_queue: stress close under load strands nothing", "[work_queue][stress]") {
  // The queue closes while producers still send. Consumers stop once is_drained() is true, so a
  // message that a send accepted after a consumer saw the queue drained would stay unreceived,
  // and the checks report it as lost.
  std::uint64_t seed = 0x5EED0500;
  for (traffic shape : shapes()) {
    for (int repeat = 0; repeat < 3; ++repeat) {
      shape.close_after = shape.producers * shape.per_producer / 4 * (1 + repeat);
      INFO(describe(shape) << ", seed " << seed);
      check_counted_bodies(
          [&] {
            stress_queue<std::chrono::steady_clock> queue(config_for(shape));
            return run_traffic(queue, shape, seed);
          },
          false);
      seed += 1000;
    }
  }
}

TEST_CASE("work_queue: stress close wakes waiting calls", "[work_queue][stress]") {
  // Each round blocks senders on a full queue and receivers on three queues that are empty or
  // about to be, then closes the queues after a random pause. A blocked send must return
  // closed. A waiting receive must return once its queue is drained: at once when it contains
  // nothing, else when the last held message is acknowledged, dead-lettered or handed out.
  using steady_queue = ringmq::work_queue<std::uint64_t>;
  using manual_queue = ringmq::work_queue<std::uint64_t, ringmq::clock<ringmq::manual_clock>>;
  const int rounds = ringmq_test::thread_sanitizer ? 60 : 300;
  std::mt19937_64 random(0x5EED0400);
  const auto wait_limit = 30s;

  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    steady_queue full({.capacity = 2});
    REQUIRE(full.try_send(1));
    REQUIRE(full.try_send(2));
    // Receivers wait here while one more thread races close() with a send.
    steady_queue racing({.capacity = 4});
    // A receiver waits here for a message that never comes: only close() can end its wait.
    steady_queue idle({.capacity = 1});
    // A receiver waits here while the main thread has the only message's lease, which ends only
    // if the clock moves.
    ringmq::manual_clock clock;
    manual_queue leased({.capacity = 2}, clock);
    REQUIRE(leased.try_send(3));
    const std::optional<manual_queue::delivery_type> held_lease = leased.try_receive();
    REQUIRE(held_lease.has_value());

    std::atomic<int> started{0};
    std::atomic<bool> late{false};  // a call returned only after its whole wait
    std::array<ringmq::send_status, 2> send_results{};
    std::atomic<std::uint64_t> racing_acked{0};  // sum of the bodies acknowledged
    std::atomic<int> unexpected_results{0};      // acks that returned false, messages from `idle`
    std::atomic<std::uint64_t> leased_handouts{0};
    ringmq::send_result racing_send;

    watchdog guard(60s, [&] {
      // A sender that missed the close sleeps until room appears: make some.
      while (std::optional<steady_queue::delivery_type> got = full.try_receive()) {
        static_cast<void>(full.ack(got->receipt()));
      }
    });
    const auto timed = [&](auto call) {
      ++started;
      const auto begin = std::chrono::steady_clock::now();
      call();
      if (std::chrono::steady_clock::now() - begin >= wait_limit) late = true;
    };
    // A receiver acknowledges only after close(), so that the acknowledgement, which drains
    // the queue, is what must wake the other receiver.
    std::atomic<bool> closed{false};
    const auto ack_racing = [&](const steady_queue::delivery_type& got) {
      while (!closed.load()) std::this_thread::yield();
      if (racing.ack(got.receipt())) {
        racing_acked += got.body();
      } else {
        ++unexpected_results;
      }
    };

    std::vector<std::thread> threads;
    threads.emplace_back([&] { timed([&] { send_results[0] = full.send(10).status; }); });
    threads.emplace_back(
        [&] { timed([&] { send_results[1] = full.send_for(11, wait_limit).status; }); });
    threads.emplace_back([&] {
      timed([&] {
        if (const auto got = racing.receive_for(wait_limit)) ack_racing(*got);
      });
    });
    threads.emplace_back([&] {
      timed([&] {
        std::vector<steady_queue::delivery_type> out;
        racing.receive_batch_for(std::back_inserter(out), 4, wait_limit);
        for (const auto& got : out) ack_racing(got);
      });
    });
    threads.emplace_back([&] {
      timed([&] {
        if (idle.receive_for(wait_limit)) ++unexpected_results;
      });
    });
    threads.emplace_back([&] {
      timed([&] {
        if (const auto got = leased.receive_for(wait_limit)) {
          ++leased_handouts;
          if (!leased.ack(got->receipt())) ++unexpected_results;
        }
      });
    });
    threads.emplace_back([&] {
      ++started;
      racing_send = racing.try_send(1000);
    });

    while (started.load() < static_cast<int>(threads.size())) std::this_thread::yield();
    const std::uint64_t pause = random() % 4;
    if (pause == 1) std::this_thread::yield();
    if (pause >= 2) std::this_thread::sleep_for(std::chrono::microseconds(random() % 2000));
    racing.close();
    full.close();
    idle.close();
    leased.close();
    closed = true;

    // End the held lease in one of the ways that drain the queue or hand the message out.
    const std::uint64_t ending = random() % 3;
    if (ending == 0) {
      CHECK(leased.ack(held_lease->receipt()));
    } else if (ending == 1) {
      CHECK(leased.reject(held_lease->receipt(), "drained by the test"));
    } else {
      clock.advance(1h);  // the waiting receiver rereads the clock and gets the message
    }
    for (std::thread& thread : threads) thread.join();
    guard.stop();

    REQUIRE_FALSE(guard.fired());
    REQUIRE_FALSE(late.load());
    CHECK(send_results[0] == ringmq::send_status::closed);
    CHECK(send_results[1] == ringmq::send_status::closed);
    CHECK(unexpected_results.load() == 0);
    CHECK(leased_handouts.load() == (ending == 2 ? 1U : 0U));
    CHECK(leased.is_drained());
    CHECK(racing.is_drained());
    // Only the racing message has body 1000: it was acknowledged once, or never accepted.
    if (racing_send.ok()) {
      CHECK(racing_acked.load() == 1000);
    } else {
      CHECK(racing_send.status == ringmq::send_status::closed);
      CHECK(racing_acked.load() == 0);
    }
    CHECK(full.stats().visible == 2);
  }
}
