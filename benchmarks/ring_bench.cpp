// Benchmarks of ringmq::ring against the queues in common use, in one binary, so that the
// ratios between them compare runs on the same machine under the same load.
//
// Every benchmark is named BM_<queue>_<shape>. The shapes:
//   push_pop            One thread pushes one element and pops it again. Time is per pair.
//   1p1c                One producer thread and one consumer thread move items_per_iteration
//                       items through the queue. Reported as items per second.
//   2p2c                Two producers and two consumers move the same number of items.
//   ping_pong           Two queues between two threads; a token goes there and back. Time is
//                       per round trip. Both threads wait by retrying try_ calls.
//   ping_pong_blocking  The same, with the queue's own blocking push and pop.
// Each benchmark also reports allocs_per_op: calls to an allocator per push+pop pair
// (push_pop), per item (1p1c, 2p2c) or per round trip (ping_pong*).
//
// Every queue holds std::uint64_t and has a capacity of 1024 elements, except moodycamel's
// ConcurrentQueue and BlockingConcurrentQueue. Those are unbounded: enqueue allocates a block
// when the producer's blocks are full, so their producers never wait for room. try_enqueue
// would bound them, but an explicit producer (one with a token) keeps every block it has taken,
// so with two producers one can take the whole pre-allocated pool and starve the other forever.
//
// Waiting on a full or empty queue in the try_ shapes is the same for every queue: retry with
// the CPU's pause hint for retry_spin_rounds rounds, then yield the core on every round. Plain
// spinning would be unfair on a machine with fewer cores than the benchmark has threads,
// because the spinning thread would keep the thread it waits for off the core.
//
// Absolute times depend on the machine and its load. Compare queues by their ratios within
// one run.

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ringmq/ring.hpp>

#include "bench_support.hpp"

#ifdef RINGMQ_HAVE_MOODYCAMEL
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>
#endif
#ifdef RINGMQ_HAVE_READERWRITERQUEUE
#include <readerwriterqueue/readerwriterqueue.h>
#endif
#ifdef RINGMQ_HAVE_BOOST_LOCKFREE
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#endif
#ifdef RINGMQ_HAVE_TBB
#include <tbb/cache_aligned_allocator.h>
#include <tbb/concurrent_queue.h>
#endif
#ifdef RINGMQ_HAVE_XENIUM
#include <xenium/vyukov_bounded_queue.hpp>
#endif

namespace {

// Allocations are counted by bench_support.hpp: every call of the global operator new, and the
// allocation hooks that moodycamel's queues and TBB's queue are given here, because those two
// allocate with std::malloc and TBB's own allocator. readerwriterqueue allocates with
// std::malloc too, but only when its enqueue grows the queue, and this file calls only
// try_enqueue, which never allocates.
using ringmq_bench::allocations_so_far;
using ringmq_bench::count_allocation;
using ringmq_bench::item_tally;
using ringmq_bench::make_item;
using ringmq_bench::retry_wait;
using ringmq_bench::stall_timeout;
using ringmq_bench::worker_team;

constexpr std::size_t queue_capacity = 1024;

// Items moved per iteration of the 1p1c and 2p2c shapes. Starting and stopping the worker
// threads takes tens of microseconds, which is about 1% of an iteration or less.
constexpr std::uint64_t items_per_iteration = std::uint64_t{1} << 18;

// The token that stops the echo thread of a ping-pong benchmark. Tokens start at 0 and grow by
// 2 per round trip, so they never reach it.
constexpr std::uint64_t stop_token = ~std::uint64_t{0};

// ---------------------------------------------------------------------------------------------
// Waiting between failed try_ calls, the same for every queue.

// Pushes `value`, retrying while the queue is full. Returns false if it stalled.
template <class Producer>
bool push_retrying(Producer& producer, std::uint64_t value) {
  retry_wait waiter;
  while (!producer.try_push(value)) {
    if (!waiter.wait()) return false;
  }
  return true;
}

// Pops into `value`, retrying while the queue is empty. Returns false if it stalled.
template <class Consumer>
bool pop_retrying(Consumer& consumer, std::uint64_t& value) {
  retry_wait waiter;
  while (!consumer.try_pop(value)) {
    if (!waiter.wait()) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Queue adapters.
//
// Each adapter is default-constructible with a capacity of queue_capacity and has
//   bool try_push(std::uint64_t), bool try_pop(std::uint64_t&)   never wait
//   bool push(std::uint64_t), bool pop(std::uint64_t&)           wait (optional)
//   static constexpr bool is_mpmc                                 several threads on each side
// An adapter whose calls need per-thread state (moodycamel's tokens) has make_producer() and
// make_consumer() in place of try_push and try_pop, and each thread calls them once.

template <class Queue>
concept has_thread_handles = requires(Queue& queue) {
  queue.make_producer();
  queue.make_consumer();
};

template <class Queue>
concept has_try_calls_or_handles = has_thread_handles<Queue> ||
    requires(Queue& queue, std::uint64_t& value) {
  { queue.try_push(value) } -> std::same_as<bool>;
  { queue.try_pop(value) } -> std::same_as<bool>;
};

template <class Queue>
concept has_blocking_calls = requires(Queue& queue, std::uint64_t& value) {
  { queue.push(value) } -> std::same_as<bool>;
  { queue.pop(value) } -> std::same_as<bool>;
};

// The object a producer thread calls try_push on: the queue itself or a per-thread handle.
template <class Queue>
decltype(auto) producer_for(Queue& queue) {
  if constexpr (has_thread_handles<Queue>) {
    return queue.make_producer();
  } else {
    return (queue);
  }
}

// The object a consumer thread calls try_pop on: the queue itself or a per-thread handle.
template <class Queue>
decltype(auto) consumer_for(Queue& queue) {
  if constexpr (has_thread_handles<Queue>) {
    return queue.make_consumer();
  } else {
    return (queue);
  }
}

template <class Ring, bool IsMpmc>
class ringmq_queue {
 public:
  static constexpr bool is_mpmc = IsMpmc;

  bool try_push(std::uint64_t value) { return ring_.try_push(value); }
  bool try_pop(std::uint64_t& value) { return ring_.try_pop(value); }

  // Returns false only once the ring is closed, which these benchmarks never do.
  bool push(std::uint64_t value) { return ring_.push(value); }

  bool pop(std::uint64_t& value) {
    std::optional<std::uint64_t> item = ring_.pop();
    if (!item) return false;
    value = *item;
    return true;
  }

 private:
  Ring ring_{queue_capacity};
};

template <class... Options>
using ringmq_mpmc = ringmq_queue<ringmq::ring<std::uint64_t, Options...>, true>;
template <class... Options>
using ringmq_spsc = ringmq_queue<ringmq::ring<std::uint64_t, ringmq::producers<ringmq::single>,
                                              ringmq::consumers<ringmq::single>, Options...>,
                                 false>;

// Baseline: a bounded FIFO of a std::deque guarded by one std::mutex, with a
// std::condition_variable for each side that can wait. This is the queue that code without a
// concurrency library writes.
class mutex_deque_queue {
 public:
  static constexpr bool is_mpmc = true;

  bool try_push(std::uint64_t value) {
    {
      std::lock_guard lock(mutex_);
      if (items_.size() == queue_capacity) return false;
      items_.push_back(value);
    }
    not_empty_.notify_one();
    return true;
  }

  bool try_pop(std::uint64_t& value) {
    {
      std::lock_guard lock(mutex_);
      if (items_.empty()) return false;
      value = items_.front();
      items_.pop_front();
    }
    not_full_.notify_one();
    return true;
  }

  bool push(std::uint64_t value) {
    {
      std::unique_lock lock(mutex_);
      not_full_.wait(lock, [this] { return items_.size() < queue_capacity; });
      items_.push_back(value);
    }
    not_empty_.notify_one();
    return true;
  }

  bool pop(std::uint64_t& value) {
    {
      std::unique_lock lock(mutex_);
      not_empty_.wait(lock, [this] { return !items_.empty(); });
      value = items_.front();
      items_.pop_front();
    }
    not_full_.notify_one();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<std::uint64_t> items_;
};

#ifdef RINGMQ_HAVE_MOODYCAMEL
// moodycamel's default traits with allocations counted.
struct counting_moodycamel_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static void* malloc(std::size_t size) {
    count_allocation();
    return std::malloc(size);
  }
  static void free(void* memory) { std::free(memory); }
};

// moodycamel::ConcurrentQueue called without tokens, so each thread uses its implicit producer.
class moodycamel_queue {
 public:
  static constexpr bool is_mpmc = true;

  bool try_push(std::uint64_t value) { return queue_.enqueue(value); }
  bool try_pop(std::uint64_t& value) { return queue_.try_dequeue(value); }

 private:
  moodycamel::ConcurrentQueue<std::uint64_t, counting_moodycamel_traits> queue_{queue_capacity};
};

// moodycamel::ConcurrentQueue called with a producer token or consumer token per thread.
class moodycamel_token_queue {
  using queue_type = moodycamel::ConcurrentQueue<std::uint64_t, counting_moodycamel_traits>;

 public:
  static constexpr bool is_mpmc = true;

  class producer {
   public:
    explicit producer(queue_type& queue) : queue_(queue), token_(queue) {}
    bool try_push(std::uint64_t value) { return queue_.enqueue(token_, value); }

   private:
    queue_type& queue_;
    moodycamel::ProducerToken token_;
  };

  class consumer {
   public:
    explicit consumer(queue_type& queue) : queue_(queue), token_(queue) {}
    bool try_pop(std::uint64_t& value) { return queue_.try_dequeue(token_, value); }

   private:
    queue_type& queue_;
    moodycamel::ConsumerToken token_;
  };

  producer make_producer() { return producer(queue_); }
  consumer make_consumer() { return consumer(queue_); }

 private:
  queue_type queue_{queue_capacity};
};

// moodycamel::BlockingConcurrentQueue: a ConcurrentQueue with a semaphore for waiting pops.
class moodycamel_blocking_queue {
 public:
  static constexpr bool is_mpmc = true;

  bool push(std::uint64_t value) { return queue_.enqueue(value); }

  bool pop(std::uint64_t& value) {
    queue_.wait_dequeue(value);
    return true;
  }

 private:
  moodycamel::BlockingConcurrentQueue<std::uint64_t, counting_moodycamel_traits> queue_{
      queue_capacity};
};
#endif  // RINGMQ_HAVE_MOODYCAMEL

#ifdef RINGMQ_HAVE_READERWRITERQUEUE
// moodycamel::ReaderWriterQueue, single producer and single consumer.
class readerwriterqueue_queue {
 public:
  static constexpr bool is_mpmc = false;

  bool try_push(std::uint64_t value) { return queue_.try_enqueue(value); }
  bool try_pop(std::uint64_t& value) { return queue_.try_dequeue(value); }

 private:
  moodycamel::ReaderWriterQueue<std::uint64_t> queue_{queue_capacity};
};
#endif

#ifdef RINGMQ_HAVE_BOOST_LOCKFREE
// boost::lockfree::queue with a fixed pool of nodes, so push never allocates.
class boost_queue {
 public:
  static constexpr bool is_mpmc = true;

  bool try_push(std::uint64_t value) { return queue_.push(value); }
  bool try_pop(std::uint64_t& value) { return queue_.pop(value); }

 private:
  boost::lockfree::queue<std::uint64_t, boost::lockfree::capacity<queue_capacity>> queue_;
};

// boost::lockfree::spsc_queue with inline storage.
class boost_spsc_queue {
 public:
  static constexpr bool is_mpmc = false;

  bool try_push(std::uint64_t value) { return queue_.push(value); }
  bool try_pop(std::uint64_t& value) { return queue_.pop(value); }

 private:
  boost::lockfree::spsc_queue<std::uint64_t, boost::lockfree::capacity<queue_capacity>> queue_;
};
#endif  // RINGMQ_HAVE_BOOST_LOCKFREE

#ifdef RINGMQ_HAVE_TBB
// tbb::cache_aligned_allocator, TBB's default for its queues, with allocations counted.
template <class T>
class counting_cache_aligned_allocator {
 public:
  using value_type = T;

  counting_cache_aligned_allocator() = default;
  template <class U>
  counting_cache_aligned_allocator(const counting_cache_aligned_allocator<U>&) noexcept {}

  T* allocate(std::size_t count) {
    count_allocation();
    return tbb::cache_aligned_allocator<T>().allocate(count);
  }

  void deallocate(T* memory, std::size_t count) noexcept {
    tbb::cache_aligned_allocator<T>().deallocate(memory, count);
  }

  friend bool operator==(const counting_cache_aligned_allocator&,
                         const counting_cache_aligned_allocator&) = default;
};

// tbb::concurrent_bounded_queue; its push and pop wait on TBB's concurrent monitor.
class tbb_bounded_queue {
 public:
  static constexpr bool is_mpmc = true;

  tbb_bounded_queue() { queue_.set_capacity(queue_capacity); }

  bool try_push(std::uint64_t value) { return queue_.try_push(value); }
  bool try_pop(std::uint64_t& value) { return queue_.try_pop(value); }

  bool push(std::uint64_t value) {
    queue_.push(value);
    return true;
  }

  bool pop(std::uint64_t& value) {
    queue_.pop(value);
    return true;
  }

 private:
  tbb::concurrent_bounded_queue<std::uint64_t, counting_cache_aligned_allocator<std::uint64_t>>
      queue_;
};
#endif  // RINGMQ_HAVE_TBB

#ifdef RINGMQ_HAVE_XENIUM
// xenium::vyukov_bounded_queue: Dmitry Vyukov's bounded MPMC queue with a sequence per cell.
class xenium_vyukov_queue {
 public:
  static constexpr bool is_mpmc = true;

  bool try_push(std::uint64_t value) { return queue_.try_push(value); }
  bool try_pop(std::uint64_t& value) { return queue_.try_pop(value); }

 private:
  xenium::vyukov_bounded_queue<std::uint64_t> queue_{queue_capacity};
};
#endif

// ---------------------------------------------------------------------------------------------
// Shape: push_pop.

template <class Queue>
void run_push_pop(benchmark::State& state) {
  auto queue = std::make_unique<Queue>();
  auto&& producer = producer_for(*queue);
  auto&& consumer = consumer_for(*queue);
  std::uint64_t value = 0;

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    if (!producer.try_push(value)) {
      state.SkipWithError("try_push on an empty queue failed");
      break;
    }
    std::uint64_t popped = 0;
    if (!consumer.try_pop(popped)) {
      state.SkipWithError("try_pop after a successful try_push found the queue empty");
      break;
    }
    if (popped != value) {
      const std::string message =
          "try_pop returned " + std::to_string(popped) + ", expected " + std::to_string(value);
      state.SkipWithError(message.c_str());
      break;
    }
    ++value;
  }
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocations_so_far() - allocations_before),
                         benchmark::Counter::kAvgIterations);
}

// ---------------------------------------------------------------------------------------------
// Shapes 1p1c and 2p2c: throughput with worker threads.
//
// The producers and consumers run on worker threads that live for the whole benchmark run. The
// benchmark thread starts them once per iteration and sleeps until the last one has finished.
// So one iteration is timed from the start of the first worker to the end of the last, and
// every item counted as processed has been popped. Workers keep their per-thread handles
// (moodycamel's tokens) across iterations.
//
// Google Benchmark's ->Threads(n) is not used because it times each thread on its own and
// reports the mean of the threads' times (benchmark_runner.cc, 1.7.1), so a producer that
// finishes before its consumer drains the queue would shorten the reported time.

template <class Queue>
void run_throughput(benchmark::State& state, std::uint32_t producer_count,
                    std::uint32_t consumer_count) {
  auto queue = std::make_unique<Queue>();
  const std::uint64_t items_per_producer = items_per_iteration / producer_count;
  const std::uint64_t items_per_consumer = items_per_iteration / consumer_count;

  item_tally expected;
  for (std::uint32_t producer = 0; producer < producer_count; ++producer) {
    for (std::uint64_t index = 0; index < items_per_producer; ++index) {
      expected.add(make_item(producer, index));
    }
  }

  std::vector<item_tally> received(consumer_count);
  worker_team team(producer_count + consumer_count);
  for (std::uint32_t producer_index = 0; producer_index < producer_count; ++producer_index) {
    team.add([&queue, &team, producer_index, items_per_producer] {
      auto&& producer = producer_for(*queue);
      std::uint32_t seen = 0;
      while (team.wait_for_start(seen)) {
        // A stalled push ends the iteration early, and the consumers' tallies report it.
        for (std::uint64_t index = 0; index < items_per_producer; ++index) {
          if (!push_retrying(producer, make_item(producer_index, index))) break;
        }
        team.finish();
      }
    });
  }
  for (std::uint32_t consumer_index = 0; consumer_index < consumer_count; ++consumer_index) {
    team.add([&queue, &team, &received, consumer_index, items_per_consumer] {
      auto&& consumer = consumer_for(*queue);
      std::uint32_t seen = 0;
      while (team.wait_for_start(seen)) {
        item_tally tally;
        for (std::uint64_t index = 0; index < items_per_consumer; ++index) {
          std::uint64_t item = 0;
          if (!pop_retrying(consumer, item)) break;
          tally.add(item);
        }
        received[consumer_index] = tally;
        team.finish();
      }
    });
  }

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    team.run_iteration();

    item_tally total;
    for (const item_tally& tally : received) total.add(tally);
    if (total.count != expected.count) {
      const std::string message = "timed out: consumers received " + std::to_string(total.count) +
                                  " of " + std::to_string(expected.count) +
                                  " items and then none for " +
                                  std::to_string(stall_timeout.count()) + " s";
      state.SkipWithError(message.c_str());
      break;
    }
    if (total != expected) {
      state.SkipWithError(
          "items lost or duplicated: the sums of the popped items differ from those pushed");
      break;
    }
  }
  // Read before SetItemsProcessed, which allocates when it adds its counter.
  const std::uint64_t allocations = allocations_so_far() - allocations_before;
  const std::uint64_t items = state.iterations() * items_per_iteration;
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["allocs_per_op"] =
      static_cast<double>(allocations) / static_cast<double>(items == 0 ? 1 : items);
}

// ---------------------------------------------------------------------------------------------
// Shapes ping_pong and ping_pong_blocking.

// Waits by retrying try_ calls.
struct retrying_calls {
  template <class Producer>
  static bool push(Producer& producer, std::uint64_t value) {
    return push_retrying(producer, value);
  }
  template <class Consumer>
  static bool pop(Consumer& consumer, std::uint64_t& value) {
    return pop_retrying(consumer, value);
  }
};

// Waits in the queue's own blocking calls.
struct blocking_calls {
  template <class Queue>
  static bool push(Queue& queue, std::uint64_t value) {
    return queue.push(value);
  }
  template <class Queue>
  static bool pop(Queue& queue, std::uint64_t& value) {
    return queue.pop(value);
  }
};

// The benchmark thread sends a token through `requests`; an echo thread pops it and pushes the
// token + 1 through `replies`. One iteration is one round trip.
//
// NOTE: with blocking_calls, a queue that loses a token hangs the benchmark, because the
// peers' blocking pops have no timeout. The try_ shapes detect lost items.
template <class Queue, class Calls>
void run_ping_pong(benchmark::State& state) {
  auto requests = std::make_unique<Queue>();
  auto replies = std::make_unique<Queue>();

  std::thread echo([&requests, &replies] {
    auto&& consumer = consumer_for(*requests);
    auto&& producer = producer_for(*replies);
    for (;;) {
      std::uint64_t token = 0;
      if (!Calls::pop(consumer, token) || token == stop_token) return;
      if (!Calls::push(producer, token + 1)) return;
    }
  });

  auto&& producer = producer_for(*requests);
  auto&& consumer = consumer_for(*replies);
  std::uint64_t token = 0;
  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    std::uint64_t reply = 0;
    if (!Calls::push(producer, token) || !Calls::pop(consumer, reply)) {
      const std::string message = "timed out: token " + std::to_string(token) +
                                  " got no reply within " + std::to_string(stall_timeout.count()) +
                                  " s";
      state.SkipWithError(message.c_str());
      break;
    }
    if (reply != token + 1) {
      const std::string message = "echo thread replied " + std::to_string(reply) + " to token " +
                                  std::to_string(token) + ", expected " + std::to_string(token + 1);
      state.SkipWithError(message.c_str());
      break;
    }
    token += 2;
  }
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocations_so_far() - allocations_before),
                         benchmark::Counter::kAvgIterations);

  // If this push stalls, the echo thread has already stopped after its own 10 s stall.
  static_cast<void>(Calls::push(producer, stop_token));
  echo.join();
}

// ---------------------------------------------------------------------------------------------
// Registration.

void register_benchmark(const std::string& queue_name, const std::string& shape,
                        void (*run)(benchmark::State&)) {
  const std::string name = "BM_" + queue_name + "_" + shape;
  benchmark::RegisterBenchmark(name.c_str(), run)->UseRealTime();
}

enum class shape { push_pop, one_to_one, two_to_two, ping_pong, ping_pong_blocking };

// Registers `queue_name` for `which` when the queue supports that shape: 2p2c needs several
// threads on each side, ping_pong_blocking needs blocking calls, and the other shapes need
// try_ calls.
template <class Queue>
void register_shape(shape which, const std::string& queue_name) {
  constexpr bool has_try_calls = has_try_calls_or_handles<Queue>;

  switch (which) {
    case shape::push_pop:
      if constexpr (has_try_calls) {
        register_benchmark(queue_name, "push_pop", run_push_pop<Queue>);
      }
      break;
    case shape::one_to_one:
      if constexpr (has_try_calls) {
        register_benchmark(queue_name, "1p1c",
                           [](benchmark::State& state) { run_throughput<Queue>(state, 1, 1); });
      }
      break;
    case shape::two_to_two:
      if constexpr (has_try_calls && Queue::is_mpmc) {
        register_benchmark(queue_name, "2p2c",
                           [](benchmark::State& state) { run_throughput<Queue>(state, 2, 2); });
      }
      break;
    case shape::ping_pong:
      if constexpr (has_try_calls) {
        register_benchmark(queue_name, "ping_pong", run_ping_pong<Queue, retrying_calls>);
      }
      break;
    case shape::ping_pong_blocking:
      if constexpr (has_blocking_calls<Queue>) {
        register_benchmark(queue_name, "ping_pong_blocking", run_ping_pong<Queue, blocking_calls>);
      }
      break;
  }
}

// Registers every queue for `which`, so that the output lists the queues of one shape together.
void register_queues(shape which) {
  using ringmq::packed;
  using ringmq::slot_layout;
  using ringmq::spin;
  using ringmq::wait;

  // ringmq with its defaults: wait<park> and the padded slot layout (a cache line per slot).
  register_shape<ringmq_mpmc<>>(which, "ringmq_mpmc");
  register_shape<ringmq_spsc<>>(which, "ringmq_spsc");
  // With wait<spin>, the blocking calls spin, and the ring keeps no count of sleeping threads,
  // so the try_ shapes show what that count costs the default wait<park>.
  register_shape<ringmq_mpmc<wait<spin>>>(which, "ringmq_mpmc_spin");
  register_shape<ringmq_spsc<wait<spin>>>(which, "ringmq_spsc_spin");
  // The packed slot layout. Its blocking calls wait as those of the padded layout do.
  if (which != shape::ping_pong_blocking) {
    register_shape<ringmq_mpmc<slot_layout<packed>>>(which, "ringmq_packed_mpmc");
    register_shape<ringmq_spsc<slot_layout<packed>>>(which, "ringmq_packed_spsc");
  }

#ifdef RINGMQ_HAVE_MOODYCAMEL
  register_shape<moodycamel_queue>(which, "moodycamel");
  register_shape<moodycamel_token_queue>(which, "moodycamel_tokens");
  register_shape<moodycamel_blocking_queue>(which, "moodycamel_blocking");
#endif
#ifdef RINGMQ_HAVE_READERWRITERQUEUE
  register_shape<readerwriterqueue_queue>(which, "readerwriterqueue");
#endif
#ifdef RINGMQ_HAVE_BOOST_LOCKFREE
  register_shape<boost_queue>(which, "boost_queue");
  register_shape<boost_spsc_queue>(which, "boost_spsc_queue");
#endif
#ifdef RINGMQ_HAVE_TBB
  register_shape<tbb_bounded_queue>(which, "tbb_bounded_queue");
#endif
#ifdef RINGMQ_HAVE_XENIUM
  register_shape<xenium_vyukov_queue>(which, "xenium_vyukov");
#endif
  register_shape<mutex_deque_queue>(which, "mutex_deque");
}

}  // namespace

int main(int argc, char** argv) {
  for (shape which : {shape::push_pop, shape::one_to_one, shape::two_to_two, shape::ping_pong,
                      shape::ping_pong_blocking}) {
    register_queues(which);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
