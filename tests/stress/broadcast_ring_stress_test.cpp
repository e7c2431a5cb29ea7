// Stress tests of ringmq::broadcast_ring: writers publishing through small rings while readers
// read at different speeds with a random mix of every read call, and other readers join, read a
// while and leave again.
//
// Fixed readers join before publishing starts and must read every element, in one order that
// keeps each producer's order. Each churning reader's session must read a contiguous run of that
// order, starting at its position() at join. That start must be at least the count of publishes
// that had returned before try_join was called, and at most the count of those that had started
// when it returned.
//
// Item counts shrink under ThreadSanitizer, which makes these tests many times slower.
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <ringmq/broadcast_ring.hpp>

#include "support/close_watchdog.hpp"
#include "support/counted.hpp"
#include "support/deliveries.hpp"
#include "support/preempt_build.hpp"
#include "support/ring_configs.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringmq_test::counted;

namespace {

constexpr auto hang_limit = std::chrono::seconds(ringmq_test::thread_sanitizer ? 600 : 120);

template <class Producers, class WaitPolicy>
struct stress_setup {
  static constexpr bool multi_producer =
      std::is_same_v<Producers, ringmq::producers<ringmq::multi>>;
  template <class T>
  using ring_type = ringmq::broadcast_ring<T, Producers, ringmq::wait<WaitPolicy>>;

  // Elements per producer in one run. A run has up to nine threads, more than most test machines
  // have cores, and wait<park> spins for a while before it sleeps, holding a core that the thread
  // it waits for may need. So park runs carry a fifth of the elements. The algorithm is the same
  // under the other policies, whose runs carry the full count.
  static constexpr std::uint32_t items() {
    std::uint32_t count = multi_producer ? 5000 : 20000;
    if (std::is_same_v<WaitPolicy, ringmq::park>) count /= 5;
    return ringmq_test::preempt_scaled(ringmq_test::thread_sanitizer ? count / 5 : count);
  }
};

using single_park = stress_setup<ringmq::producers<ringmq::single>, ringmq::park>;
using single_yield = stress_setup<ringmq::producers<ringmq::single>, ringmq::yield>;
using single_sleep_only = stress_setup<ringmq::producers<ringmq::single>, ringmq_test::sleep_only>;
using multi_park = stress_setup<ringmq::producers<ringmq::multi>, ringmq::park>;
using multi_yield = stress_setup<ringmq::producers<ringmq::multi>, ringmq::yield>;
using multi_sleep_only = stress_setup<ringmq::producers<ringmq::multi>, ringmq_test::sleep_only>;

constexpr std::size_t producer_threads = 3;
constexpr std::size_t fixed_readers = 2;
constexpr std::size_t churning_readers = 2;
// Sessions kept per churning thread for the checks. Later sessions run unrecorded.
constexpr std::size_t max_recorded_sessions = 400;

std::uint64_t value_of(std::uint64_t element) { return element; }
std::uint64_t value_of(const counted& element) { return element.value(); }

// Publish counters shared by every producer: a publish counts as started before its first
// attempt and as returned after it returned true.
struct publish_counts {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> returned{0};
};

// Publishes `value` with a random publishing call, retrying try_ and timed calls until they
// succeed. Returns false once the ring is closed.
template <class Ring>
bool publish_one(Ring& ring, std::mt19937_64& random, std::uint64_t value, publish_counts& counts) {
  using T = typename Ring::value_type;
  counts.started.fetch_add(1);
  bool published = false;
  switch (random() % 7) {
    case 0:
      published = ring.publish(T(value));
      break;
    case 1: {
      const T element(value);
      published = ring.publish(element);
      break;
    }
    case 2:
      published = ring.emplace(value);
      break;
    default:
      for (;;) {
        const unsigned call = static_cast<unsigned>(random() % 4);
        if (call == 0) {
          published = ring.try_publish(T(value));
        } else if (call == 1) {
          const T element(value);
          published = ring.try_publish(element);
        } else if (call == 2) {
          published = ring.try_emplace(value);
        } else {
          published = ring.publish_for(T(value), 1ms);
        }
        if (published || ring.is_closed()) break;
        std::this_thread::yield();
      }
      break;
  }
  if (published) counts.returned.fetch_add(1);
  return published;
}

// Reads with a random mix of every read call, appending values to `values`, until `want` values
// are read or the ring is closed and this reader has read everything. With `slow`, it yields after
// every element.
template <class Ring>
void read_some(Ring& ring, typename Ring::reader& reader, std::mt19937_64& random, std::size_t want,
               bool slow, std::vector<std::uint64_t>& values) {
  using T = typename Ring::value_type;
  const std::size_t goal = values.size() + want;
  const auto record = [&](const T& element) { values.push_back(value_of(element)); };
  while (values.size() < goal) {
    const std::size_t left = goal - values.size();
    const std::size_t batch = 1 + random() % std::min<std::size_t>(left, 8);
    bool got = false;
    switch (random() % 6) {
      case 0:
        got = reader.try_read(record);
        break;
      case 1:
        if (std::optional<T> copy = reader.try_read()) {
          values.push_back(value_of(*copy));
          got = true;
        }
        break;
      case 2:
        got = reader.try_read_batch(record, batch) != 0;
        break;
      case 3:
        if (!reader.read(record)) return;  // closed and drained
        got = true;
        break;
      case 4:
        got = reader.read_for(record, 1ms);
        break;
      case 5:
        got = reader.read_batch_for(record, batch, 1ms) != 0;
        break;
    }
    if (!got && ring.is_closed()) {
      // Nothing ready and closed: take what is left, then read() reports the ring drained.
      while (values.size() < goal && reader.read(record)) {
      }
      return;
    }
    if (!got || slow) std::this_thread::yield();
  }
}

// One join of a churning reader.
struct session {
  std::uint64_t returned_before = 0;  // publishes that had returned before try_join was called
  std::uint64_t start = 0;            // position() right after the join
  std::uint64_t started_after = 0;    // publishes that had started when try_join returned
  std::vector<std::uint64_t> values;  // read in order
};

// Joins, reads a random number of elements and leaves, over and over, until `stop` is set or,
// with `stop_when_recorded`, until it has recorded max_recorded_sessions sessions.
template <class Ring>
void churn(Ring& ring, std::uint64_t seed, const publish_counts& counts,
           const std::atomic<bool>& stop, bool stop_when_recorded, std::vector<session>& sessions) {
  std::mt19937_64 random(seed);
  while (!stop.load()) {
    if (stop_when_recorded && sessions.size() == max_recorded_sessions) return;
    session current;
    current.returned_before = counts.returned.load();
    std::optional<typename Ring::reader> reader = ring.try_join();
    current.started_after = counts.started.load();
    if (!reader) {
      std::this_thread::yield();  // every place is taken, or the ring is closed
      continue;
    }
    current.start = reader->position();
    const std::size_t want = random() % (3 * ring.capacity() + 4);
    read_some(ring, *reader, random, want, random() % 4 == 0, current.values);
    reader.reset();
    if (sessions.size() < max_recorded_sessions) sessions.push_back(std::move(current));
  }
}

// Checks every session against `order`, the sequence every fixed reader saw. Returns a
// description of the first mismatch, or "".
std::string check_sessions(const std::vector<std::vector<session>>& all_sessions,
                           const std::vector<std::uint64_t>& order) {
  for (std::size_t thread = 0; thread < all_sessions.size(); ++thread) {
    for (std::size_t index = 0; index < all_sessions[thread].size(); ++index) {
      const session& one = all_sessions[thread][index];
      const std::string name =
          "session " + std::to_string(index) + " of churning thread " + std::to_string(thread);
      if (one.start < one.returned_before) {
        return name + " started at " + std::to_string(one.start) + ", before " +
               std::to_string(one.returned_before) + " publishes that had returned";
      }
      if (one.start > one.started_after) {
        return name + " started at " + std::to_string(one.start) + ", after the " +
               std::to_string(one.started_after) + " publishes started by the end of its join";
      }
      if (one.start + one.values.size() > order.size()) {
        return name + " read past the end of the published sequence";
      }
      for (std::size_t k = 0; k < one.values.size(); ++k) {
        if (one.values[k] != order[one.start + k]) {
          return name + " read " + std::to_string(one.values[k]) + " at sequence " +
                 std::to_string(one.start + k) + ", where the fixed readers read " +
                 std::to_string(order[one.start + k]);
        }
      }
    }
  }
  return "";
}

// What the threads of one run recorded; the main thread checks it after joining them.
struct run_record {
  std::vector<std::vector<std::uint64_t>> fixed_logs;
  std::vector<std::vector<session>> sessions;
  std::vector<std::uint64_t> accepted;  // per producer, publishes that returned true
  bool hung = false;
};

// Runs `producers` threads that each publish `count` items through `ring`, with fixed and
// churning readers, then closes the ring and lets the fixed readers drain it.
template <class Ring>
void run(Ring& ring, std::size_t producers, std::uint32_t count, std::uint64_t seed,
         run_record& record) {
  record.fixed_logs.assign(fixed_readers, {});
  record.sessions.assign(churning_readers, {});
  record.accepted.assign(producers, 0);
  publish_counts counts;
  std::atomic<bool> stop_churning{false};

  // Fixed readers join before anything is published, so each must see every element.
  std::vector<typename Ring::reader> fixed;
  for (std::size_t index = 0; index < fixed_readers; ++index) {
    std::optional<typename Ring::reader> joined = ring.try_join();
    REQUIRE(joined);
    REQUIRE(joined->position() == 0);
    fixed.push_back(std::move(*joined));
  }

  ringmq_test::close_watchdog<Ring> watchdog(ring, hang_limit);
  std::vector<std::thread> readers;
  for (std::size_t index = 0; index < fixed_readers; ++index) {
    readers.emplace_back([&, index] {
      std::mt19937_64 random(seed + 100 + index);
      // The first reader reads as fast as it can; the second yields after every element.
      read_some(ring, fixed[index], random, SIZE_MAX, index == 1, record.fixed_logs[index]);
    });
  }
  for (std::size_t index = 0; index < churning_readers; ++index) {
    readers.emplace_back([&, index] {
      churn(ring, seed + 200 + index, counts, stop_churning, false, record.sessions[index]);
    });
  }
  std::vector<std::thread> writers;
  for (std::size_t producer = 0; producer < producers; ++producer) {
    writers.emplace_back([&, producer] {
      std::mt19937_64 random(seed + producer);
      for (std::uint32_t index = 0; index < count; ++index) {
        const std::uint64_t item = producers == 1 ? index : ringmq_test::make_item(producer, index);
        if (!publish_one(ring, random, item, counts)) return;
        ++record.accepted[producer];
      }
    });
  }

  for (std::thread& writer : writers) writer.join();
  stop_churning = true;
  ring.close();
  for (std::thread& reader : readers) reader.join();
  watchdog.stop();
  record.hung = watchdog.fired();
}

// Runs one producer that publishes 0, 1, 2, ... with try_ calls, gated only by churning readers,
// until each churning thread has recorded max_recorded_sessions sessions. With no other reader
// joined, the producer refreshes its gate about once per lap, so a join that a producer misses
// and that starts too early finds its first element overwritten.
template <class Ring>
void run_free_writer(Ring& ring, std::uint64_t seed, run_record& record) {
  record.sessions.assign(churning_readers, {});
  record.accepted.assign(1, 0);
  publish_counts counts;
  std::atomic<bool> stop_writing{false};
  const std::atomic<bool> never{false};

  ringmq_test::close_watchdog<Ring> watchdog(ring, hang_limit);
  std::thread writer([&] {
    std::uint64_t& sent = record.accepted[0];
    while (!stop_writing.load()) {
      counts.started.fetch_add(1);
      while (!ring.try_publish(std::uint64_t{sent})) {
        if (stop_writing.load() || ring.is_closed()) return;
        std::this_thread::yield();
      }
      counts.returned.fetch_add(1);
      ++sent;
    }
  });
  std::vector<std::thread> readers;
  for (std::size_t index = 0; index < churning_readers; ++index) {
    readers.emplace_back(
        [&, index] { churn(ring, seed + index, counts, never, true, record.sessions[index]); });
  }

  for (std::thread& reader : readers) reader.join();
  stop_writing = true;
  writer.join();
  ring.close();
  watchdog.stop();
  record.hung = watchdog.fired();
}

}  // namespace

TEMPLATE_TEST_CASE("broadcast_ring: joins race a free-running writer", "[broadcast_ring][stress]",
                   single_park, single_yield, multi_park, multi_yield) {
  for (const std::size_t capacity : {1, 2, 8}) {
    INFO("capacity " << capacity);
    typename TestType::template ring_type<std::uint64_t> ring(capacity, 4);
    run_record record;
    run_free_writer(ring, 31 + capacity, record);
    REQUIRE_FALSE(record.hung);

    std::vector<std::uint64_t> order(record.accepted[0]);
    for (std::uint64_t index = 0; index < order.size(); ++index) order[index] = index;
    CHECK(check_sessions(record.sessions, order) == "");
    for (std::size_t index = 0; index < churning_readers; ++index) {
      CHECK(record.sessions[index].size() == max_recorded_sessions);
    }
  }
}

TEMPLATE_TEST_CASE("broadcast_ring: readers see contiguous runs", "[broadcast_ring][stress]",
                   single_park, single_yield, single_sleep_only) {
  for (const std::size_t capacity : {1, 4, 64}) {
    INFO("capacity " << capacity);
    typename TestType::template ring_type<std::uint64_t> ring(capacity, 6);
    run_record record;
    constexpr std::uint32_t items = TestType::items();
    run(ring, 1, items, 7 + capacity, record);
    REQUIRE_FALSE(record.hung);
    REQUIRE(record.accepted[0] == items);

    std::vector<std::uint64_t> order(items);
    for (std::uint32_t index = 0; index < items; ++index) order[index] = index;
    for (std::size_t index = 0; index < fixed_readers; ++index) {
      INFO("fixed reader " << index);
      CHECK(record.fixed_logs[index] == order);
    }
    CHECK(check_sessions(record.sessions, order) == "");
    CHECK(ring.reader_count() == 0);
  }
}

TEMPLATE_TEST_CASE("broadcast_ring: producers keep order and completeness",
                   "[broadcast_ring][stress]", multi_park, multi_yield, multi_sleep_only) {
  for (const std::size_t capacity : {2, 16}) {
    INFO("capacity " << capacity);
    counted::reset();
    constexpr std::uint32_t items = TestType::items();
    run_record record;
    {
      typename TestType::template ring_type<counted> ring(capacity, 6);
      run(ring, producer_threads, items, 11 + capacity, record);
      CHECK(ring.reader_count() == 0);
    }
    REQUIRE_FALSE(record.hung);
    for (std::size_t producer = 0; producer < producer_threads; ++producer) {
      REQUIRE(record.accepted[producer] == items);
    }

    // Every fixed reader saw every item once, each producer's in order, and all in one order.
    const std::vector<std::uint64_t>& order = record.fixed_logs[0];
    for (std::size_t index = 0; index < fixed_readers; ++index) {
      INFO("fixed reader " << index);
      CHECK(ringmq_test::check_deliveries({record.fixed_logs[index]}, record.accepted) == "");
      CHECK(record.fixed_logs[index] == order);
    }
    CHECK(check_sessions(record.sessions, order) == "");

    CHECK(counted::live() == 0);
    CHECK(counted::constructions() == counted::destructions());
    CHECK(counted::errors() == 0);
  }
}
