// Benchmarks of ringmq::ring against the queues in common use, in one binary, so that the
// ratios between them compare runs on the same machine under the same load.
//
// Every benchmark is named <shape>/<element>/<queue>. The elements are std::uint64_t (8B) and
// trivially copyable structs of 64 and 256 bytes (64B, 256B). The shapes:
//   push_pop            One thread pushes one element and pops it again. Time is per pair.
//   1p1c                One producer thread and one consumer thread move items_per_iteration
//                       items through the queue. Reported as items per second.
//   2p2c, 4p4c          Two or four producers and as many consumers move the same number of
//                       items.
//   bulk_1p1c           1p1c with bulk calls: the producer pushes bulk_size items per call and
//                       the consumer pops up to bulk_size per call.
//   ping_pong           Two queues between two threads; a token goes there and back. Time is
//                       per round trip. Both threads wait by retrying try_ calls.
//   ping_pong_blocking  The same, with the queue's own blocking push and pop.
// ping_pong/8B/cache_line_floor is no queue: the two threads bounce the token through two
// cache lines, one per direction, waiting the same way. Each line goes to the other core and
// back once per round trip, which is the least any queue ping-pong can move, so it is the floor
// the queues' ping_pong figures are compared with.
// Each benchmark also reports allocs_per_op: calls to an allocator per push+pop pair
// (push_pop), per item (throughput shapes) or per round trip (ping_pong*).
//
// Every queue has a capacity of 1024 elements, except moodycamel's ConcurrentQueue and
// BlockingConcurrentQueue. Those are unbounded: enqueue allocates a block when the producer's
// blocks are full, so their producers never wait for room. try_enqueue would bound them, but an
// explicit producer (one with a token) keeps every block it has taken, so with two producers
// one can take the whole pre-allocated pool and starve the other forever.
//
// Waiting on a full or empty queue in the try_ shapes is the same for every queue: retry with
// the CPU's pause hint for retry_spin_rounds rounds, then yield the core on every round. Plain
// spinning would be unfair on a machine with fewer cores than the benchmark has threads,
// because the spinning thread would keep the thread it waits for off the core.
//
// Absolute times depend on the machine and its load. Compare queues by their ratios within
// one run. benchmarks/report runs this program with repetitions and draws the results.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
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
#include <type_traits>
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
using ringmq_bench::pin_to_allowed_cpu;
using ringmq_bench::retry_wait;
using ringmq_bench::scoped_pin;
using ringmq_bench::stall_timeout;
using ringmq_bench::worker_team;

constexpr std::size_t queue_capacity = 1024;

// Items moved per iteration of the throughput shapes. Starting and stopping the worker threads
// takes tens of microseconds, which is about 1% of an iteration or less.
constexpr std::uint64_t items_per_iteration = std::uint64_t{1} << 18;

// Items per call in bulk_1p1c.
constexpr std::size_t bulk_size = 32;

// The token that stops the echo thread of a ping-pong benchmark. Tokens start at 0 or 1 and grow
// by 2 per round trip, so they never reach it.
constexpr std::uint64_t stop_token = ~std::uint64_t{0};

// ---------------------------------------------------------------------------------------------
// Elements: std::uint64_t, and payload<Bytes> for the larger sizes. Each element carries an id
// that the consumers add to their checksums.

template <std::size_t Bytes>
struct payload {
  std::uint64_t id = 0;
  std::array<std::byte, Bytes - sizeof(std::uint64_t)> filler{};
};

static_assert(sizeof(payload<64>) == 64 && sizeof(payload<256>) == 256);
static_assert(std::is_trivially_copyable_v<payload<256>>);

template <class Element>
Element element_with_id(std::uint64_t id) {
  if constexpr (std::is_same_v<Element, std::uint64_t>) {
    return id;
  } else {
    Element element;
    element.id = id;
    return element;
  }
}

inline std::uint64_t id_of(std::uint64_t element) { return element; }

template <std::size_t Bytes>
std::uint64_t id_of(const payload<Bytes>& element) {
  return element.id;
}

// The element part of a benchmark name: "8B", "64B" or "256B".
template <class Element>
std::string element_name() {
  return std::to_string(sizeof(Element)) + "B";
}

// ---------------------------------------------------------------------------------------------
// Waiting between failed try_ calls, the same for every queue.

// Pushes `element`, retrying while the queue is full. Returns false if it stalled.
template <class Producer, class Element>
bool push_retrying(Producer& producer, const Element& element) {
  retry_wait waiter;
  while (!producer.try_push(element)) {
    if (!waiter.wait()) return false;
  }
  return true;
}

// Pops into `element`, retrying while the queue is empty. Returns false if it stalled.
template <class Consumer, class Element>
bool pop_retrying(Consumer& consumer, Element& element) {
  retry_wait waiter;
  while (!consumer.try_pop(element)) {
    if (!waiter.wait()) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Queue adapters.
//
// Each adapter is default-constructible with a capacity of queue_capacity and has
//   using value_type = T
//   bool try_push(const T&), bool try_pop(T&)                     never wait
//   bool push(const T&), bool pop(T&)                             wait (optional)
//   std::size_t try_push_bulk(const T*, std::size_t count),
//   std::size_t try_pop_bulk(T*, std::size_t max)                 bulk calls (optional)
//   static constexpr bool is_mpmc                                 several threads on each side
// An adapter whose calls need per-thread state (moodycamel's tokens) has make_producer() and
// make_consumer() in place of the calls, and each thread calls them once.

template <class Queue>
concept has_thread_handles = requires(Queue& queue) {
  queue.make_producer();
  queue.make_consumer();
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

template <class Queue>
concept has_try_calls = requires(Queue& queue, typename Queue::value_type& element) {
  { producer_for(queue).try_push(element) } -> std::same_as<bool>;
  { consumer_for(queue).try_pop(element) } -> std::same_as<bool>;
};

template <class Queue>
concept has_bulk_calls =
    requires(Queue& queue, typename Queue::value_type* elements, std::size_t count) {
  { producer_for(queue).try_push_bulk(elements, count) } -> std::same_as<std::size_t>;
  { consumer_for(queue).try_pop_bulk(elements, count) } -> std::same_as<std::size_t>;
};

template <class Queue>
concept has_blocking_calls = requires(Queue& queue, typename Queue::value_type& element) {
  { queue.push(element) } -> std::same_as<bool>;
  { queue.pop(element) } -> std::same_as<bool>;
};

template <class Ring, bool IsMpmc>
class ringmq_queue {
 public:
  using value_type = typename Ring::value_type;
  static constexpr bool is_mpmc = IsMpmc;

  bool try_push(const value_type& element) { return ring_.try_push(element); }
  bool try_pop(value_type& element) { return ring_.try_pop(element); }

  std::size_t try_push_bulk(const value_type* elements, std::size_t count) {
    return ring_.try_push_bulk(elements, elements + count);
  }
  std::size_t try_pop_bulk(value_type* out, std::size_t max) {
    return ring_.try_pop_bulk(out, max);
  }

  // Returns false only once the ring is closed, which these benchmarks never do.
  bool push(const value_type& element) { return ring_.push(element); }

  bool pop(value_type& element) {
    std::optional<value_type> popped = ring_.pop();
    if (!popped) return false;
    element = *popped;
    return true;
  }

 private:
  Ring ring_{queue_capacity};
};

template <class Element, class... Options>
using ringmq_mpmc = ringmq_queue<ringmq::ring<Element, Options...>, true>;
template <class Element, class... Options>
using ringmq_spsc = ringmq_queue<
    ringmq::ring<Element, ringmq::producers<ringmq::single>, ringmq::consumers<ringmq::single>,
                 Options...>,
    false>;

// Baseline: a bounded FIFO of a std::deque guarded by one std::mutex, with a
// std::condition_variable for each side that can wait. This is the queue that code without a
// concurrency library writes.
template <class T>
class mutex_deque_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  bool try_push(const T& element) {
    {
      std::lock_guard lock(mutex_);
      if (elements_.size() == queue_capacity) return false;
      elements_.push_back(element);
    }
    not_empty_.notify_one();
    return true;
  }

  bool try_pop(T& element) {
    {
      std::lock_guard lock(mutex_);
      if (elements_.empty()) return false;
      element = elements_.front();
      elements_.pop_front();
    }
    not_full_.notify_one();
    return true;
  }

  std::size_t try_push_bulk(const T* elements, std::size_t count) {
    std::size_t pushed = 0;
    {
      std::lock_guard lock(mutex_);
      pushed = std::min(count, queue_capacity - elements_.size());
      elements_.insert(elements_.end(), elements, elements + pushed);
    }
    if (pushed != 0) not_empty_.notify_all();
    return pushed;
  }

  std::size_t try_pop_bulk(T* out, std::size_t max) {
    std::size_t popped = 0;
    {
      std::lock_guard lock(mutex_);
      popped = std::min(max, elements_.size());
      std::copy_n(elements_.begin(), popped, out);
      elements_.erase(elements_.begin(), elements_.begin() + static_cast<std::ptrdiff_t>(popped));
    }
    if (popped != 0) not_full_.notify_all();
    return popped;
  }

  bool push(const T& element) {
    {
      std::unique_lock lock(mutex_);
      not_full_.wait(lock, [this] { return elements_.size() < queue_capacity; });
      elements_.push_back(element);
    }
    not_empty_.notify_one();
    return true;
  }

  bool pop(T& element) {
    {
      std::unique_lock lock(mutex_);
      not_empty_.wait(lock, [this] { return !elements_.empty(); });
      element = elements_.front();
      elements_.pop_front();
    }
    not_full_.notify_one();
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> elements_;
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
template <class T>
class moodycamel_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  bool try_push(const T& element) { return queue_.enqueue(element); }
  bool try_pop(T& element) { return queue_.try_dequeue(element); }

  // enqueue_bulk adds all of the elements or none.
  std::size_t try_push_bulk(const T* elements, std::size_t count) {
    return queue_.enqueue_bulk(elements, count) ? count : 0;
  }
  std::size_t try_pop_bulk(T* out, std::size_t max) { return queue_.try_dequeue_bulk(out, max); }

 private:
  moodycamel::ConcurrentQueue<T, counting_moodycamel_traits> queue_{queue_capacity};
};

// moodycamel::ConcurrentQueue called with a producer token or consumer token per thread.
template <class T>
class moodycamel_token_queue {
  using queue_type = moodycamel::ConcurrentQueue<T, counting_moodycamel_traits>;

 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  class producer {
   public:
    explicit producer(queue_type& queue) : queue_(queue), token_(queue) {}
    bool try_push(const T& element) { return queue_.enqueue(token_, element); }

    // g++ 12 warns that enqueue_bulk, inlined here, loads an atomic from a region of size 0
    // (-Wstringop-overflow). The warning follows the path where the token's producer pointer is
    // null, and a token made from the queue always holds a producer.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
    std::size_t try_push_bulk(const T* elements, std::size_t count) {
      return queue_.enqueue_bulk(token_, elements, count) ? count : 0;
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

   private:
    queue_type& queue_;
    moodycamel::ProducerToken token_;
  };

  class consumer {
   public:
    explicit consumer(queue_type& queue) : queue_(queue), token_(queue) {}
    bool try_pop(T& element) { return queue_.try_dequeue(token_, element); }
    std::size_t try_pop_bulk(T* out, std::size_t max) {
      return queue_.try_dequeue_bulk(token_, out, max);
    }

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
template <class T>
class moodycamel_blocking_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  bool push(const T& element) { return queue_.enqueue(element); }

  bool pop(T& element) {
    queue_.wait_dequeue(element);
    return true;
  }

 private:
  moodycamel::BlockingConcurrentQueue<T, counting_moodycamel_traits> queue_{queue_capacity};
};
#endif  // RINGMQ_HAVE_MOODYCAMEL

#ifdef RINGMQ_HAVE_READERWRITERQUEUE
// moodycamel::ReaderWriterQueue, single producer and single consumer.
template <class T>
class readerwriterqueue_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = false;

  bool try_push(const T& element) { return queue_.try_enqueue(element); }
  bool try_pop(T& element) { return queue_.try_dequeue(element); }

 private:
  moodycamel::ReaderWriterQueue<T> queue_{queue_capacity};
};
#endif

#ifdef RINGMQ_HAVE_BOOST_LOCKFREE
// boost::lockfree::queue with a fixed pool of nodes, so push never allocates.
template <class T>
class boost_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  bool try_push(const T& element) { return queue_.push(element); }
  bool try_pop(T& element) { return queue_.pop(element); }

 private:
  boost::lockfree::queue<T, boost::lockfree::capacity<queue_capacity>> queue_;
};

// boost::lockfree::spsc_queue with inline storage.
template <class T>
class boost_spsc_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = false;

  bool try_push(const T& element) { return queue_.push(element); }
  bool try_pop(T& element) { return queue_.pop(element); }

  std::size_t try_push_bulk(const T* elements, std::size_t count) {
    return queue_.push(elements, count);
  }
  std::size_t try_pop_bulk(T* out, std::size_t max) { return queue_.pop(out, max); }

 private:
  boost::lockfree::spsc_queue<T, boost::lockfree::capacity<queue_capacity>> queue_;
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
template <class T>
class tbb_bounded_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  tbb_bounded_queue() { queue_.set_capacity(queue_capacity); }

  bool try_push(const T& element) { return queue_.try_push(element); }
  bool try_pop(T& element) { return queue_.try_pop(element); }

  bool push(const T& element) {
    queue_.push(element);
    return true;
  }

  bool pop(T& element) {
    queue_.pop(element);
    return true;
  }

 private:
  tbb::concurrent_bounded_queue<T, counting_cache_aligned_allocator<T>> queue_;
};
#endif  // RINGMQ_HAVE_TBB

#ifdef RINGMQ_HAVE_XENIUM
// xenium::vyukov_bounded_queue: Dmitry Vyukov's bounded MPMC queue with a sequence per cell.
template <class T>
class xenium_vyukov_queue {
 public:
  using value_type = T;
  static constexpr bool is_mpmc = true;

  bool try_push(const T& element) { return queue_.try_push(element); }
  bool try_pop(T& element) { return queue_.try_pop(element); }

 private:
  xenium::vyukov_bounded_queue<T> queue_{queue_capacity};
};
#endif

// ---------------------------------------------------------------------------------------------
// Shape: push_pop.

template <class Queue>
void run_push_pop(benchmark::State& state) {
  using element_type = typename Queue::value_type;
  auto queue = std::make_unique<Queue>();
  auto&& producer = producer_for(*queue);
  auto&& consumer = consumer_for(*queue);
  std::uint64_t id = 0;

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    if (!producer.try_push(element_with_id<element_type>(id))) {
      state.SkipWithError("try_push on an empty queue failed");
      break;
    }
    element_type popped{};
    if (!consumer.try_pop(popped)) {
      state.SkipWithError("try_pop after a successful try_push found the queue empty");
      break;
    }
    if (id_of(popped) != id) {
      const std::string message = "try_pop returned element " + std::to_string(id_of(popped)) +
                                  ", expected " + std::to_string(id);
      state.SkipWithError(message.c_str());
      break;
    }
    ++id;
  }
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocations_so_far() - allocations_before),
                         benchmark::Counter::kAvgIterations);
}

// ---------------------------------------------------------------------------------------------
// Throughput shapes: 1p1c, 2p2c, 4p4c and bulk_1p1c.
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

// Moves items with one try_push or try_pop per item.
struct one_per_call {
  // Pushes items 0 to count - 1 of producer `producer_index`. Returns false if it stalled.
  template <class Element, class Producer>
  static bool push_items(Producer& producer, std::uint32_t producer_index, std::uint64_t count) {
    for (std::uint64_t index = 0; index < count; ++index) {
      if (!push_retrying(producer, element_with_id<Element>(make_item(producer_index, index)))) {
        return false;
      }
    }
    return true;
  }

  // Pops `count` items into `tally`. Returns false if it stalled.
  template <class Element, class Consumer>
  static bool pop_items(Consumer& consumer, std::uint64_t count, item_tally& tally) {
    for (std::uint64_t index = 0; index < count; ++index) {
      Element element{};
      if (!pop_retrying(consumer, element)) return false;
      tally.add(id_of(element));
    }
    return true;
  }
};

// Moves items with bulk calls of up to bulk_size items each.
struct bulk_per_call {
  template <class Element, class Producer>
  static bool push_items(Producer& producer, std::uint32_t producer_index, std::uint64_t count) {
    std::array<Element, bulk_size> batch{};
    for (std::uint64_t next = 0; next < count;) {
      const auto size = static_cast<std::size_t>(std::min<std::uint64_t>(bulk_size, count - next));
      for (std::size_t offset = 0; offset < size; ++offset) {
        batch[offset] = element_with_id<Element>(make_item(producer_index, next + offset));
      }
      for (std::size_t pushed = 0; pushed < size;) {
        retry_wait waiter;
        std::size_t now = 0;
        while ((now = producer.try_push_bulk(batch.data() + pushed, size - pushed)) == 0) {
          if (!waiter.wait()) return false;
        }
        pushed += now;
      }
      next += size;
    }
    return true;
  }

  template <class Element, class Consumer>
  static bool pop_items(Consumer& consumer, std::uint64_t count, item_tally& tally) {
    std::array<Element, bulk_size> batch{};
    for (std::uint64_t popped = 0; popped < count;) {
      const auto max = static_cast<std::size_t>(std::min<std::uint64_t>(bulk_size, count - popped));
      retry_wait waiter;
      std::size_t now = 0;
      while ((now = consumer.try_pop_bulk(batch.data(), max)) == 0) {
        if (!waiter.wait()) return false;
      }
      for (std::size_t offset = 0; offset < now; ++offset) tally.add(id_of(batch[offset]));
      popped += now;
    }
    return true;
  }
};

template <class Queue, class Calls>
void run_throughput(benchmark::State& state, std::uint32_t producer_count,
                    std::uint32_t consumer_count) {
  using element_type = typename Queue::value_type;
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
        static_cast<void>(Calls::template push_items<element_type>(producer, producer_index,
                                                                   items_per_producer));
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
        static_cast<void>(
            Calls::template pop_items<element_type>(consumer, items_per_consumer, tally));
        received[consumer_index] = tally;
        team.finish();
      }
    });
  }

  // With one thread on each side, each gets a core of its own (bench_support.hpp says why).
  // With more, the threads outnumber the cores and the scheduler places them.
  if (producer_count == 1 && consumer_count == 1) team.spread_over_cpus();

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
  static bool push(Producer& producer, std::uint64_t token) {
    return push_retrying(producer, token);
  }
  template <class Consumer>
  static bool pop(Consumer& consumer, std::uint64_t& token) {
    return pop_retrying(consumer, token);
  }
};

// Waits in the queue's own blocking calls.
struct blocking_calls {
  template <class Queue>
  static bool push(Queue& queue, std::uint64_t token) {
    return queue.push(token);
  }
  template <class Queue>
  static bool pop(Queue& queue, std::uint64_t& token) {
    return queue.pop(token);
  }
};

// Reports a reply that does not match its token, or the lack of a reply. Returns true if it
// reported one.
bool report_bad_reply(benchmark::State& state, bool replied, std::uint64_t token,
                      std::uint64_t reply) {
  if (!replied) {
    const std::string message = "timed out: token " + std::to_string(token) +
                                " got no reply within " + std::to_string(stall_timeout.count()) +
                                " s";
    state.SkipWithError(message.c_str());
    return true;
  }
  if (reply != token + 1) {
    const std::string message = "echo thread replied " + std::to_string(reply) + " to token " +
                                std::to_string(token) + ", expected " + std::to_string(token + 1);
    state.SkipWithError(message.c_str());
    return true;
  }
  return false;
}

// The benchmark thread sends a token through `requests`; an echo thread pops it and pushes the
// token + 1 through `replies`. One iteration is one round trip.
//
// NOTE: with blocking_calls, a queue that loses a token hangs the benchmark, because the
// peers' blocking pops have no timeout. The try_ shapes detect lost items.
template <class Queue, class Calls>
void run_ping_pong(benchmark::State& state) {
  auto requests = std::make_unique<Queue>();
  auto replies = std::make_unique<Queue>();
  // The two threads on different cores, as in the throughput shapes with one thread per side.
  const scoped_pin pin(0);

  std::thread echo([&requests, &replies] {
    auto&& consumer = consumer_for(*requests);
    auto&& producer = producer_for(*replies);
    for (;;) {
      std::uint64_t token = 0;
      if (!Calls::pop(consumer, token) || token == stop_token) return;
      if (!Calls::push(producer, token + 1)) return;
    }
  });
  static_cast<void>(pin_to_allowed_cpu(echo.native_handle(), 1));

  auto&& producer = producer_for(*requests);
  auto&& consumer = consumer_for(*replies);
  std::uint64_t token = 0;
  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    std::uint64_t reply = 0;
    const bool replied = Calls::push(producer, token) && Calls::pop(consumer, reply);
    if (report_bad_reply(state, replied, token, reply)) break;
    token += 2;
  }
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocations_so_far() - allocations_before),
                         benchmark::Counter::kAvgIterations);

  // If this push stalls, the echo thread has already stopped after its own 10 s stall.
  static_cast<void>(Calls::push(producer, stop_token));
  echo.join();
}

// ping_pong/8B/cache_line_floor: the round trip of run_ping_pong without a queue. The token goes
// out on one cache line and comes back on another, and each side waits with retry_wait as the
// queues' try_ shapes do. Per round trip, each line is written on one core and read on the
// other, so it crosses between the cores and back once; a queue's ping_pong moves at least these
// two lines.
void run_cache_line_floor(benchmark::State& state) {
  struct alignas(64) token_line {
    std::atomic<std::uint64_t> token{0};
  };
  auto requests = std::make_unique<token_line>();
  auto replies = std::make_unique<token_line>();
  const scoped_pin pin(0);

  // Waits until `line` holds a token other than `old`, and returns it; returns `old` if it
  // stalled.
  const auto next_token = [](const token_line& line, std::uint64_t old) {
    retry_wait waiter;
    for (;;) {
      // Acquire: pairs with the release store that wrote the token.
      const std::uint64_t token = line.token.load(std::memory_order_acquire);
      if (token != old || !waiter.wait()) return token;
    }
  };

  std::thread echo([&requests, &replies, &next_token] {
    std::uint64_t seen = 0;
    for (;;) {
      const std::uint64_t token = next_token(*requests, seen);
      if (token == seen || token == stop_token) return;
      seen = token;
      replies->token.store(token + 1, std::memory_order_release);
    }
  });
  static_cast<void>(pin_to_allowed_cpu(echo.native_handle(), 1));

  // Tokens are odd and replies even, so 0 in either line means "nothing yet".
  std::uint64_t token = 1;
  for (auto _ : state) {
    requests->token.store(token, std::memory_order_release);
    const std::uint64_t reply = next_token(*replies, token - 1);
    if (report_bad_reply(state, reply != token - 1, token, reply)) break;
    token += 2;
  }
  state.counters["allocs_per_op"] = 0;

  requests->token.store(stop_token, std::memory_order_release);
  echo.join();
}

// ---------------------------------------------------------------------------------------------
// Registration.

enum class shape {
  push_pop,
  one_to_one,
  two_to_two,
  four_to_four,
  bulk_one_to_one,
  ping_pong,
  ping_pong_blocking
};

void register_benchmark(const std::string& shape_name, const std::string& element,
                        const std::string& queue_name, void (*run)(benchmark::State&)) {
  const std::string name = shape_name + "/" + element + "/" + queue_name;
  benchmark::RegisterBenchmark(name.c_str(), run)->UseRealTime();
}

// Registers `queue_name` for `which` when the queue supports that shape: 2p2c and 4p4c need
// several threads on each side, bulk_1p1c needs bulk calls, ping_pong_blocking needs blocking
// calls, and the other shapes need try_ calls.
template <class Queue>
void register_shape(shape which, const std::string& queue_name) {
  const std::string element = element_name<typename Queue::value_type>();
  // The ping-pong shapes send std::uint64_t tokens, and the shapes registered for 8-byte
  // elements only are not instantiated for the others.
  constexpr bool holds_tokens = std::is_same_v<typename Queue::value_type, std::uint64_t>;
  switch (which) {
    case shape::push_pop:
      if constexpr (has_try_calls<Queue>) {
        register_benchmark("push_pop", element, queue_name, run_push_pop<Queue>);
      }
      break;
    case shape::one_to_one:
      if constexpr (has_try_calls<Queue>) {
        register_benchmark("1p1c", element, queue_name, [](benchmark::State& state) {
          run_throughput<Queue, one_per_call>(state, 1, 1);
        });
      }
      break;
    case shape::two_to_two:
      if constexpr (has_try_calls<Queue> && Queue::is_mpmc) {
        register_benchmark("2p2c", element, queue_name, [](benchmark::State& state) {
          run_throughput<Queue, one_per_call>(state, 2, 2);
        });
      }
      break;
    case shape::four_to_four:
      if constexpr (holds_tokens && has_try_calls<Queue> && Queue::is_mpmc) {
        register_benchmark("4p4c", element, queue_name, [](benchmark::State& state) {
          run_throughput<Queue, one_per_call>(state, 4, 4);
        });
      }
      break;
    case shape::bulk_one_to_one:
      if constexpr (holds_tokens && has_bulk_calls<Queue>) {
        register_benchmark("bulk_1p1c", element, queue_name, [](benchmark::State& state) {
          run_throughput<Queue, bulk_per_call>(state, 1, 1);
        });
      }
      break;
    case shape::ping_pong:
      if constexpr (holds_tokens && has_try_calls<Queue>) {
        register_benchmark("ping_pong", element, queue_name, run_ping_pong<Queue, retrying_calls>);
      }
      break;
    case shape::ping_pong_blocking:
      if constexpr (holds_tokens && has_blocking_calls<Queue>) {
        register_benchmark("ping_pong_blocking", element, queue_name,
                           run_ping_pong<Queue, blocking_calls>);
      }
      break;
  }
}

// Registers every queue of `Element`s for `which`, so that the output lists the queues of one
// shape and element together. The variants of ringmq's options run with 8-byte elements only.
template <class Element>
void register_queues(shape which) {
  using ringmq::packed;
  using ringmq::slot_layout;
  using ringmq::spin;
  using ringmq::wait;
  constexpr bool with_variants = std::is_same_v<Element, std::uint64_t>;

  // ringmq with its defaults: wait<park> and the padded slot layout (a cache line per slot).
  register_shape<ringmq_mpmc<Element>>(which, "ringmq_mpmc");
  register_shape<ringmq_spsc<Element>>(which, "ringmq_spsc");
  if constexpr (with_variants) {
    // With wait<spin>, the blocking calls spin, and the ring keeps no count of sleeping
    // threads, so the try_ shapes show what that count costs the default wait<park>.
    register_shape<ringmq_mpmc<Element, wait<spin>>>(which, "ringmq_mpmc_spin");
    register_shape<ringmq_spsc<Element, wait<spin>>>(which, "ringmq_spsc_spin");
    // The packed slot layout. Its blocking calls wait as those of the padded layout do.
    if (which != shape::ping_pong_blocking) {
      register_shape<ringmq_mpmc<Element, slot_layout<packed>>>(which, "ringmq_packed_mpmc");
      register_shape<ringmq_spsc<Element, slot_layout<packed>>>(which, "ringmq_packed_spsc");
    }
  }

#ifdef RINGMQ_HAVE_MOODYCAMEL
  register_shape<moodycamel_queue<Element>>(which, "moodycamel");
  register_shape<moodycamel_token_queue<Element>>(which, "moodycamel_tokens");
  register_shape<moodycamel_blocking_queue<Element>>(which, "moodycamel_blocking");
#endif
#ifdef RINGMQ_HAVE_READERWRITERQUEUE
  register_shape<readerwriterqueue_queue<Element>>(which, "readerwriterqueue");
#endif
#ifdef RINGMQ_HAVE_BOOST_LOCKFREE
  register_shape<boost_queue<Element>>(which, "boost_queue");
  register_shape<boost_spsc_queue<Element>>(which, "boost_spsc_queue");
#endif
#ifdef RINGMQ_HAVE_TBB
  register_shape<tbb_bounded_queue<Element>>(which, "tbb_bounded_queue");
#endif
#ifdef RINGMQ_HAVE_XENIUM
  register_shape<xenium_vyukov_queue<Element>>(which, "xenium_vyukov");
#endif
  register_shape<mutex_deque_queue<Element>>(which, "mutex_deque");
}

}  // namespace

int main(int argc, char** argv) {
  // Reads the process's CPUs before any benchmark pins a thread.
  static_cast<void>(ringmq_bench::allowed_cpus());
  // Element sizes 8, 64 and 256 bytes for the basic shapes; 8 bytes for the rest.
  for (shape which : {shape::push_pop, shape::one_to_one, shape::two_to_two}) {
    register_queues<std::uint64_t>(which);
    register_queues<payload<64>>(which);
    register_queues<payload<256>>(which);
  }
  for (shape which : {shape::four_to_four, shape::bulk_one_to_one, shape::ping_pong,
                      shape::ping_pong_blocking}) {
    if (which == shape::ping_pong) {
      register_benchmark("ping_pong", "8B", "cache_line_floor", run_cache_line_floor);
    }
    register_queues<std::uint64_t>(which);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
