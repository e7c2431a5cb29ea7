// Benchmarks of fan-out from one writer to several readers, every reader receiving every item:
// through one ringmq::broadcast_ring, and through separate ringmq::ring instances, one per reader,
// into each of which the writer pushes a copy. Both run in one binary, so that their ratios
// compare runs on the same machine under the same load.
//
// Every benchmark is named BM_broadcast_<queue>_<element>_<shape>. The shapes:
//   1w<R>r      one writer thread and R reader threads (R = 1, 2 or 4). One iteration moves
//               items_per_iteration items from the writer to every reader.
//   frame<R>r   one thread, as in a frame-based program whose systems run one after another:
//               it publishes a frame of frame_size items, then reads the frame through each of
//               R readers in turn. No thread waits, so this shape measures the work of the
//               fan-out itself, without the scheduling that dominates the threaded shape on a
//               machine with fewer cores than threads. It is timed in CPU time, the threaded
//               shape in real time.
// The queues, each with capacity 1024 and the default wait<park>:
//   ring                  ringmq::broadcast_ring<T> (one writer, slot_layout<padded>). Readers
//                         call try_read(visit) once per item.
//   ring_batch            the same; readers call try_read_batch(visit, max), which visits every
//                         ready item and stores the reader's cursor once per batch.
//   ring_packed, ring_packed_batch   the same two with slot_layout<packed>: elements back to
//                         back instead of one per cache line.
//   separate_rings        one ringmq::ring<T, producers<single>, consumers<single>> per reader.
//                         The writer pushes each item into every ring with try_push; each reader
//                         pops its own ring with try_pop.
//   separate_rings_bulk   the same; readers pop with try_pop_bulk.
// The elements: u64 is a std::uint64_t; event64 is a 64-byte struct, one cache line, standing
// for a small game-engine event.
//
// Each reader adds up the keys it read, and a count or checksum that differs from what the writer
// sent fails the benchmark with an error. items_per_second counts items published, so each is
// delivered R times. allocs_per_op counts calls of the global operator new per item published.
//
// Waiting after a failed try_ call is the same for every queue (retry_wait in bench_support.hpp):
// the CPU's pause hint for a while, then a yield on every round.
//
// Absolute times depend on the machine and its load. Compare queues by their ratios within one
// run.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/broadcast_ring.hpp>
#include <ringmq/ring.hpp>

#include "bench_support.hpp"

namespace {

using ringmq_bench::allocations_so_far;
using ringmq_bench::item_tally;
using ringmq_bench::retry_wait;
using ringmq_bench::stall_timeout;
using ringmq_bench::worker_team;

constexpr std::size_t queue_capacity = 1024;

// Items published per iteration of the threaded shape. Starting and stopping the worker threads
// takes tens of microseconds, which is about 1% of an iteration or less.
constexpr std::uint64_t items_per_iteration = std::uint64_t{1} << 16;

// Items published per iteration of the frame shape: a frame's worth of events, which fits in the
// queues with room to spare.
constexpr std::uint64_t frame_size = 256;

// A 64-byte event: a key and a payload that the writer fills and readers do not read.
struct alignas(64) event64 {
  std::uint64_t key;
  std::array<std::uint64_t, 7> payload;
};
static_assert(sizeof(event64) == 64);

std::uint64_t key_of(std::uint64_t item) { return item; }
std::uint64_t key_of(const event64& event) { return event.key; }

template <class T>
T make_element(std::uint64_t key) {
  if constexpr (std::is_same_v<T, event64>) {
    event64 event{key, {}};
    event.payload.fill(key);
    return event;
  } else {
    return key;
  }
}

// ---------------------------------------------------------------------------------------------
// Queue adapters.
//
// Each adapter is constructed with the number of readers, which join before the first
// iteration. publish(element) delivers one element to every reader, retrying while a queue is
// full, and returns false after a stall. take(reader, max, tally) adds up to `max` ready items
// for one reader to its tally and returns how many. It never waits.

enum class reading { per_item, batch };

template <class T, reading Reading, class Layout>
class broadcast_adapter {
 public:
  using ring_type = ringmq::broadcast_ring<T, ringmq::slot_layout<Layout>>;

  explicit broadcast_adapter(std::uint32_t reader_count) : ring_(queue_capacity, reader_count) {
    for (std::uint32_t index = 0; index < reader_count; ++index) {
      std::optional<typename ring_type::reader> joined = ring_.try_join();
      if (joined) readers_.push_back(std::move(*joined));
    }
  }

  // Whether every reader joined; the benchmark reports an error otherwise.
  bool ready(std::uint32_t reader_count) const { return readers_.size() == reader_count; }

  bool publish(const T& element) {
    retry_wait waiter;
    while (!ring_.try_publish(element)) {
      if (!waiter.wait()) return false;
    }
    return true;
  }

  std::size_t take(std::uint32_t index, std::size_t max, item_tally& tally) {
    const auto add = [&tally](const T& element) { tally.add(key_of(element)); };
    if constexpr (Reading == reading::batch) {
      return readers_[index].try_read_batch(add, max);
    } else {
      return readers_[index].try_read(add) ? 1 : 0;
    }
  }

 private:
  ring_type ring_;
  std::vector<typename ring_type::reader> readers_;
};

template <class T, reading Reading>
class separate_rings_adapter {
 public:
  using ring_type =
      ringmq::ring<T, ringmq::producers<ringmq::single>, ringmq::consumers<ringmq::single>>;

  explicit separate_rings_adapter(std::uint32_t reader_count) {
    for (std::uint32_t index = 0; index < reader_count; ++index) {
      rings_.push_back(std::make_unique<ring_type>(queue_capacity));
      buffers_.push_back(std::make_unique<std::array<T, queue_capacity>>());
    }
  }

  bool ready(std::uint32_t reader_count) const { return rings_.size() == reader_count; }

  // Pushes a copy into each reader's ring in turn, waiting on a full ring before the next.
  bool publish(const T& element) {
    for (const std::unique_ptr<ring_type>& ring : rings_) {
      retry_wait waiter;
      while (!ring->try_push(element)) {
        if (!waiter.wait()) return false;
      }
    }
    return true;
  }

  std::size_t take(std::uint32_t index, std::size_t max, item_tally& tally) {
    ring_type& ring = *rings_[index];
    if constexpr (Reading == reading::batch) {
      std::array<T, queue_capacity>& buffer = *buffers_[index];
      const std::size_t count =
          ring.try_pop_bulk(buffer.data(), std::min<std::size_t>(max, buffer.size()));
      for (std::size_t i = 0; i < count; ++i) tally.add(key_of(buffer[i]));
      return count;
    } else {
      T element{};
      if (!ring.try_pop(element)) return 0;
      tally.add(key_of(element));
      return 1;
    }
  }

 private:
  std::vector<std::unique_ptr<ring_type>> rings_;
  // One output buffer per reader for try_pop_bulk, each touched only by its reader's thread.
  std::vector<std::unique_ptr<std::array<T, queue_capacity>>> buffers_;
};

// ---------------------------------------------------------------------------------------------
// The fan-out shape. One iteration is timed from the start of the first worker to the end of the
// last (worker_team in bench_support.hpp).

// Takes items_per_iteration items for one reader, or fewer after a stall.
template <class Queue>
item_tally take_all(Queue& queue, std::uint32_t index) {
  item_tally tally;
  retry_wait waiter;
  while (tally.count < items_per_iteration) {
    if (queue.take(index, items_per_iteration - tally.count, tally) != 0) {
      waiter = retry_wait{};
    } else if (!waiter.wait()) {
      break;  // stalled: the benchmark thread reports the missing items
    }
  }
  return tally;
}

template <class Queue, class T>
void run_fan_out(benchmark::State& state, std::uint32_t reader_count) {
  auto queue = std::make_unique<Queue>(reader_count);
  if (!queue->ready(reader_count)) {
    state.SkipWithError("not every reader could join");
    return;
  }

  item_tally expected;
  for (std::uint64_t key = 0; key < items_per_iteration; ++key) expected.add(key);

  std::vector<item_tally> received(reader_count);
  worker_team team(1 + reader_count);
  team.add([&queue, &team] {
    std::uint32_t seen = 0;
    while (team.wait_for_start(seen)) {
      // A stalled publish ends the iteration early, and the readers' tallies report it.
      for (std::uint64_t key = 0; key < items_per_iteration; ++key) {
        if (!queue->publish(make_element<T>(key))) break;
      }
      team.finish();
    }
  });
  for (std::uint32_t index = 0; index < reader_count; ++index) {
    team.add([&queue, &team, &received, index] {
      std::uint32_t seen = 0;
      while (team.wait_for_start(seen)) {
        received[index] = take_all(*queue, index);
        team.finish();
      }
    });
  }

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    team.run_iteration();

    for (std::uint32_t index = 0; index < reader_count; ++index) {
      const item_tally& tally = received[index];
      if (tally.count != expected.count) {
        const std::string message = "reader " + std::to_string(index) + " took " +
                                    std::to_string(tally.count) + " of " +
                                    std::to_string(expected.count) + " items, then none for " +
                                    std::to_string(stall_timeout.count()) + " s";
        state.SkipWithError(message.c_str());
        break;
      }
      if (tally != expected) {
        const std::string message = "reader " + std::to_string(index) +
                                    " took items that were lost or duplicated: its sums differ "
                                    "from those sent";
        state.SkipWithError(message.c_str());
        break;
      }
    }
    if (state.error_occurred()) break;
  }
  // Read before SetItemsProcessed, which allocates when it adds its counter.
  const std::uint64_t allocations = allocations_so_far() - allocations_before;
  const std::uint64_t items = state.iterations() * items_per_iteration;

  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["allocs_per_op"] =
      static_cast<double>(allocations) / static_cast<double>(items == 0 ? 1 : items);
}

// The frame shape: one thread publishes frame_size items, then reads them through each reader.
template <class Queue, class T>
void run_frames(benchmark::State& state, std::uint32_t reader_count) {
  auto queue = std::make_unique<Queue>(reader_count);
  if (!queue->ready(reader_count)) {
    state.SkipWithError("not every reader could join");
    return;
  }

  std::vector<item_tally> received(reader_count);
  item_tally sent;
  std::uint64_t key = 0;
  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    for (std::uint64_t index = 0; index < frame_size; ++index, ++key) {
      if (!queue->publish(make_element<T>(key))) {
        state.SkipWithError("a publish into queues with room for the frame failed");
        return;
      }
      sent.add(key);
    }
    for (std::uint32_t reader = 0; reader < reader_count; ++reader) {
      for (std::uint64_t left = frame_size; left != 0;) {
        const std::size_t taken = queue->take(reader, left, received[reader]);
        if (taken == 0) {
          const std::string message = "reader " + std::to_string(reader) + " found " +
                                      std::to_string(frame_size - left) + " of the " +
                                      std::to_string(frame_size) + " items of a frame";
          state.SkipWithError(message.c_str());
          return;
        }
        left -= taken;
      }
    }
  }
  const std::uint64_t allocations = allocations_so_far() - allocations_before;
  const std::uint64_t items = state.iterations() * frame_size;

  for (std::uint32_t reader = 0; reader < reader_count; ++reader) {
    if (received[reader] != sent) {
      const std::string message = "reader " + std::to_string(reader) +
                                  " took items that were lost or duplicated: its sums differ "
                                  "from those sent";
      state.SkipWithError(message.c_str());
      return;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["allocs_per_op"] =
      static_cast<double>(allocations) / static_cast<double>(items == 0 ? 1 : items);
}

// ---------------------------------------------------------------------------------------------
// Registration.

enum class shape { threaded, frame };

template <class Queue, class T>
void register_queue(const std::string& queue_name, const std::string& element_name, shape which,
                    std::uint32_t reader_count) {
  const std::string shape_name = which == shape::threaded ? "_1w" : "_frame";
  const std::string name = "BM_broadcast_" + queue_name + "_" + element_name + shape_name +
                           std::to_string(reader_count) + "r";
  if (which == shape::threaded) {
    benchmark::RegisterBenchmark(name.c_str(), [reader_count](benchmark::State& state) {
      run_fan_out<Queue, T>(state, reader_count);
    })->UseRealTime();
  } else {
    benchmark::RegisterBenchmark(name.c_str(), [reader_count](benchmark::State& state) {
      run_frames<Queue, T>(state, reader_count);
    });
  }
}

// Registers every queue for one element type and shape, grouped by reader count so that the
// output lists the queues of one reader count together.
template <class T>
void register_element(const std::string& element_name, shape which) {
  for (const std::uint32_t readers : {1u, 2u, 4u}) {
    register_queue<broadcast_adapter<T, reading::per_item, ringmq::padded>, T>("ring", element_name,
                                                                               which, readers);
    register_queue<broadcast_adapter<T, reading::batch, ringmq::padded>, T>(
        "ring_batch", element_name, which, readers);
    // An element aligned to a cache line is laid out the same either way.
    if constexpr (alignof(T) < 64) {
      register_queue<broadcast_adapter<T, reading::per_item, ringmq::packed>, T>(
          "ring_packed", element_name, which, readers);
      register_queue<broadcast_adapter<T, reading::batch, ringmq::packed>, T>(
          "ring_packed_batch", element_name, which, readers);
    }
    register_queue<separate_rings_adapter<T, reading::per_item>, T>("separate_rings", element_name,
                                                                    which, readers);
    register_queue<separate_rings_adapter<T, reading::batch>, T>("separate_rings_bulk",
                                                                 element_name, which, readers);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const shape which : {shape::threaded, shape::frame}) {
    register_element<std::uint64_t>("u64", which);
    register_element<event64>("event64", which);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
