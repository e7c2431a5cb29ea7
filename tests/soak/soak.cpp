// Long-run soak test: for a set time, many threads call a work queue and a ring with random
// operations, among them advances of the queue's manual clock. Not part of the default test run;
// the soak preset builds and runs it (see docs/testing.md).
//
// What it checks:
//   - Every message body handed out by a receive or taken from the dead-letter queue is the body
//     that was sent for it, so nothing is invented or corrupted.
//   - A message is finished once at most: acknowledged, or taken out of the dead-letter queue by
//     the test. A second finish of the same message fails the run at once.
//   - At every checkpoint (once per second by default) all threads pause, and the counts balance:
//       sent = acked + visible + in_flight + delayed + dead letters held + dropped + taken
//     for the work queue, and pushed = popped + size() for the ring. The queue's own counters
//     must agree with the test's: stats().sent, stats().acked.
//   - Memory stays flat. Live heap bytes allocated after the queue and ring were built are
//     counted by replacing operator new and delete. After the first quarter of the run they may
//     exceed that quarter's largest reading (the first checkpoint excluded) by at most 1 MiB
//     plus 10 %. The queue and ring are bounded, so a steady run keeps a bounded number of
//     bodies, while a leak of even one body per thousand messages grows without bound.
//
// Settings, from the environment:
//   RINGMQ_SOAK_SECONDS   run time, default 600
//   RINGMQ_SOAK_THREADS   worker threads for the work queue, default 12 (the ring gets 4 more)
//   RINGMQ_SOAK_SEED      seed of the random operations, default from the clock (printed)
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ringmq/ring.hpp>
#include <ringmq/work_queue.hpp>

// Live heap bytes, counted by replacing the global allocation functions. The array and nothrow
// forms of the standard library call these.
namespace {
std::atomic<std::int64_t> live_heap_bytes{0};

void* counted_allocate(std::size_t size, std::size_t alignment) {
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(size == 0 ? 1 : size)
                : std::aligned_alloc(alignment, (std::max<std::size_t>(size, 1) + alignment - 1) /
                                                    alignment * alignment);
  if (p == nullptr) throw std::bad_alloc();
  live_heap_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)),
                            std::memory_order_relaxed);
  return p;
}

void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  live_heap_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)),
                            std::memory_order_relaxed);
  std::free(p);
}
}  // namespace

void* operator new(std::size_t size) { return counted_allocate(size, alignof(std::max_align_t)); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  return counted_allocate(size, static_cast<std::size_t>(alignment));
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }

namespace {

using namespace std::chrono_literals;
using soak_clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "soak: FAILED: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::uint64_t setting(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (*end != '\0') {
    std::fprintf(stderr, "soak: %s=%s is not a whole number; pass digits only\n", name, text);
    std::exit(2);
  }
  return value;
}

long resident_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// The body of the message with test number n: the number, then filler whose length and letter
// follow from n, so that a receive can check the whole body.
std::string body_for(std::uint64_t n) {
  std::string body = std::to_string(n) + ':';
  body.append(n % 200, static_cast<char>('a' + n % 26));
  return body;
}

std::uint64_t checked_number(const std::string& body, const char* where) {
  const std::size_t colon = body.find(':');
  if (colon == std::string::npos) fail(std::string(where) + ": body without a number: " + body);
  const std::uint64_t n = std::stoull(body.substr(0, colon));
  if (body != body_for(n)) fail(std::string(where) + ": body of message " + std::to_string(n) +
                                " was changed: " + body);
  return n;
}

// One bit per test number, set when the message is finished: acked, or taken from the
// dead-letter queue. Senders stop when the numbers run out.
class finish_bits {
 public:
  explicit finish_bits(std::uint64_t count) : words_((count + 63) / 64) {}
  std::uint64_t limit() const noexcept { return words_.size() * 64; }
  void finish(std::uint64_t n, const char* how) {
    const std::uint64_t bit = std::uint64_t{1} << (n % 64);
    if (words_[n / 64].fetch_or(bit, std::memory_order_relaxed) & bit) {
      fail("message " + std::to_string(n) + " finished twice, the second time by " + how);
    }
  }

 private:
  std::vector<std::atomic<std::uint64_t>> words_;
};

using queue_type = ringmq::work_queue<std::string, ringmq::clock<ringmq::manual_clock>>;
using delivery_type = queue_type::delivery_type;
using ring_type = ringmq::ring<std::uint64_t>;

struct totals {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> taken{0};  // dead letters taken out by the test
  std::atomic<std::uint64_t> next_number{0};
  std::atomic<std::uint64_t> pushed{0};
  std::atomic<std::uint64_t> popped{0};
};

// A pause point shared by every thread: the checker raises `pause`, every worker arrives at the
// barrier, the checker checks alone, and a second barrier phase releases everyone.
struct checkpoint {
  explicit checkpoint(std::ptrdiff_t threads) : gate(threads) {}
  std::atomic<bool> pause{false};
  std::atomic<bool> stop{false};
  std::barrier<> gate;

  // Called by workers between operations. Returns false when the run is over.
  bool keep_going() {
    if (pause.load(std::memory_order_acquire)) {
      gate.arrive_and_wait();  // everyone paused
      gate.arrive_and_wait();  // check done
    }
    return !stop.load(std::memory_order_acquire);
  }
};

void queue_worker(queue_type& queue, ringmq::manual_clock& clock, totals& count,
                  finish_bits& finished, checkpoint& point, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  // Receipts held back with their message's test number, acked later, often after expiry.
  std::vector<std::pair<ringmq::receipt, std::uint64_t>> kept;
  std::vector<delivery_type> batch;
  auto chance = [&](unsigned percent) { return random() % 100 < percent; };

  auto settle = [&](const delivery_type& d) {
    checked_number(d.body(), "receive");
    const unsigned roll = random() % 100;
    if (roll < 45) {
      if (queue.ack(d.receipt())) {
        finished.finish(checked_number(d.body(), "ack"), "ack");
        count.acked.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (roll < 55) {
      queue.nack(d.receipt());
    } else if (roll < 60) {
      queue.nack(d.receipt(), std::chrono::milliseconds(random() % 50));
    } else if (roll < 67) {
      queue.release(d.receipt());
    } else if (roll < 70) {
      queue.reject(d.receipt(), "soak reject");
    } else if (roll < 80) {
      if (queue.extend(d.receipt(), std::chrono::milliseconds(random() % 400)) &&
          queue.ack(d.receipt())) {
        finished.finish(checked_number(d.body(), "ack after extend"), "ack after extend");
        count.acked.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      kept.emplace_back(d.receipt(), checked_number(d.body(), "receive"));
    }
  };

  while (point.keep_going()) {
    const unsigned roll = random() % 100;
    if (roll < 35) {
      const std::uint64_t n = count.next_number.fetch_add(1, std::memory_order_relaxed);
      if (n >= finished.limit()) continue;
      ringmq::send_options options;
      if (chance(10)) options.delay = std::chrono::milliseconds(random() % 100);
      // The number is taken before the send, so a full queue wastes it: its bit stays clear.
      if (queue.try_send(body_for(n), options)) count.sent.fetch_add(1, std::memory_order_relaxed);
    } else if (roll < 70) {
      ringmq::receive_options options;
      if (chance(5)) options.visibility_timeout = std::chrono::milliseconds(random() % 5);
      if (auto d = queue.try_receive(options)) settle(*d);
    } else if (roll < 80) {
      batch.clear();
      queue.try_receive_batch(std::back_inserter(batch), 1 + random() % 8);
      for (const delivery_type& d : batch) settle(d);
    } else if (roll < 88) {
      if (!kept.empty()) {
        // An ack of a kept receipt: it works only if the lease still runs.
        const auto [r, number] = kept.back();
        kept.pop_back();
        if (queue.ack(r)) {
          finished.finish(number, "late ack");
          count.acked.fetch_add(1, std::memory_order_relaxed);
        }
      }
    } else if (roll < 92) {
      queue.redrive(1 + random() % 4);
    } else if (roll < 97) {
      if (auto letter = queue.dead_letters().try_receive()) {
        finished.finish(checked_number(letter->body, "dead letter"), "dead-letter take");
        count.taken.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      clock.advance(std::chrono::milliseconds(random() % 20));
    }
    if (kept.size() > 64) kept.erase(kept.begin(), kept.begin() + 32);
  }
}

void ring_producer(ring_type& ring, totals& count, checkpoint& point, std::uint64_t producer) {
  std::uint64_t next = 0;
  std::mt19937_64 random(producer);
  while (point.keep_going()) {
    const std::uint64_t value = (producer << 40) | next;
    bool pushed = false;
    if (random() % 4 == 0) {
      pushed = ring.push_for(value, std::chrono::microseconds(200));
    } else {
      pushed = ring.try_push(std::uint64_t{value});
    }
    if (pushed) {
      ++next;
      count.pushed.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void ring_consumer(ring_type& ring, totals& count, checkpoint& point, std::uint64_t producers) {
  std::vector<std::uint64_t> last(producers, 0);
  std::vector<bool> seen(producers, false);
  std::vector<std::uint64_t> bulk(16);
  std::mt19937_64 random(producers * 977);
  auto check = [&](std::uint64_t value) {
    const std::uint64_t producer = value >> 40;
    const std::uint64_t number = value & ((std::uint64_t{1} << 40) - 1);
    if (producer >= producers) fail("ring: popped a value no producer pushed: " +
                                    std::to_string(value));
    if (seen[producer] && number <= last[producer]) {
      fail("ring: producer " + std::to_string(producer) + "'s element " +
           std::to_string(number) + " popped after " + std::to_string(last[producer]));
    }
    seen[producer] = true;
    last[producer] = number;
    count.popped.fetch_add(1, std::memory_order_relaxed);
  };
  while (point.keep_going()) {
    if (random() % 3 == 0) {
      const std::size_t got = ring.try_pop_bulk(bulk.begin(), bulk.size());
      for (std::size_t i = 0; i < got; ++i) check(bulk[i]);
    } else if (auto value = ring.pop_for(std::chrono::microseconds(200))) {
      check(*value);
    }
  }
}

}  // namespace

int main() {
  const std::uint64_t seconds = setting("RINGMQ_SOAK_SECONDS", 600);
  const std::uint64_t queue_threads = std::max<std::uint64_t>(setting("RINGMQ_SOAK_THREADS", 12), 1);
  const std::uint64_t seed = setting(
      "RINGMQ_SOAK_SEED", static_cast<std::uint64_t>(soak_clock::now().time_since_epoch().count()));
  constexpr std::uint64_t ring_producers = 2;
  constexpr std::uint64_t ring_consumers = 2;
  std::printf("soak: %" PRIu64 " s, %" PRIu64 " queue threads, %" PRIu64
              " ring threads, RINGMQ_SOAK_SEED=%" PRIu64 "\n",
              seconds, queue_threads, ring_producers + ring_consumers, seed);

  // Room for 2^31 messages in 256 MiB of bits. A 600 s run on a 2-core VM sent 294 million,
  // about a seventh of the room.
  finish_bits finished(std::uint64_t{1} << 31);
  ringmq::manual_clock clock;
  queue_type queue({.capacity = 1024,
                    .visibility_timeout = 100ms,
                    .max_receive_count = 4,
                    .dead_letter_capacity = 256},
                   clock);
  ring_type ring(256);
  totals count;

  // The finish bits, queue and ring are allocated by now, so the check follows later growth.
  const std::int64_t fixed_heap = live_heap_bytes.load();
  const std::uint64_t workers = queue_threads + ring_producers + ring_consumers;
  checkpoint point(static_cast<std::ptrdiff_t>(workers + 1));
  std::vector<std::thread> threads;
  for (std::uint64_t i = 0; i < queue_threads; ++i) {
    threads.emplace_back([&, i] {
      queue_worker(queue, clock, count, finished, point, seed * 1'000'003 + i);
    });
  }
  for (std::uint64_t i = 0; i < ring_producers; ++i) {
    threads.emplace_back([&, i] { ring_producer(ring, count, point, i); });
  }
  for (std::uint64_t i = 0; i < ring_consumers; ++i) {
    threads.emplace_back([&] { ring_consumer(ring, count, point, ring_producers); });
  }

  const auto start = soak_clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::int64_t baseline = 0;
  std::uint64_t checkpoints = 0;
  for (;;) {
    std::this_thread::sleep_for(1s);
    const bool last = soak_clock::now() >= end;
    point.pause.store(true, std::memory_order_release);
    point.gate.arrive_and_wait();  // every worker is between operations

    const ringmq::queue_stats stats = queue.stats();
    const std::uint64_t sent = count.sent.load();
    const std::uint64_t acked = count.acked.load();
    const std::uint64_t taken = count.taken.load();
    const std::uint64_t held = stats.visible + stats.in_flight + stats.delayed +
                               stats.dead_letters + stats.dropped + taken;
    if (stats.sent != sent || stats.acked != acked || sent != acked + held) {
      fail("work queue counts do not balance: sent " + std::to_string(sent) + " (queue says " +
           std::to_string(stats.sent) + "), acked " + std::to_string(acked) + " (queue says " +
           std::to_string(stats.acked) + "), visible " + std::to_string(stats.visible) +
           ", in flight " + std::to_string(stats.in_flight) + ", delayed " +
           std::to_string(stats.delayed) + ", dead letters " + std::to_string(stats.dead_letters) +
           ", dropped " + std::to_string(stats.dropped) + ", taken " + std::to_string(taken));
    }
    const std::uint64_t pushed = count.pushed.load();
    const std::uint64_t popped = count.popped.load();
    if (pushed != popped + ring.size()) {
      fail("ring counts do not balance: pushed " + std::to_string(pushed) + ", popped " +
           std::to_string(popped) + ", size " + std::to_string(ring.size()));
    }

    ++checkpoints;
    const auto elapsed = soak_clock::now() - start;
    const std::int64_t heap = live_heap_bytes.load() - fixed_heap;
    if (checkpoints >= 2 && elapsed <= (end - start) / 4) baseline = std::max(baseline, heap);
    const std::int64_t allowed = baseline + std::max<std::int64_t>(baseline / 10, 0) + (1 << 20);
    if (baseline != 0 && elapsed > (end - start) / 4 && heap > allowed) {
      fail("live heap grew to " + std::to_string(heap) + " bytes, past the allowed " +
           std::to_string(allowed) + " (largest reading of the first quarter: " +
           std::to_string(baseline) + ")");
    }
    if (checkpoints % 30 == 0 || last) {
      std::printf("soak: %3lld s  sent %" PRIu64 "  acked %" PRIu64 "  dead-lettered %" PRIu64
                  "  ring pushed %" PRIu64 "  heap %lld KiB  rss %ld KiB\n",
                  static_cast<long long>(
                      std::chrono::duration_cast<std::chrono::seconds>(elapsed).count()),
                  sent, acked, stats.dead_lettered, pushed, static_cast<long long>(heap / 1024),
                  resident_kib());
      std::fflush(stdout);
    }
    if (last) point.stop.store(true, std::memory_order_release);
    point.pause.store(false, std::memory_order_release);
    point.gate.arrive_and_wait();  // release the workers
    if (last) break;
  }
  for (std::thread& thread : threads) thread.join();
  std::printf("soak: passed, %" PRIu64 " checkpoints\n", checkpoints);
  return 0;
}
