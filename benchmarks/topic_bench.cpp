// Benchmarks of ringmq::topic fan-out against ZeroMQ's inproc PUB/SUB sockets, when installed,
// in one binary, so that the ratios between them compare runs on the same machine under the
// same load.
//
// Every benchmark is named BM_<fan-out>/subscriptions:<n>, for n = 1, 4 and 16 subscriptions,
// each for std::uint64_t messages:
//   topic_fanout       ringmq::topic<std::uint64_t>, n subscriptions bound with "#", each with a
//                      ring inbox of capacity 1024 and overflow_policy::block (nothing is
//                      dropped). The publisher calls publish(message).
//   topic_fanout_keyed the same with the routing key "orders.eu.created" and the bindings
//                      "orders.*.created", so that every publish runs the pattern matcher.
//   topic_single_fanout, topic_single_fanout_keyed   the same two with producers<single>: one
//                      thread publishes, as with a ZeroMQ socket, which is not thread-safe.
//   rings_by_hand      n ringmq::ring<std::uint64_t> of capacity 1024; the publisher pushes each
//                      message into every ring itself, waiting while one is full. The lower
//                      bound of what the topic adds: no table, no matching, no counters.
//   zmq_pub_sub        one ZMQ_PUB socket bound to an inproc endpoint and n ZMQ_SUB sockets
//                      subscribed to every message (""). ZMQ_XPUB_NODROP makes a send fail with
//                      EAGAIN, instead of dropping, while a subscriber's pipe is full, and the
//                      publisher retries, so nothing is dropped here either. Each pipe has room
//                      for 1024 messages, as each ring does.
//   zmq_pub_sub_deep   the same with pipes of 65536 messages. A PUB socket learns that a full
//                      pipe has room again from a command, and a send reads its commands at
//                      most once per 3,000,000 CPU ticks (libzmq 4.3's max_command_delay, 1 to
//                      2 ms). With small pipes that, not the CPU, bounds ZeroMQ's rate, so this
//                      variant shows ZeroMQ when the pipes rarely fill.
//
// Threads: one publisher thread publishes messages_per_iteration messages, and one consumer
// thread drains all n subscriptions in turn, taking what each has without waiting. A consumer
// per subscription would put up to 17 threads on the 2 cores this benchmark is run on, and
// measure the scheduler. Reported: items/s counts published messages (each one reaches n
// subscriptions), and allocs_per_op counts calls of the global operator new per published
// message on both threads. libzmq allocates with std::malloc, which that counter does not see,
// so the zmq benchmarks report no allocs_per_op.
//
// The consumer checks the count, sum and sum of squares of what each subscription received, so
// a lost or duplicated message fails the run.
//
// Absolute rates depend on the machine and its load. Compare by their ratios within one run.

#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ringmq/ring.hpp>
#include <ringmq/topic.hpp>

#include "bench_support.hpp"

#ifdef RINGMQ_HAVE_ZMQ
#include <zmq.hpp>
#endif

namespace {

using ringmq_bench::allocations_so_far;
using ringmq_bench::item_tally;
using ringmq_bench::make_item;
using ringmq_bench::retry_wait;
using ringmq_bench::worker_team;

constexpr std::size_t inbox_capacity = 1024;
constexpr std::uint64_t messages_per_iteration = std::uint64_t{1} << 16;
// Messages the consumer takes from one subscription before it moves to the next.
constexpr std::size_t consumer_batch = 256;
// Room of each pipe of zmq_pub_sub_deep, in messages.
constexpr std::size_t zmq_deep_pipe = std::size_t{1} << 16;

// ---------------------------------------------------------------------------------------------
// Fan-out adapters.
//
// Each adapter is constructed with the number of subscriptions n. The publisher thread calls
// bool publish(std::uint64_t), which waits while a subscription is full and returns false if it
// stalled. The consumer thread calls std::size_t take(i, std::uint64_t* out, std::size_t max),
// which takes up to max messages of subscription i without waiting. problem() describes what is
// wrong after the run, or returns "".

template <class Topic>
class topic_adapter {
 public:
  static constexpr bool allocations_counted = true;

  topic_adapter(std::size_t subscriptions, std::string_view key, std::string_view binding)
      : key_(key) {
    for (std::size_t index = 0; index < subscriptions; ++index) {
      subscriptions_.push_back(
          topic_.subscribe(binding, ringmq::ring_inbox{.capacity = inbox_capacity}));
    }
  }

  bool publish(std::uint64_t message) {
    const ringmq::publish_result result = topic_.publish(key_, message);
    if (result.delivered != subscriptions_.size()) ++failed_publishes_;
    return true;  // a blocked publish waits until its consumer makes room
  }

  std::size_t take(std::size_t index, std::uint64_t* out, std::size_t max) {
    return subscriptions_[index].inbox().try_pop_bulk(out, max);
  }

  std::string problem() const {
    if (failed_publishes_ != 0) {
      return std::to_string(failed_publishes_) + " publishes reached fewer subscriptions than " +
             "were bound";
    }
    for (const auto& subscription : subscriptions_) {
      const ringmq::subscription_stats stats = subscription.stats();
      if (stats.dropped_newest + stats.dropped_oldest + stats.block_timeouts +
              stats.dropped_closed !=
          0) {
        return "a subscription counted drops";
      }
    }
    return {};
  }

 private:
  std::string key_;
  Topic topic_;
  std::vector<typename Topic::ring_subscription> subscriptions_;
  std::uint64_t failed_publishes_ = 0;  // written by the publisher, read after it stopped
};

using multi_topic = ringmq::topic<std::uint64_t>;
using single_topic = ringmq::topic<std::uint64_t, ringmq::producers<ringmq::single>>;

template <class Topic>
class unkeyed_topic_adapter : public topic_adapter<Topic> {
 public:
  explicit unkeyed_topic_adapter(std::size_t subscriptions)
      : topic_adapter<Topic>(subscriptions, "", "#") {}
};

template <class Topic>
class keyed_topic_adapter : public topic_adapter<Topic> {
 public:
  explicit keyed_topic_adapter(std::size_t subscriptions)
      : topic_adapter<Topic>(subscriptions, "orders.eu.created", "orders.*.created") {}
};

class rings_adapter {
 public:
  static constexpr bool allocations_counted = true;

  explicit rings_adapter(std::size_t subscriptions) {
    for (std::size_t index = 0; index < subscriptions; ++index) {
      rings_.push_back(std::make_unique<ring_type>(inbox_capacity));
    }
  }

  bool publish(std::uint64_t message) {
    for (const std::unique_ptr<ring_type>& ring : rings_) {
      if (!ring->try_push(message) && !ring->push(message)) return false;
    }
    return true;
  }

  std::size_t take(std::size_t index, std::uint64_t* out, std::size_t max) {
    return rings_[index]->try_pop_bulk(out, max);
  }

  std::string problem() const { return {}; }

 private:
  using ring_type = ringmq::ring<std::uint64_t>;
  std::vector<std::unique_ptr<ring_type>> rings_;
};

#ifdef RINGMQ_HAVE_ZMQ
// Sockets are not thread-safe. Each is created and prepared on the benchmark thread, then used
// only by the worker thread created after it, which is the way zmq(7) of libzmq 4.3 gives to
// move a socket to another thread.
template <std::size_t PipeCapacity>
class zmq_pub_sub_adapter {
 public:
  // libzmq allocates with std::malloc, which the counter does not see.
  static constexpr bool allocations_counted = false;

  // Marks the messages that wait for the subscriptions to reach the publisher. The consumer
  // skips them.
  static constexpr std::uint64_t probe = ~std::uint64_t{0};

  explicit zmq_pub_sub_adapter(std::size_t subscriptions)
      : publisher_(context_, zmq::socket_type::pub) {
    // On an inproc connection libzmq adds the sender's ZMQ_SNDHWM to the receiver's
    // ZMQ_RCVHWM, so each is half of a pipe's room.
    publisher_.set(zmq::sockopt::sndhwm, static_cast<int>(PipeCapacity / 2));
    publisher_.set(zmq::sockopt::xpub_nodrop, 1);
    publisher_.set(zmq::sockopt::linger, 0);
    publisher_.bind(endpoint);
    for (std::size_t index = 0; index < subscriptions; ++index) {
      subscribers_.emplace_back(context_, zmq::socket_type::sub);
      zmq::socket_t& subscriber = subscribers_.back();
      subscriber.set(zmq::sockopt::rcvhwm, static_cast<int>(PipeCapacity / 2));
      subscriber.set(zmq::sockopt::linger, 0);
      subscriber.set(zmq::sockopt::subscribe, "");
      subscriber.connect(endpoint);
    }
    wait_for_subscriptions();
  }

  bool publish(std::uint64_t message) {
    retry_wait waiter;
    while (
        !publisher_.send(zmq::const_buffer(&message, sizeof message), zmq::send_flags::dontwait)) {
      if (!waiter.wait()) return false;
    }
    return true;
  }

  std::size_t take(std::size_t index, std::uint64_t* out, std::size_t max) {
    std::size_t count = 0;
    while (count < max) {
      std::uint64_t value = 0;
      const zmq::recv_buffer_result_t received = subscribers_[index].recv(
          zmq::mutable_buffer(&value, sizeof value), zmq::recv_flags::dontwait);
      if (!received) break;
      if (received->untruncated_size != sizeof value) ++wrong_sizes_;
      if (value == probe) continue;
      out[count++] = value;
    }
    return count;
  }

  std::string problem() const {
    if (wrong_sizes_ != 0) {
      return std::to_string(wrong_sizes_) + " ZeroMQ messages were not 8 bytes long";
    }
    return {};
  }

 private:
  static constexpr const char* endpoint = "inproc://topic_bench";

  // A subscription reaches a PUB socket some time after connect() returns. Sends probes until
  // every subscriber has received one, so that the measured messages go to all of them.
  void wait_for_subscriptions() {
    std::vector<bool> reached(subscribers_.size(), false);
    std::size_t missing = subscribers_.size();
    retry_wait waiter;
    while (missing != 0) {
      std::uint64_t message = probe;
      (void)publisher_.send(zmq::const_buffer(&message, sizeof message), zmq::send_flags::dontwait);
      for (std::size_t index = 0; index < subscribers_.size(); ++index) {
        std::uint64_t value = 0;
        while (subscribers_[index].recv(zmq::mutable_buffer(&value, sizeof value),
                                        zmq::recv_flags::dontwait)) {
          if (!reached[index]) {
            reached[index] = true;
            --missing;
          }
        }
      }
      if (!waiter.wait()) break;  // reported by the run as missing messages
    }
  }

  // Declared first, so that it is destroyed after the sockets.
  zmq::context_t context_;
  zmq::socket_t publisher_;
  std::vector<zmq::socket_t> subscribers_;
  std::uint64_t wrong_sizes_ = 0;  // written by the consumer, read after it stopped
};
#endif  // RINGMQ_HAVE_ZMQ

// ---------------------------------------------------------------------------------------------
// The shape: one publisher thread, one consumer thread draining every subscription.

template <class Adapter>
void run_fanout(benchmark::State& state) {
  const auto subscriptions = static_cast<std::size_t>(state.range(0));
  auto fanout = std::make_unique<Adapter>(subscriptions);

  item_tally expected;
  for (std::uint64_t index = 0; index < messages_per_iteration; ++index) {
    expected.add(make_item(0, index));
  }

  std::vector<item_tally> received(subscriptions);
  bool publisher_stalled = false;
  worker_team team(2);
  team.add([&fanout, &team, &publisher_stalled] {
    std::uint32_t seen = 0;
    while (team.wait_for_start(seen)) {
      for (std::uint64_t index = 0; index < messages_per_iteration; ++index) {
        if (!fanout->publish(make_item(0, index))) {
          publisher_stalled = true;
          break;
        }
      }
      team.finish();
    }
  });
  team.add([&fanout, &team, &received, subscriptions] {
    std::uint32_t seen = 0;
    std::array<std::uint64_t, consumer_batch> batch{};
    while (team.wait_for_start(seen)) {
      std::fill(received.begin(), received.end(), item_tally{});
      std::size_t complete = 0;
      retry_wait waiter;
      while (complete < subscriptions) {
        bool took = false;
        for (std::size_t index = 0; index < subscriptions; ++index) {
          item_tally& tally = received[index];
          if (tally.count == messages_per_iteration) continue;
          const std::size_t count = fanout->take(index, batch.data(), batch.size());
          for (std::size_t i = 0; i < count; ++i) tally.add(batch[i]);
          if (count != 0) took = true;
          if (tally.count == messages_per_iteration) ++complete;
        }
        if (took) {
          waiter = retry_wait{};
        } else if (!waiter.wait()) {
          break;  // stalled: the benchmark thread reports the missing messages
        }
      }
      team.finish();
    }
  });

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    team.run_iteration();
    if (publisher_stalled) {
      state.SkipWithError("the publisher found a subscription full for 10 s");
      break;
    }
    bool all_received = true;
    for (const item_tally& tally : received) all_received = all_received && tally == expected;
    if (!all_received) {
      state.SkipWithError("a subscription received other messages than were published");
      break;
    }
  }
  // Read before SetItemsProcessed, which allocates when it adds its counter.
  const std::uint64_t allocations = allocations_so_far() - allocations_before;
  const std::uint64_t messages = state.iterations() * messages_per_iteration;

  if (!state.error_occurred()) {
    const std::string problem = fanout->problem();
    if (!problem.empty()) state.SkipWithError(problem.c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  if constexpr (Adapter::allocations_counted) {
    state.counters["allocs_per_op"] =
        static_cast<double>(allocations) / static_cast<double>(messages == 0 ? 1 : messages);
  }
}

void register_fanout(const char* name, void (*run)(benchmark::State&)) {
  benchmark::RegisterBenchmark(name, run)
      ->ArgName("subscriptions")
      ->Arg(1)
      ->Arg(4)
      ->Arg(16)
      ->UseRealTime();
}

void register_all() {
  register_fanout("BM_topic_fanout", run_fanout<unkeyed_topic_adapter<multi_topic>>);
  register_fanout("BM_topic_fanout_keyed", run_fanout<keyed_topic_adapter<multi_topic>>);
  register_fanout("BM_topic_single_fanout", run_fanout<unkeyed_topic_adapter<single_topic>>);
  register_fanout("BM_topic_single_fanout_keyed", run_fanout<keyed_topic_adapter<single_topic>>);
  register_fanout("BM_rings_by_hand", run_fanout<rings_adapter>);
#ifdef RINGMQ_HAVE_ZMQ
  register_fanout("BM_zmq_pub_sub", run_fanout<zmq_pub_sub_adapter<inbox_capacity>>);
  register_fanout("BM_zmq_pub_sub_deep", run_fanout<zmq_pub_sub_adapter<zmq_deep_pipe>>);
#endif
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
