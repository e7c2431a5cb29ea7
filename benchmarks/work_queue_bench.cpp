// Benchmarks of ringmq::work_queue against the ring it is built on and, when installed, against
// ZeroMQ's inproc PUSH/PULL sockets, in one binary, so that the ratios between them compare runs
// on the same machine under the same load.
//
// Every benchmark is named BM_<queue>_<shape>. The queues, each for std::uint64_t items:
//   work_queue      ringmq::work_queue<std::uint64_t>, capacity 1024, the default visibility
//                   timeout (30 s). Taking an item is a receive followed by an ack.
//   work_queue_coarse   the same on ringmq::coarse_steady_clock, which reads the time of the
//                   last timer tick instead of the precise time.
//   ring            ringmq::ring<std::uint64_t> with capacity 1024 and the default options
//                   (several producers and consumers, wait<park>). Taking an item is a pop.
//   zmq_push_pull   one ZMQ_PUSH socket bound to an inproc endpoint and one ZMQ_PULL socket per
//                   consumer connected to it, 8-byte messages. Each pipe from the PUSH socket to
//                   a PULL socket has room for zmq_pipe_capacity messages.
// The shapes:
//   1p1c, 1p2c                One producer thread and one or two consumer threads move
//                             items_per_iteration items. Both sides retry calls that do not
//                             wait (try_send, try_receive; ZMQ_DONTWAIT). Reported as items/s.
//   1p1c_blocking, 1p2c_blocking   The same with the calls that wait: send_for and
//                             receive_for, push_for and pop_for. Not for ZeroMQ.
//   1p1c_batch, 1p2c_batch    As 1p1c and 1p2c, but each consumer takes up to receive_batch
//                             items per call: try_receive_batch then ack_batch for the work
//                             queue, try_pop_bulk for the ring. Not for ZeroMQ.
//   send_receive_ack, push_pop, send_recv   One thread sends one message and takes it back,
//                             over and over, with nothing else queued. Time is per message.
//   steady_clock_now, coarse_steady_clock_now   One read of the clock. The coarse one also
//                             reports max_lag_ms: how far behind a precise read taken right
//                             after it the coarse clock was, at most, during the run.
//   send_receive_ack_reap     work_queue only, on a manual_clock: each message's lease expires
//                             once and the reaper hands it out again, with `leases` other
//                             messages leased and not due. Time is per message.
// Each benchmark also reports allocs_per_op: calls of the global operator new per item or per
// message. libzmq allocates with std::malloc, which that counter does not see, so the
// zmq_push_pull benchmarks report no allocs_per_op.
//
// Waiting after a failed try_ call is the same for every queue (retry_wait in
// bench_support.hpp): the CPU's pause hint for a while, then a yield on every round.
//
// Absolute times depend on the machine and its load. Compare queues by their ratios within
// one run.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ringmq/ring.hpp>
#include <ringmq/work_queue.hpp>

#include "bench_support.hpp"

#ifdef RINGMQ_HAVE_ZMQ
#include <zmq.hpp>
#endif

namespace {

using ringmq_bench::allocations_so_far;
using ringmq_bench::item_tally;
using ringmq_bench::make_item;
using ringmq_bench::retry_wait;
using ringmq_bench::stall_timeout;
using ringmq_bench::worker_team;

constexpr std::size_t queue_capacity = 1024;

// Items moved per iteration of the 1p1c and 1p2c shapes. Starting and stopping the worker
// threads takes tens of microseconds, which is about 1% of an iteration or less.
constexpr std::uint64_t items_per_iteration = std::uint64_t{1} << 18;

// Sets allocs_per_op to the allocations since `before`, per iteration.
void report_allocations_per_iteration(benchmark::State& state, std::uint64_t before) {
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocations_so_far() - before),
                         benchmark::Counter::kAvgIterations);
}

// ---------------------------------------------------------------------------------------------
// Queue adapters.
//
// Each adapter is constructed with the number of consumer threads. producer() and consumer(i)
// return the object that the producer thread and consumer thread i call:
//   bool try_push(std::uint64_t), bool try_pop(std::uint64_t&)   never wait
//   bool push(std::uint64_t), bool pop(std::uint64_t&)           wait up to stall_timeout
//                                                                (optional)
// After the last iteration, std::string problem(std::uint64_t items) describes what is wrong
// with the queue once `items` items have gone through it, or returns an empty string.
// allocations_counted is false when the queue allocates in ways the counter does not see.

template <class Clock>
class work_queue_adapter {
 public:
  static constexpr bool allocations_counted = true;
  using queue_type = ringmq::work_queue<std::uint64_t, ringmq::clock<Clock>>;

  explicit work_queue_adapter(std::uint32_t /*consumer_count*/) {}

  work_queue_adapter& producer() { return *this; }
  work_queue_adapter& consumer(std::uint32_t /*index*/) { return *this; }

  bool try_push(std::uint64_t value) { return queue_.try_send(value).ok(); }
  bool push(std::uint64_t value) { return queue_.send_for(value, stall_timeout).ok(); }

  bool try_pop(std::uint64_t& value) { return take(queue_.try_receive(), value); }
  bool pop(std::uint64_t& value) { return take(queue_.receive_for(stall_timeout), value); }

  std::string problem(std::uint64_t items) {
    const std::uint64_t failed = failed_acks_.load(std::memory_order_relaxed);
    if (failed != 0) return std::to_string(failed) + " acks of a fresh receipt returned false";

    // Every message sent was received once and acknowledged, and none is left.
    const ringmq::queue_stats stats = queue_.stats();
    if (stats.sent != items || stats.received != items || stats.acked != items) {
      return "work queue counted " + std::to_string(stats.sent) + " sent, " +
             std::to_string(stats.received) + " received and " + std::to_string(stats.acked) +
             " acked messages, expected " + std::to_string(items) + " of each";
    }
    if (stats.redelivered != 0 || stats.expired_leases != 0) {
      return "work queue counted " + std::to_string(stats.redelivered) + " redeliveries and " +
             std::to_string(stats.expired_leases) + " expired leases, expected none";
    }
    if (queue_.size() != 0) {
      return std::to_string(queue_.size()) + " messages left in the work queue, expected none";
    }
    return {};
  }

 private:
  bool take(std::optional<typename queue_type::delivery_type> delivery, std::uint64_t& value) {
    if (!delivery) return false;
    value = delivery->body();
    if (!queue_.ack(delivery->receipt())) failed_acks_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  queue_type queue_{ringmq::queue_config{.capacity = queue_capacity}};
  std::atomic<std::uint64_t> failed_acks_{0};

  template <class>
  friend class work_queue_batch_adapter;
};

// Items a consumer of the batch shapes takes per call.
constexpr std::size_t receive_batch = 16;

// The work queue with consumers that receive and acknowledge up to receive_batch messages per
// call, and hand the bodies out one by one from a buffer of their own.
template <class Clock>
class work_queue_batch_adapter : public work_queue_adapter<Clock> {
  using base = work_queue_adapter<Clock>;
  using delivery_type = typename base::queue_type::delivery_type;

 public:
  class batch_consumer {
   public:
    explicit batch_consumer(base& owner) : owner_(&owner) {
      deliveries_.reserve(receive_batch);
      bodies_.reserve(receive_batch);
    }

    bool try_pop(std::uint64_t& value) {
      if (next_ == bodies_.size() && !refill()) return false;
      value = bodies_[next_++];
      return true;
    }

   private:
    bool refill() {
      deliveries_.clear();
      bodies_.clear();
      next_ = 0;
      const std::size_t count = owner_->queue_.try_receive_batch(std::back_inserter(deliveries_),
                                                                 receive_batch);
      if (count == 0) return false;
      for (const delivery_type& delivery : deliveries_) bodies_.push_back(delivery.body());
      const std::size_t acked = owner_->queue_.ack_batch(deliveries_.begin(), deliveries_.end());
      owner_->failed_acks_.fetch_add(count - acked, std::memory_order_relaxed);
      return true;
    }

    base* owner_;
    std::vector<delivery_type> deliveries_;
    std::vector<std::uint64_t> bodies_;
    std::size_t next_ = 0;
  };

  explicit work_queue_batch_adapter(std::uint32_t consumer_count) : base(consumer_count) {
    for (std::uint32_t index = 0; index < consumer_count; ++index) consumers_.emplace_back(*this);
  }

  batch_consumer& consumer(std::uint32_t index) { return consumers_[index]; }

 private:
  std::vector<batch_consumer> consumers_;
};

class ring_adapter {
 public:
  static constexpr bool allocations_counted = true;

  explicit ring_adapter(std::uint32_t /*consumer_count*/) {}

  ring_adapter& producer() { return *this; }
  ring_adapter& consumer(std::uint32_t /*index*/) { return *this; }

  bool try_push(std::uint64_t value) { return ring_.try_push(value); }
  bool push(std::uint64_t value) { return ring_.push_for(value, stall_timeout); }

  bool try_pop(std::uint64_t& value) { return ring_.try_pop(value); }

  bool pop(std::uint64_t& value) {
    const std::optional<std::uint64_t> item = ring_.pop_for(stall_timeout);
    if (!item) return false;
    value = *item;
    return true;
  }

  std::string problem(std::uint64_t /*items*/) const {
    if (ring_.size() != 0) {
      return std::to_string(ring_.size()) + " items left in the ring, expected none";
    }
    return {};
  }

 private:
  ringmq::ring<std::uint64_t> ring_{queue_capacity};

  friend class ring_batch_adapter;
};

// The ring with consumers that pop up to receive_batch items per call into a buffer of their
// own.
class ring_batch_adapter : public ring_adapter {
 public:
  class batch_consumer {
   public:
    explicit batch_consumer(ring_adapter& owner) : owner_(&owner) {}

    bool try_pop(std::uint64_t& value) {
      if (next_ == count_) {
        next_ = 0;
        count_ = owner_->ring_.try_pop_bulk(items_.begin(), items_.size());
        if (count_ == 0) return false;
      }
      value = items_[next_++];
      return true;
    }

   private:
    ring_adapter* owner_;
    std::array<std::uint64_t, receive_batch> items_{};
    std::size_t next_ = 0;
    std::size_t count_ = 0;
  };

  explicit ring_batch_adapter(std::uint32_t consumer_count) : ring_adapter(consumer_count) {
    for (std::uint32_t index = 0; index < consumer_count; ++index) consumers_.emplace_back(*this);
  }

  batch_consumer& consumer(std::uint32_t index) { return consumers_[index]; }

 private:
  std::vector<batch_consumer> consumers_;
};

#ifdef RINGMQ_HAVE_ZMQ
// Room of one PUSH-to-PULL pipe, in messages. On an inproc connection libzmq adds the sender's
// ZMQ_SNDHWM to the receiver's ZMQ_RCVHWM, so each is set to half of this: with libzmq 4.3.4,
// 1024 non-blocking sends succeed on a pipe whose reader takes nothing.
constexpr int zmq_pipe_capacity = 1024;

class zmq_sender {
 public:
  explicit zmq_sender(zmq::context_t& context) : socket_(context, zmq::socket_type::push) {
    socket_.set(zmq::sockopt::sndhwm, zmq_pipe_capacity / 2);
    socket_.set(zmq::sockopt::linger, 0);
  }

  zmq::socket_t& socket() { return socket_; }

  bool try_push(std::uint64_t value) {
    return socket_.send(zmq::const_buffer(&value, sizeof value), zmq::send_flags::dontwait)
        .has_value();
  }

 private:
  zmq::socket_t socket_;
};

class zmq_receiver {
 public:
  explicit zmq_receiver(zmq::context_t& context) : socket_(context, zmq::socket_type::pull) {
    socket_.set(zmq::sockopt::rcvhwm, zmq_pipe_capacity / 2);
    socket_.set(zmq::sockopt::linger, 0);
  }

  zmq::socket_t& socket() { return socket_; }

  bool try_pop(std::uint64_t& value) {
    const zmq::recv_buffer_result_t received =
        socket_.recv(zmq::mutable_buffer(&value, sizeof value), zmq::recv_flags::dontwait);
    if (!received) return false;
    if (received->untruncated_size != sizeof value) ++wrong_sizes_;
    return true;
  }

  // Messages received whose size was not 8 bytes. Read it only while this socket's thread is
  // stopped.
  std::uint64_t wrong_sizes() const { return wrong_sizes_; }

 private:
  zmq::socket_t socket_;
  std::uint64_t wrong_sizes_ = 0;
};

// Sockets are not thread-safe. Each is created here and then used only by the worker thread
// that is created after it and handed it, which is the way zmq(7) of libzmq 4.3 gives to move a
// socket to another thread.
class zmq_push_pull_adapter {
 public:
  // libzmq allocates with std::malloc, which the counter does not see.
  static constexpr bool allocations_counted = false;

  explicit zmq_push_pull_adapter(std::uint32_t consumer_count) : sender_(context_) {
    sender_.socket().bind(endpoint);
    for (std::uint32_t index = 0; index < consumer_count; ++index) {
      receivers_.push_back(std::make_unique<zmq_receiver>(context_));
      receivers_.back()->socket().connect(endpoint);
    }
  }

  zmq_sender& producer() { return sender_; }
  zmq_receiver& consumer(std::uint32_t index) { return *receivers_[index]; }

  // Reads only the receivers' own counts, because the sockets belong to the worker threads.
  std::string problem(std::uint64_t /*items*/) const {
    for (const std::unique_ptr<zmq_receiver>& receiver : receivers_) {
      if (receiver->wrong_sizes() != 0) {
        return std::to_string(receiver->wrong_sizes()) +
               " ZeroMQ messages were not 8 bytes long";
      }
    }
    return {};
  }

 private:
  static constexpr const char* endpoint = "inproc://work_queue_bench";

  // Declared first, so that it is destroyed after the sockets.
  zmq::context_t context_;
  zmq_sender sender_;
  std::vector<std::unique_ptr<zmq_receiver>> receivers_;
};
#endif  // RINGMQ_HAVE_ZMQ

// ---------------------------------------------------------------------------------------------
// Shapes 1p1c, 1p2c and their blocking forms: throughput with worker threads.
//
// One iteration is timed from the start of the first worker to the end of the last, as in
// ring_bench (worker_team in bench_support.hpp). The producer sends the items 0, 1, ...,
// items_per_iteration - 1.
//
// With try_ calls, the consumers take items until they have taken items_per_iteration
// together: each publishes its own count, and reads the others' only after a call found
// nothing. A fixed share per consumer would not do, because a PUSH socket skips a pipe that
// is full, so two PULL sockets need not get the same number of messages. With waiting calls,
// each consumer takes a fixed share, because a consumer blocked in receive_for would not see
// another consumer take the last item.

// Items taken by one consumer in the current iteration, on a cache line of its own.
struct alignas(64) consumer_progress {
  std::atomic<std::uint64_t> taken{0};
};

std::uint64_t taken_by_all(const std::vector<consumer_progress>& progress) {
  std::uint64_t sum = 0;
  for (const consumer_progress& one : progress) sum += one.taken.load(std::memory_order_relaxed);
  return sum;
}

enum class calls { retrying, waiting };

// Pushes `value`, retrying while the queue is full. Returns false if it stalled.
template <class Producer>
bool push_retrying(Producer& producer, std::uint64_t value) {
  retry_wait waiter;
  while (!producer.try_push(value)) {
    if (!waiter.wait()) return false;
  }
  return true;
}

// Takes items with try_pop until the consumers have taken items_per_iteration together, or
// until a stall.
template <class Consumer>
item_tally take_until_all_taken(Consumer& consumer, std::vector<consumer_progress>& progress,
                                std::uint32_t index) {
  item_tally tally;
  retry_wait waiter;
  for (;;) {
    std::uint64_t item = 0;
    if (consumer.try_pop(item)) {
      tally.add(item);
      progress[index].taken.store(tally.count, std::memory_order_relaxed);
      waiter = retry_wait{};
      continue;
    }
    if (taken_by_all(progress) >= items_per_iteration) break;
    if (!waiter.wait()) break;  // stalled: the benchmark thread reports the missing items
  }
  return tally;
}

// Takes `share` items with the waiting pop, or fewer after a stall.
template <class Consumer>
item_tally take_share(Consumer& consumer, std::uint64_t share) {
  item_tally tally;
  for (std::uint64_t taken = 0; taken < share; ++taken) {
    std::uint64_t item = 0;
    if (!consumer.pop(item)) break;
    tally.add(item);
  }
  return tally;
}

template <class Queue, calls Calls>
void run_throughput(benchmark::State& state, std::uint32_t consumer_count) {
  auto queue = std::make_unique<Queue>(consumer_count);

  item_tally expected;
  for (std::uint64_t index = 0; index < items_per_iteration; ++index) {
    expected.add(make_item(0, index));
  }

  std::vector<item_tally> received(consumer_count);
  std::vector<consumer_progress> progress(consumer_count);
  worker_team team(1 + consumer_count);
  team.add([&queue, &team] {
    auto& producer = queue->producer();
    std::uint32_t seen = 0;
    while (team.wait_for_start(seen)) {
      // A stalled push ends the iteration early, and the consumers' tallies report it.
      for (std::uint64_t index = 0; index < items_per_iteration; ++index) {
        const std::uint64_t item = make_item(0, index);
        bool pushed = false;
        if constexpr (Calls == calls::retrying) {
          pushed = push_retrying(producer, item);
        } else {
          pushed = producer.push(item);
        }
        if (!pushed) break;
      }
      team.finish();
    }
  });
  for (std::uint32_t index = 0; index < consumer_count; ++index) {
    team.add([&queue, &team, &received, &progress, index] {
      auto& consumer = queue->consumer(index);
      std::uint32_t seen = 0;
      while (team.wait_for_start(seen)) {
        if constexpr (Calls == calls::retrying) {
          received[index] = take_until_all_taken(consumer, progress, index);
        } else {
          received[index] = take_share(consumer, items_per_iteration / progress.size());
        }
        team.finish();
      }
    });
  }

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    // The workers are idle here, and run_iteration's release publishes the reset counts.
    for (consumer_progress& one : progress) one.taken.store(0, std::memory_order_relaxed);
    team.run_iteration();

    item_tally total;
    for (const item_tally& tally : received) total.add(tally);
    if (total.count != expected.count) {
      const std::string message = "consumers took " + std::to_string(total.count) + " of " +
                                  std::to_string(expected.count) + " items, then none for " +
                                  std::to_string(stall_timeout.count()) + " s";
      state.SkipWithError(message.c_str());
      break;
    }
    if (total != expected) {
      state.SkipWithError(
          "items lost or duplicated: the sums of the items taken differ from those sent");
      break;
    }
  }
  // Read before SetItemsProcessed, which allocates when it adds its counter.
  const std::uint64_t allocations = allocations_so_far() - allocations_before;
  const std::uint64_t items = state.iterations() * items_per_iteration;

  if (!state.error_occurred()) {
    const std::string problem = queue->problem(items);
    if (!problem.empty()) state.SkipWithError(problem.c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  if constexpr (Queue::allocations_counted) {
    state.counters["allocs_per_op"] =
        static_cast<double>(allocations) / static_cast<double>(items == 0 ? 1 : items);
  }
}

// ---------------------------------------------------------------------------------------------
// Single-thread shapes: one message at a time, time per message.

template <class Clock>
void run_work_queue_send_receive_ack(benchmark::State& state) {
  using queue_type = ringmq::work_queue<std::uint64_t, ringmq::clock<Clock>>;
  auto queue = std::make_unique<queue_type>(ringmq::queue_config{.capacity = queue_capacity});
  std::uint64_t value = 0;

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    const ringmq::send_result sent = queue->try_send(value);
    if (!sent) {
      const std::string message = "try_send on an empty queue returned " +
                                  std::string(ringmq::to_string(sent.status)) + ", expected ok";
      state.SkipWithError(message.c_str());
      break;
    }
    const std::optional<typename queue_type::delivery_type> delivery = queue->try_receive();
    if (!delivery) {
      state.SkipWithError("try_receive after a successful try_send found nothing visible");
      break;
    }
    if (delivery->body() != value) {
      const std::string message = "try_receive returned " + std::to_string(delivery->body()) +
                                  ", expected " + std::to_string(value);
      state.SkipWithError(message.c_str());
      break;
    }
    if (!queue->ack(delivery->receipt())) {
      state.SkipWithError("ack of a fresh receipt returned false");
      break;
    }
    ++value;
  }
  report_allocations_per_iteration(state, allocations_before);
}

void run_ring_push_pop(benchmark::State& state) {
  auto ring = std::make_unique<ringmq::ring<std::uint64_t>>(queue_capacity);
  std::uint64_t value = 0;

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    if (!ring->try_push(value)) {
      state.SkipWithError("try_push on an empty ring failed");
      break;
    }
    std::uint64_t popped = 0;
    if (!ring->try_pop(popped)) {
      state.SkipWithError("try_pop after a successful try_push found the ring empty");
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
  report_allocations_per_iteration(state, allocations_before);
}

#ifdef RINGMQ_HAVE_ZMQ
// The receive retries in case the message has not reached the PULL socket when the send
// returns.
void run_zmq_send_recv(benchmark::State& state) {
  zmq_push_pull_adapter sockets(1);
  zmq_sender& sender = sockets.producer();
  zmq_receiver& receiver = sockets.consumer(0);
  std::uint64_t value = 0;

  for (auto _ : state) {
    if (!push_retrying(sender, value)) {
      state.SkipWithError("send to an empty PUSH socket stalled");
      break;
    }
    std::uint64_t received = 0;
    retry_wait waiter;
    bool stalled = false;
    while (!receiver.try_pop(received)) {
      if (!waiter.wait()) {
        stalled = true;
        break;
      }
    }
    if (stalled) {
      state.SkipWithError("the PULL socket received nothing after a successful send");
      break;
    }
    if (received != value) {
      const std::string message = "the PULL socket received " + std::to_string(received) +
                                  ", expected " + std::to_string(value);
      state.SkipWithError(message.c_str());
      break;
    }
    ++value;
  }
  if (!state.error_occurred()) {
    const std::string problem = sockets.problem(0);
    if (!problem.empty()) state.SkipWithError(problem.c_str());
  }
}
#endif  // RINGMQ_HAVE_ZMQ

// One lease expiry per message, with state.range(0) other messages leased and not due. The queue
// runs on a manual_clock. Each iteration sends a message, receives it with a 1 s lease, moves the
// clock past the end of that lease, and receives again: that receive runs the reaper, which
// finds the expired lease, makes the message visible and hands it out a second time, and the
// message is acknowledged. The other leases last ten years and sit in the reaper's deadline heap.
// The reaper looks only at deadlines that are due and a heap update costs O(log n), so the time
// per message should stay nearly flat as the number of leases not due grows.
void run_work_queue_send_receive_ack_reap(benchmark::State& state) {
  constexpr std::chrono::hours long_lease{24 * 365 * 10};
  const auto leased = static_cast<std::size_t>(state.range(0));
  using manual_queue =
      ringmq::work_queue<std::uint64_t, ringmq::clock<ringmq::manual_clock>>;
  ringmq::manual_clock clock;
  auto queue = std::make_unique<manual_queue>(
      ringmq::queue_config{.capacity = leased + queue_capacity,
                           .visibility_timeout = std::chrono::seconds(1),
                           .max_visibility_timeout = long_lease},
      clock);

  // Lease `leased` messages for ten years and keep their deliveries, so that no receipt goes out
  // of use and no iteration count reaches their end.
  std::vector<manual_queue::delivery_type> outstanding;
  outstanding.reserve(leased);
  for (std::size_t index = 0; index < leased; ++index) {
    if (!queue->try_send(std::uint64_t{index})) {
      state.SkipWithError("try_send failed while filling the queue with leased messages");
      return;
    }
    std::optional<manual_queue::delivery_type> delivery =
        queue->try_receive({.visibility_timeout = long_lease});
    if (!delivery) {
      state.SkipWithError("try_receive found nothing visible after a successful try_send");
      return;
    }
    outstanding.push_back(std::move(*delivery));
  }
  // stats() runs the reaper, which moves every outstanding lease into the deadline heap.
  const ringmq::queue_stats before = queue->stats();
  if (before.in_flight != leased) {
    const std::string message = "the queue counted " + std::to_string(before.in_flight) +
                                " leases after setup, expected " + std::to_string(leased);
    state.SkipWithError(message.c_str());
    return;
  }

  std::uint64_t value = leased;
  std::uint64_t expiries = 0;
  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    if (!queue->try_send(value)) {
      state.SkipWithError("try_send failed with room in the queue");
      break;
    }
    const std::optional<manual_queue::delivery_type> first = queue->try_receive();
    if (!first || first->body() != value) {
      state.SkipWithError("try_receive did not return the message just sent");
      break;
    }
    clock.advance(std::chrono::seconds(1));
    const std::optional<manual_queue::delivery_type> second = queue->try_receive();
    if (!second || second->body() != value || second->receive_count() != 2) {
      state.SkipWithError("the receive after the lease ended did not hand the message out again");
      break;
    }
    if (!queue->ack(second->receipt())) {
      state.SkipWithError("ack of a fresh receipt returned false");
      break;
    }
    ++expiries;
    ++value;
  }
  report_allocations_per_iteration(state, allocations_before);

  if (state.error_occurred()) return;
  const ringmq::queue_stats after = queue->stats();
  if (after.in_flight != leased || after.expired_leases != expiries) {
    const std::string message = "the queue counted " + std::to_string(after.in_flight) +
                                " leases and " + std::to_string(after.expired_leases) +
                                " expired leases at the end, expected " +
                                std::to_string(leased) + " and " + std::to_string(expiries);
    state.SkipWithError(message.c_str());
  }
}

// ---------------------------------------------------------------------------------------------
// Clock reads.

void run_steady_clock_now(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(std::chrono::steady_clock::now());
  }
}

void run_coarse_steady_clock_now(benchmark::State& state) {
  std::chrono::nanoseconds max_lag{0};
  std::uint32_t round = 0;
  for (auto _ : state) {
    const auto coarse = ringmq::coarse_steady_clock::now();
    benchmark::DoNotOptimize(coarse);
    // Measure the lag on one read in 64, so that the precise reads barely count in the time.
    if (++round % 64 == 0) max_lag = std::max(max_lag, std::chrono::steady_clock::now() - coarse);
  }
  state.counters["max_lag_ms"] = std::chrono::duration<double, std::milli>(max_lag).count();
}

// ---------------------------------------------------------------------------------------------
// Registration.

void register_benchmark(const std::string& name, void (*run)(benchmark::State&)) {
  benchmark::RegisterBenchmark(("BM_" + name).c_str(), run)->UseRealTime();
}

template <class Queue>
concept has_waiting_calls = requires(Queue& queue, std::uint64_t& value) {
  queue.producer().push(value);
  queue.consumer(0).pop(value);
};

enum class shape {
  one_to_one,
  one_to_two,
  one_to_one_blocking,
  one_to_two_blocking,
  one_to_one_batch,
  one_to_two_batch
};

// Registers `queue_name` for `which` unless the shape needs waiting calls the queue lacks.
template <class Queue>
void register_shape(shape which, const std::string& queue_name) {
  switch (which) {
    case shape::one_to_one:
      register_benchmark(queue_name + "_1p1c", [](benchmark::State& state) {
        run_throughput<Queue, calls::retrying>(state, 1);
      });
      break;
    case shape::one_to_two:
      register_benchmark(queue_name + "_1p2c", [](benchmark::State& state) {
        run_throughput<Queue, calls::retrying>(state, 2);
      });
      break;
    case shape::one_to_one_blocking:
      if constexpr (has_waiting_calls<Queue>) {
        register_benchmark(queue_name + "_1p1c_blocking", [](benchmark::State& state) {
          run_throughput<Queue, calls::waiting>(state, 1);
        });
      }
      break;
    case shape::one_to_two_blocking:
      if constexpr (has_waiting_calls<Queue>) {
        register_benchmark(queue_name + "_1p2c_blocking", [](benchmark::State& state) {
          run_throughput<Queue, calls::waiting>(state, 2);
        });
      }
      break;
    case shape::one_to_one_batch:
      register_benchmark(queue_name + "_1p1c_batch", [](benchmark::State& state) {
        run_throughput<Queue, calls::retrying>(state, 1);
      });
      break;
    case shape::one_to_two_batch:
      register_benchmark(queue_name + "_1p2c_batch", [](benchmark::State& state) {
        run_throughput<Queue, calls::retrying>(state, 2);
      });
      break;
  }
}

// Registers every benchmark, grouped by shape so that the output lists the queues of one shape
// together.
void register_all() {
  for (shape which : {shape::one_to_one, shape::one_to_two, shape::one_to_one_blocking,
                      shape::one_to_two_blocking}) {
    register_shape<work_queue_adapter<std::chrono::steady_clock>>(which, "work_queue");
    register_shape<work_queue_adapter<ringmq::coarse_steady_clock>>(which, "work_queue_coarse");
    register_shape<ring_adapter>(which, "ring");
#ifdef RINGMQ_HAVE_ZMQ
    register_shape<zmq_push_pull_adapter>(which, "zmq_push_pull");
#endif
  }
  for (shape which : {shape::one_to_one_batch, shape::one_to_two_batch}) {
    register_shape<work_queue_batch_adapter<std::chrono::steady_clock>>(which, "work_queue");
    register_shape<work_queue_batch_adapter<ringmq::coarse_steady_clock>>(which,
                                                                          "work_queue_coarse");
    register_shape<ring_batch_adapter>(which, "ring");
  }

  register_benchmark("work_queue_send_receive_ack",
                     run_work_queue_send_receive_ack<std::chrono::steady_clock>);
  register_benchmark("work_queue_coarse_send_receive_ack",
                     run_work_queue_send_receive_ack<ringmq::coarse_steady_clock>);
  register_benchmark("ring_push_pop", run_ring_push_pop);
#ifdef RINGMQ_HAVE_ZMQ
  register_benchmark("zmq_push_pull_send_recv", run_zmq_send_recv);
#endif

  register_benchmark("steady_clock_now", run_steady_clock_now);
  register_benchmark("coarse_steady_clock_now", run_coarse_steady_clock_now);

  benchmark::RegisterBenchmark("BM_work_queue_send_receive_ack_reap",
                               run_work_queue_send_receive_ack_reap)
      ->ArgName("leases")
      ->Arg(0)
      ->Arg(64)
      ->Arg(4096)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
