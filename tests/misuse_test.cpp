// Tests of what ringmq does when it is used wrongly. The receipt cases are stale, forged, from
// another queue or used after close. The ring cases are two threads on a side declared single
// (debug builds). Every type gets capacities of 0 and too large, and every call that waits gets
// timeouts that are negative, zero, NaN or too large to add to steady_clock::now(). Each misuse must have its documented result and no undefined
// behaviour, which the sanitizer builds check.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <latch>
#include <limits>
#include <memory>
#include <optional>
#include <ratio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringmq/broadcast_ring.hpp>
#include <ringmq/dead_letter_queue.hpp>
#include <ringmq/request_reply.hpp>
#include <ringmq/ring.hpp>
#include <ringmq/topic.hpp>
#include <ringmq/work_queue.hpp>
#include <ringmq/worker_pool.hpp>

#include "support/receipt_fields.hpp"

using namespace std::chrono_literals;
using ringmq::manual_clock;
using ringmq::queue_config;
using ringmq::queue_stats;
using ringmq::receipt;
using ringmq_test::fields_of;
using ringmq_test::forge;
using ringmq_test::receipt_fields;

namespace {

using manual_queue = ringmq::work_queue<int, ringmq::clock<manual_clock>>;

// Durations that are not ordinary timeouts, as every call that takes a duration template gets
// them. Each is named in test output.
constexpr double nan_value = std::numeric_limits<double>::quiet_NaN();
constexpr double infinity = std::numeric_limits<double>::infinity();
using double_seconds = std::chrono::duration<double>;
using picoseconds = std::chrono::duration<std::int64_t, std::pico>;

// ---- receipts ----------------------------------------------------------------------------------

// Every call that takes a receipt, with ordinary and unusual durations.
struct settle_call {
  const char* name;
  bool (*call)(manual_queue&, const receipt&);
};

const std::array<settle_call, 17> settle_calls{{
    {"ack", [](manual_queue& q, const receipt& r) { return q.ack(r); }},
    {"ack_batch",
     [](manual_queue& q, const receipt& r) {
       const std::array<receipt, 2> both{r, r};
       return q.ack_batch(both.begin(), both.end()) != 0;
     }},
    {"nack", [](manual_queue& q, const receipt& r) { return q.nack(r); }},
    {"nack with detail", [](manual_queue& q, const receipt& r) { return q.nack(r, "failed"); }},
    {"nack with delay", [](manual_queue& q, const receipt& r) { return q.nack(r, 5s); }},
    {"nack with negative delay", [](manual_queue& q, const receipt& r) { return q.nack(r, -5s); }},
    {"nack with hours::max delay",
     [](manual_queue& q, const receipt& r) { return q.nack(r, std::chrono::hours::max()); }},
    {"nack with NaN delay",
     [](manual_queue& q, const receipt& r) { return q.nack(r, double_seconds(nan_value)); }},
    {"release", [](manual_queue& q, const receipt& r) { return q.release(r); }},
    {"extend", [](manual_queue& q, const receipt& r) { return q.extend(r, 10s); }},
    {"extend by zero", [](manual_queue& q, const receipt& r) { return q.extend(r, 0s); }},
    {"extend by -1s", [](manual_queue& q, const receipt& r) { return q.extend(r, -1s); }},
    {"extend by nanoseconds::max",
     [](manual_queue& q, const receipt& r) {
       return q.extend(r, std::chrono::nanoseconds::max());
     }},
    {"extend by infinity",
     [](manual_queue& q, const receipt& r) { return q.extend(r, double_seconds(infinity)); }},
    {"extend by NaN",
     [](manual_queue& q, const receipt& r) { return q.extend(r, double_seconds(nan_value)); }},
    {"reject", [](manual_queue& q, const receipt& r) { return q.reject(r); }},
    {"reject with detail", [](manual_queue& q, const receipt& r) { return q.reject(r, "bad"); }},
}};

// Checks every field of two stats() snapshots for equality, one check per field.
void check_same_stats(const queue_stats& after, const queue_stats& before) {
  CHECK(after.visible == before.visible);
  CHECK(after.in_flight == before.in_flight);
  CHECK(after.delayed == before.delayed);
  CHECK(after.dead_letters == before.dead_letters);
  CHECK(after.oldest_visible_age == before.oldest_visible_age);
  CHECK(after.sent == before.sent);
  CHECK(after.received == before.received);
  CHECK(after.redelivered == before.redelivered);
  CHECK(after.acked == before.acked);
  CHECK(after.nacked == before.nacked);
  CHECK(after.released == before.released);
  CHECK(after.expired_leases == before.expired_leases);
  CHECK(after.rejected == before.rejected);
  CHECK(after.evicted == before.evicted);
  CHECK(after.dead_lettered == before.dead_lettered);
  CHECK(after.dropped == before.dropped);
  CHECK(after.redriven == before.redriven);
}

// Calls every settle_call with `bad`, checking that each returns false and that neither the
// queue's statistics nor its size change.
void check_rejected(manual_queue& queue, const receipt& bad) {
  const queue_stats before = queue.stats();
  const std::size_t size_before = queue.size();
  for (const settle_call& settle : settle_calls) {
    INFO("settle call: " << settle.name);
    CHECK_FALSE(settle.call(queue, bad));
    CHECK(queue.size() == size_before);
  }
  check_same_stats(queue.stats(), before);
}

template <class Queue>
typename Queue::delivery_type receive(Queue& queue) {
  std::optional<typename Queue::delivery_type> delivery = queue.try_receive();
  REQUIRE(delivery.has_value());
  return std::move(*delivery);
}

// ---- death tests -------------------------------------------------------------------------------

// How a child process ended, and what it wrote to stderr.
struct child_outcome {
  bool exited = false;  // exited normally, with exit_code as its status
  int exit_code = -1;
  int signal = 0;  // the signal that ended it, or 0
  std::string error_output;
};

// Runs body() in a child process made with fork(), with the child's stderr sent to a pipe that
// the parent reads, and returns how the child ended. The child ends with _exit(0) when body
// returns, and with SIGALRM after 60 s if it hangs, so that a broken check fails the test
// instead of blocking it. body() runs only in the child, so every thread of the misuse is
// started there: the parent stays single-threaded across fork(), which ThreadSanitizer needs.
// body() must not use Catch2, whose state belongs to the parent.
template <class Body>
child_outcome run_in_child(Body body) {
  int pipe_ends[2];
  REQUIRE(::pipe(pipe_ends) == 0);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Catch2's handlers would report the expected abort as a failure of the parent's test.
    for (const int fatal : {SIGABRT, SIGSEGV, SIGILL, SIGFPE, SIGBUS, SIGALRM}) {
      ::signal(fatal, SIG_DFL);
    }
    ::close(pipe_ends[0]);
    ::dup2(pipe_ends[1], STDERR_FILENO);
    ::close(pipe_ends[1]);
    const rlimit no_core_file{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core_file);
    ::alarm(60);
    body();
    ::_exit(0);
  }

  ::close(pipe_ends[1]);
  child_outcome outcome;
  char buffer[512];
  for (;;) {
    const ssize_t count = ::read(pipe_ends[0], buffer, sizeof(buffer));
    if (count > 0) {
      outcome.error_output.append(buffer, static_cast<std::size_t>(count));
    } else if (count == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipe_ends[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    outcome.exited = true;
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.signal = WTERMSIG(status);
  }
  return outcome;
}

// Lets a test stop a thread inside a ring call: an element whose constructor or move
// constructor, once armed, signals `inside` and then waits for a release that never comes. The
// blocked thread ends with the child process.
struct gate {
  std::atomic<bool> block_construction{false};
  std::atomic<bool> block_moves{false};
  std::latch inside{1};
  std::atomic<bool> released{false};

  void signal_and_block() noexcept {
    inside.count_down();
    released.wait(false);
  }
};

struct gated {
  explicit gated(gate* g) noexcept : owner(g) {
    if (owner->block_construction.load()) owner->signal_and_block();
  }
  gated(gated&& other) noexcept : owner(other.owner) {
    if (owner->block_moves.load()) owner->signal_and_block();
  }
  gated& operator=(gated&&) noexcept = default;
  ~gated() = default;

  gate* owner;
};

using spsc_ring = ringmq::ring<gated, ringmq::producers<ringmq::single>,
                               ringmq::consumers<ringmq::single>, ringmq::wait<ringmq::spin>>;
using single_producer_ring =
    ringmq::ring<gated, ringmq::capacity<8>, ringmq::producers<ringmq::single>,
                 ringmq::wait<ringmq::park>>;
using single_consumer_ring = ringmq::ring<gated, ringmq::consumers<ringmq::single>>;
using multi_ring = ringmq::ring<gated, ringmq::capacity<8>>;

// Starts a thread that enters a push of `ring` and stays inside it, in gated's constructor, and
// returns once that thread is inside. The thread is never joined: the child process ends it.
template <class Ring>
void hold_producer_side(Ring& ring, gate& g) {
  g.block_construction = true;
  std::thread([&ring, &g] { (void)ring.try_emplace(&g); }).detach();
  g.inside.wait();
}

// As hold_producer_side, for a pop: the thread stays inside the move out of the slot.
template <class Ring>
void hold_consumer_side(Ring& ring, gate& g) {
  if (!ring.try_emplace(&g)) ::_exit(3);
  g.block_moves = true;
  std::thread([&ring] { (void)ring.try_pop(); }).detach();
  g.inside.wait();
}

// Checks that a child died of SIGABRT after writing a message that names `role` and the fix.
void check_caught(const child_outcome& outcome, std::string_view role, std::string_view fix) {
  INFO("child stderr: " << outcome.error_output);
  CHECK_FALSE(outcome.exited);
  CHECK(outcome.signal == SIGABRT);
  CHECK_THAT(outcome.error_output, Catch::StartsWith("ringmq: "));
  CHECK_THAT(outcome.error_output, Catch::Contains(std::string(role)));
  CHECK_THAT(outcome.error_output, Catch::Contains(std::string(fix)));
}

// Returns the message of the Error that make() throws, or a note that it threw nothing.
template <class Error, class Make>
std::string error_of(Make make) {
  try {
    make();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no exception)";
}

}  // namespace

// ---- receipts ----------------------------------------------------------------------------------
// tests/work_queue_test.cpp covers receipts whose lease ended, that were settled, that name an
// earlier delivery or message, that come from another queue, default receipts and forged ones.
// These add the cases it does not cover, and check size() and the unusual durations as well.

TEST_CASE("misuse: receipt of an expired lease after redelivery", "[misuse]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s}, clock);
  REQUIRE(queue.try_send(1).ok());
  const auto first = receive(queue);
  clock.advance(30s);
  const auto second = receive(queue);
  REQUIRE(second.id() == first.id());
  REQUIRE(second.receive_count() == 2);

  check_rejected(queue, first.receipt());
  CHECK(queue.ack(second.receipt()));
  CHECK(queue.size() == 0);
}

TEST_CASE("misuse: receipt of a nacked message after redelivery", "[misuse]") {
  manual_clock clock;
  manual_queue queue({.capacity = 2, .visibility_timeout = 30s}, clock);
  REQUIRE(queue.try_send(1).ok());
  const auto first = receive(queue);
  REQUIRE(queue.nack(first.receipt(), 5s));
  check_rejected(queue, first.receipt());  // while delayed
  clock.advance(5s);
  const auto second = receive(queue);
  REQUIRE(second.id() == first.id());
  check_rejected(queue, first.receipt());  // while the message is leased again
  CHECK(queue.ack(second.receipt()));
}

TEST_CASE("misuse: receipt of a destroyed queue at the same address", "[misuse]") {
  manual_clock clock;
  const queue_config config{.capacity = 2, .visibility_timeout = 30s};
  alignas(manual_queue) unsigned char storage[sizeof(manual_queue)];

  manual_queue* old_queue =
      std::construct_at(reinterpret_cast<manual_queue*>(storage), config, clock);
  REQUIRE(old_queue->try_send(1).ok());
  const receipt old_receipt = receive(*old_queue).receipt();
  std::destroy_at(old_queue);

  manual_queue* new_queue =
      std::construct_at(reinterpret_cast<manual_queue*>(storage), config, clock);
  REQUIRE(static_cast<void*>(new_queue) == static_cast<void*>(old_queue));
  REQUIRE(new_queue->try_send(1).ok());
  const auto delivery = receive(*new_queue);

  // The same calls issue the same slot, id and delivery number, so only the tag differs.
  const receipt_fields old_fields = fields_of(old_receipt);
  const receipt_fields new_fields = fields_of(delivery.receipt());
  REQUIRE(old_fields.slot == new_fields.slot);
  REQUIRE(old_fields.message == new_fields.message);
  REQUIRE(old_fields.delivery == new_fields.delivery);
  CHECK(old_fields.queue != new_fields.queue);

  check_rejected(*new_queue, old_receipt);
  CHECK(new_queue->ack(delivery.receipt()));
  std::destroy_at(new_queue);
}

TEST_CASE("misuse: bad receipts after close", "[misuse]") {
  manual_clock clock;
  const queue_config config{.capacity = 4, .visibility_timeout = 30s};
  manual_queue queue(config, clock);
  manual_queue other(config, clock);
  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2).ok());
  REQUIRE(queue.try_send(3).ok());
  REQUIRE(other.try_send(1).ok());
  const auto acked = receive(queue);
  REQUIRE(queue.ack(acked.receipt()));
  const auto expired = receive(queue);
  const auto open = receive(queue);
  clock.advance(20s);
  REQUIRE(queue.extend(open.receipt(), 30s));
  clock.advance(10s);  // `expired` ends, `open` runs 20 s longer
  const auto foreign = receive(other);
  queue.close();
  other.close();

  receipt_fields out_of_range = fields_of(open.receipt());
  out_of_range.slot = 4;

  struct bad_receipt {
    const char* name;
    receipt value;
  };
  const std::array<bad_receipt, 5> bad_receipts{{
      {"already acked", acked.receipt()},
      {"lease ended", expired.receipt()},
      {"another queue", foreign.receipt()},
      {"default-constructed", receipt{}},
      {"forged slot index", forge(out_of_range)},
  }};
  for (const bad_receipt& bad : bad_receipts) {
    INFO("receipt: " << bad.name);
    check_rejected(queue, bad.value);
  }

  // A lease that is still open settles after close, as docs/work_queue.md describes.
  CHECK(queue.ack(open.receipt()));
  CHECK(other.ack(foreign.receipt()));
}

TEST_CASE("misuse: ack_batch of bad receipts changes nothing", "[misuse]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 30s}, clock);
  manual_queue other({.capacity = 4}, clock);
  REQUIRE(queue.try_send(1).ok());
  REQUIRE(queue.try_send(2).ok());
  REQUIRE(other.try_send(1).ok());
  const auto acked = receive(queue);
  REQUIRE(queue.ack(acked.receipt()));
  const auto open = receive(queue);
  receipt_fields next_delivery = fields_of(open.receipt());
  next_delivery.delivery += 1;

  const std::vector<receipt> bad{acked.receipt(), receive(other).receipt(), receipt{},
                                 forge(next_delivery)};
  const queue_stats before = queue.stats();
  CHECK(queue.ack_batch(bad.begin(), bad.end()) == 0);
  CHECK(queue.ack_batch(bad.begin(), bad.begin()) == 0);
  CHECK(queue.size() == 1);
  check_same_stats(queue.stats(), before);

  // The lease named by none of them is still open.
  CHECK(queue.ack(open.receipt()));
}

// ---- two threads on a side declared single -------------------------------------------------

#if RINGMQ_DEBUG_CHECKS

TEST_CASE("misuse: two pushing threads on producers<single> abort", "[misuse]") {
  struct second_call {
    const char* name;
    void (*call)(spsc_ring&, gate&);
  };
  const std::array<second_call, 6> second_calls{{
      {"try_push", [](spsc_ring& r, gate& g) { (void)r.try_push(gated(&g)); }},
      {"try_emplace", [](spsc_ring& r, gate& g) { (void)r.try_emplace(&g); }},
      {"push", [](spsc_ring& r, gate& g) { (void)r.push(gated(&g)); }},
      {"emplace", [](spsc_ring& r, gate& g) { (void)r.emplace(&g); }},
      {"push_for", [](spsc_ring& r, gate& g) { (void)r.push_for(gated(&g), 1h); }},
      {"try_push_bulk",
       [](spsc_ring& r, gate& g) {
         std::array<gated, 1> one{gated(&g)};
         (void)r.try_push_bulk(std::make_move_iterator(one.begin()),
                               std::make_move_iterator(one.end()));
       }},
  }};
  for (const second_call& second : second_calls) {
    INFO("second thread calls " << second.name);
    const child_outcome outcome = run_in_child([&] {
      spsc_ring ring(4);
      gate held;
      hold_producer_side(ring, held);
      gate free_gate;  // not armed: the second call's element does not block
      second.call(ring, free_gate);
    });
    check_caught(outcome, "producers<single>", "producers<multi>");
  }
}

TEST_CASE("misuse: two popping threads on consumers<single> abort", "[misuse]") {
  struct second_call {
    const char* name;
    void (*call)(single_consumer_ring&);
  };
  const std::array<second_call, 5> second_calls{{
      {"try_pop", [](single_consumer_ring& r) { (void)r.try_pop(); }},
      {"try_pop into",
       [](single_consumer_ring& r) {
         gate unused;
         gated out(&unused);
         (void)r.try_pop(out);
       }},
      {"pop", [](single_consumer_ring& r) { (void)r.pop(); }},
      {"pop_for", [](single_consumer_ring& r) { (void)r.pop_for(1h); }},
      {"try_pop_bulk",
       [](single_consumer_ring& r) {
         gate unused;
         std::array<gated, 1> out{gated(&unused)};
         (void)r.try_pop_bulk(out.data(), 1);
       }},
  }};
  for (const second_call& second : second_calls) {
    INFO("second thread calls " << second.name);
    const child_outcome outcome = run_in_child([&] {
      single_consumer_ring ring(4);
      gate held;
      hold_consumer_side(ring, held);
      second.call(ring);
    });
    check_caught(outcome, "consumers<single>", "consumers<multi>");
  }
}

TEST_CASE("misuse: static-capacity producers<single> aborts", "[misuse]") {
  const child_outcome outcome = run_in_child([] {
    single_producer_ring ring;
    gate held;
    hold_producer_side(ring, held);
    gate free_gate;
    (void)ring.try_emplace(&free_gate);
  });
  check_caught(outcome, "producers<single>", "producers<multi>");
}

TEST_CASE("misuse: overlapping calls on a multi side are allowed", "[misuse]") {
  // The child exits 0 only when the second push and both pops return as they should while the
  // first push is still inside its call.
  const child_outcome pushes = run_in_child([] {
    multi_ring ring;
    gate held;
    hold_producer_side(ring, held);
    gate free_gate;
    if (!ring.try_emplace(&free_gate)) ::_exit(1);
  });
  INFO("child stderr: " << pushes.error_output);
  CHECK(pushes.exited);
  CHECK(pushes.exit_code == 0);

  const child_outcome pops = run_in_child([] {
    single_producer_ring ring;  // consumers<multi>
    gate held;
    hold_consumer_side(ring, held);
    gate free_gate;
    if (!ring.try_emplace(&free_gate)) ::_exit(1);
    if (!ring.try_pop().has_value()) ::_exit(2);
  });
  INFO("child stderr: " << pops.error_output);
  CHECK(pops.exited);
  CHECK(pops.exit_code == 0);
}

TEST_CASE("misuse: single roles handed between threads are allowed", "[misuse]") {
  // Each round a new thread pushes and another pops; joining orders them. The child exits 0
  // when every element came out in order.
  const child_outcome outcome = run_in_child([] {
    ringmq::ring<int, ringmq::producers<ringmq::single>, ringmq::consumers<ringmq::single>> ring(
        16);
    int next_pushed = 0;
    int next_popped = 0;
    bool in_order = true;
    for (int round = 0; round < 8; ++round) {
      std::thread producer([&] {
        for (int i = 0; i < 10; ++i) {
          if (!ring.push(int{next_pushed})) in_order = false;
          ++next_pushed;
        }
      });
      producer.join();
      std::thread consumer([&] {
        for (int i = 0; i < 10; ++i) {
          const std::optional<int> value = ring.pop_for(1min);
          if (value != next_popped) in_order = false;
          ++next_popped;
        }
      });
      consumer.join();
    }
    ::_exit(in_order && ring.empty() ? 0 : 1);
  });
  INFO("child stderr: " << outcome.error_output);
  CHECK(outcome.exited);
  CHECK(outcome.exit_code == 0);
}

#endif  // RINGMQ_DEBUG_CHECKS

// ---- capacities ------------------------------------------------------------------------------
// Capacity 0 of every type, and too-large capacities of ring, broadcast_ring, work_queue and
// topic's max_subscriptions, are tested next to each type. These are the ones not tested there.

TEST_CASE("misuse: too-large capacities name the value", "[misuse]") {
  constexpr std::size_t huge = std::numeric_limits<std::size_t>::max();
  const std::string huge_text = std::to_string(huge);

  SECTION("dead_letter_queue") {
    const std::string message =
        error_of<std::length_error>([] { ringmq::dead_letter_queue<int> letters(huge); });
    CHECK_THAT(message,
               Catch::Contains("dead_letter_queue: capacity " + huge_text + " is too large"));
    CHECK_THAT(message, Catch::Contains("pass a smaller capacity"));
  }
  SECTION("work_queue dead_letter_capacity") {
    const std::string message = error_of<std::length_error>(
        [] { ringmq::work_queue<int> queue({.capacity = 4, .dead_letter_capacity = huge}); });
    CHECK_THAT(message, Catch::Contains("capacity " + huge_text + " is too large"));
  }
  SECTION("request_reply capacity") {
    for (const std::size_t capacity : {huge, std::size_t{4294967295U}}) {
      INFO("capacity " << capacity);
      const std::string message = error_of<std::length_error>([capacity] {
        ringmq::request_reply<int, int> rpc({.capacity = capacity, .max_outstanding = huge});
      });
      CHECK_THAT(message, Catch::Contains("request_reply: capacity " + std::to_string(capacity) +
                                          " is too large"));
      CHECK_THAT(message, Catch::Contains("pass a capacity below 4294967295"));
    }
  }
  SECTION("topic inboxes") {
    ringmq::topic<int> topic({.max_subscriptions = 1});
    const std::string ring_message = error_of<std::length_error>(
        [&] { (void)topic.subscribe("#", ringmq::ring_inbox{.capacity = huge}); });
    CHECK_THAT(ring_message, Catch::Contains("capacity " + huge_text + " is too large"));
    const std::string queue_message = error_of<std::length_error>(
        [&] { (void)topic.subscribe("#", ringmq::queue_inbox{.queue = {.capacity = huge}}); });
    CHECK_THAT(queue_message, Catch::Contains("capacity " + huge_text + " is too large"));

    // The failed subscribes left the only slot free.
    CHECK(topic.subscription_count() == 0);
    auto subscription = topic.subscribe("#", ringmq::ring_inbox{.capacity = 1});
    CHECK(topic.subscription_count() == 1);
  }
  SECTION("worker_pool threads") {
    ringmq::work_queue<int> queue({.capacity = 4});
    const auto ack = [](int&) { return ringmq::handler_result::ack; };
    const std::string message = error_of<std::length_error>(
        [&] { ringmq::worker_pool<ringmq::work_queue<int>> pool(queue, ack, {.threads = huge}); });
    CHECK_THAT(message, Catch::Contains("threads " + huge_text + " is too large"));
    CHECK_THAT(message, Catch::Contains("pass a smaller count"));
  }
}

// ---- timeouts --------------------------------------------------------------------------------
// The rules: a negative or NaN timeout or delay acts as zero, and a zero timeout makes one
// attempt. A timeout too large to add to now() (nanoseconds::max(), hours::max(), infinity)
// never expires. picoseconds::max() (about 106 days) is a unit finer than the clock's, which
// must be converted without overflow. ring_test.cpp covers negative, zero and the max() values
// of integer units for push_for and pop_for.

TEST_CASE("misuse: ring timeouts of NaN, infinity and picoseconds", "[misuse]") {
  ringmq::ring<int> ring(1);

  SECTION("NaN acts as zero") {
    CHECK_FALSE(ring.pop_for(double_seconds(nan_value)).has_value());
    CHECK(ring.push_for(1, double_seconds(nan_value)));
    CHECK_FALSE(ring.push_for(2, double_seconds(nan_value)));
    CHECK(ring.pop_for(double_seconds(nan_value)) == std::optional<int>(1));
  }
  SECTION("negative infinity acts as zero") {
    CHECK_FALSE(ring.pop_for(double_seconds(-infinity)).has_value());
    CHECK(ring.push_for(1, double_seconds(-infinity)));
    CHECK_FALSE(ring.push_for(2, double_seconds(-infinity)));
  }
  SECTION("picoseconds::min acts as zero") {
    CHECK_FALSE(ring.pop_for(picoseconds::min()).has_value());
  }
  SECTION("huge timeouts on a closed ring return at once") {
    REQUIRE(ring.try_push(1));
    ring.close();
    CHECK_FALSE(ring.push_for(2, double_seconds(infinity)));
    CHECK_FALSE(ring.push_for(2, picoseconds::max()));
    CHECK(ring.pop_for(double_seconds(infinity)) == std::optional<int>(1));
    CHECK_FALSE(ring.pop_for(picoseconds::max()).has_value());
    CHECK_FALSE(ring.pop_for(double_seconds(infinity)).has_value());
  }
  SECTION("an infinite wait ends when another thread pushes") {
    std::atomic<bool> pushed{false};
    std::thread producer([&] {
      std::this_thread::sleep_for(20ms);
      pushed = true;
      (void)ring.try_push(7);
    });
    const std::optional<int> value = ring.pop_for(double_seconds(infinity));
    const bool pushed_first = pushed.load();
    producer.join();
    CHECK(value == std::optional<int>(7));
    CHECK(pushed_first);
  }
  SECTION("a picosecond wait of max() ends when another thread pops") {
    REQUIRE(ring.try_push(1));
    std::atomic<bool> popped{false};
    std::thread consumer([&] {
      std::this_thread::sleep_for(20ms);
      popped = true;
      (void)ring.try_pop();
    });
    const bool pushed = ring.push_for(2, picoseconds::max());
    const bool popped_first = popped.load();
    consumer.join();
    CHECK(pushed);
    CHECK(popped_first);
    CHECK(ring.try_pop() == std::optional<int>(2));
  }
}

TEST_CASE("misuse: work_queue waits with unusual timeouts", "[misuse]") {
  ringmq::work_queue<int> queue({.capacity = 1});

  SECTION("negative, zero and NaN waits make one attempt") {
    CHECK_FALSE(queue.receive_for(-1s).has_value());
    CHECK_FALSE(queue.receive_for(0s).has_value());
    CHECK_FALSE(queue.receive_for(std::chrono::hours::min()).has_value());
    CHECK_FALSE(queue.receive_for(double_seconds(nan_value)).has_value());
    std::vector<ringmq::work_queue<int>::delivery_type> out;
    CHECK(queue.receive_batch_for(std::back_inserter(out), 4, double_seconds(nan_value)) == 0);
    REQUIRE(queue.try_send(1).ok());
    CHECK(queue.send_for(2, -1s).status == ringmq::send_status::timeout);
    CHECK(queue.send_for(2, double_seconds(nan_value)).status == ringmq::send_status::timeout);
    CHECK(queue.send_for(2, std::chrono::nanoseconds::min()).status ==
          ringmq::send_status::timeout);
    CHECK(queue.size() == 1);
  }
  SECTION("huge waits on a drained queue return at once") {
    queue.close();
    CHECK_FALSE(queue.receive_for(std::chrono::nanoseconds::max()).has_value());
    CHECK_FALSE(queue.receive_for(std::chrono::hours::max()).has_value());
    CHECK_FALSE(queue.receive_for(double_seconds(infinity)).has_value());
    CHECK_FALSE(queue.receive_for(picoseconds::max()).has_value());
    CHECK(queue.send_for(1, double_seconds(infinity)).status == ringmq::send_status::closed);
  }
  SECTION("an infinite receive ends when another thread sends") {
    std::atomic<bool> sent{false};
    std::thread producer([&] {
      std::this_thread::sleep_for(20ms);
      sent = true;
      (void)queue.try_send(5);
    });
    const auto delivery = queue.receive_for(double_seconds(infinity));
    const bool sent_first = sent.load();
    producer.join();
    REQUIRE(delivery.has_value());
    CHECK(delivery->body() == 5);
    CHECK(sent_first);
  }
  SECTION("a send waiting hours::max ends when another thread acks") {
    REQUIRE(queue.try_send(1).ok());
    const auto held = receive(queue);
    std::atomic<bool> acked{false};
    std::thread consumer([&] {
      std::this_thread::sleep_for(20ms);
      acked = true;
      (void)queue.ack(held.receipt());
    });
    const ringmq::send_result result = queue.send_for(2, std::chrono::hours::max());
    const bool acked_first = acked.load();
    consumer.join();
    CHECK(result.ok());
    CHECK(acked_first);
  }
}

TEST_CASE("misuse: work_queue delays and leases at limits", "[misuse]") {
  manual_clock clock;
  manual_queue queue({.capacity = 4, .visibility_timeout = 30s, .max_visibility_timeout = 60s},
                     clock);
  // Long after any real deadline, and short enough that the advances below stay under the end
  // of manual_clock's range, where the clock stops and reaches every deadline, "never" included.
  constexpr auto far_future = std::chrono::hours(24 * 365 * 50);

  SECTION("nack delays") {
    struct delay_case {
      const char* name;
      bool (*nack)(manual_queue&, const receipt&);
      bool visible_at_once;
    };
    const std::array<delay_case, 6> cases{{
        {"-1s", [](manual_queue& q, const receipt& r) { return q.nack(r, -1s); }, true},
        {"nanoseconds::min",
         [](manual_queue& q, const receipt& r) {
           return q.nack(r, std::chrono::nanoseconds::min());
         },
         true},
        {"NaN",
         [](manual_queue& q, const receipt& r) { return q.nack(r, double_seconds(nan_value)); },
         true},
        {"-infinity",
         [](manual_queue& q, const receipt& r) { return q.nack(r, double_seconds(-infinity)); },
         true},
        {"hours::max",
         [](manual_queue& q, const receipt& r) { return q.nack(r, std::chrono::hours::max()); },
         false},
        {"infinity",
         [](manual_queue& q, const receipt& r) { return q.nack(r, double_seconds(infinity)); },
         false},
    }};
    for (const delay_case& c : cases) {
      INFO("nack delay " << c.name);
      REQUIRE(queue.try_send(1).ok());
      const auto delivery = receive(queue);
      REQUIRE(c.nack(queue, delivery.receipt()));
      const std::optional<manual_queue::delivery_type> again = queue.try_receive();
      CHECK(again.has_value() == c.visible_at_once);
      if (again) {
        CHECK(queue.ack(again->receipt()));
      } else {
        // Saturated to "never": still delayed long after. Each such case keeps its slot, and
        // the capacity leaves room for both.
        const std::size_t delayed = queue.stats().delayed;
        clock.advance(far_future);
        CHECK(queue.stats().delayed == delayed);
        CHECK_FALSE(queue.try_receive().has_value());
      }
    }
  }
  SECTION("send delays") {
    REQUIRE(queue.try_send(1, {.delay = std::chrono::nanoseconds::min()}).ok());
    REQUIRE(queue.try_send(2, {.delay = std::chrono::nanoseconds::max()}).ok());
    const auto first = receive(queue);
    CHECK(first.body() == 1);
    CHECK(queue.ack(first.receipt()));
    clock.advance(far_future);
    CHECK_FALSE(queue.try_receive().has_value());
    CHECK(queue.stats().delayed == 1);
  }
  SECTION("extend") {
    REQUIRE(queue.try_send(1).ok());
    const auto delivery = receive(queue);
    // Huge timeouts are capped by max_visibility_timeout (60 s).
    CHECK(queue.extend(delivery.receipt(), double_seconds(infinity)));
    CHECK(queue.extend(delivery.receipt(), picoseconds::max()));
    CHECK(queue.extend(delivery.receipt(), std::chrono::hours::max()));
    clock.advance(59s);
    CHECK_FALSE(queue.try_receive().has_value());
    clock.advance(1s);
    const auto again = receive(queue);
    CHECK(again.id() == delivery.id());

    // NaN acts as zero, and an extend by zero releases the lease.
    CHECK(queue.extend(again.receipt(), double_seconds(nan_value)));
    CHECK(queue.stats().released == 1);
    const auto third = receive(queue);
    CHECK(third.failure_count() == 1);  // the expiry counted; the NaN extend did not
    CHECK(queue.ack(third.receipt()));
  }
  SECTION("per-receive visibility timeouts") {
    // max() is capped by max_visibility_timeout (60 s); min() acts as zero, so the lease ends
    // at once and counts as a failed attempt.
    REQUIRE(queue.try_send(1).ok());
    const auto lease_max =
        queue.try_receive({.visibility_timeout = std::chrono::nanoseconds::max()});
    REQUIRE(lease_max.has_value());
    clock.advance(59s);
    CHECK(queue.extend(lease_max->receipt(), 1s));  // still running
    clock.advance(1s);
    CHECK_FALSE(queue.ack(lease_max->receipt()));

    const auto lease_min =
        queue.try_receive({.visibility_timeout = std::chrono::nanoseconds::min()});
    REQUIRE(lease_min.has_value());
    CHECK_FALSE(queue.ack(lease_min->receipt()));
    const auto after = receive(queue);
    CHECK(after.failure_count() == 2);
  }
}

TEST_CASE("misuse: config durations at their limits", "[misuse]") {
  manual_clock clock;
  SECTION("visibility_timeout nanoseconds::max never expires") {
    manual_queue queue({.capacity = 1,
                        .visibility_timeout = std::chrono::nanoseconds::max(),
                        .max_visibility_timeout = std::chrono::nanoseconds::max()},
                       clock);
    REQUIRE(queue.try_send(1).ok());
    const auto delivery = receive(queue);
    clock.advance(std::chrono::hours(24 * 365 * 200));
    CHECK(queue.stats().in_flight == 1);
    CHECK(queue.ack(delivery.receipt()));
  }
  SECTION("retention nanoseconds::max keeps messages") {
    manual_queue queue({.capacity = 1, .retention = std::chrono::nanoseconds::max()}, clock);
    REQUIRE(queue.try_send(1).ok());
    clock.advance(std::chrono::hours(24 * 365 * 200));
    CHECK(receive(queue).body() == 1);
  }
}

TEST_CASE("misuse: request_reply timeouts", "[misuse]") {
  ringmq::request_reply<int, int> rpc({.capacity = 1, .max_outstanding = 2});

  SECTION("negative, zero and NaN timeouts check once") {
    CHECK_FALSE(rpc.receive_for(-1s).has_value());
    CHECK_FALSE(rpc.receive_for(double_seconds(nan_value)).has_value());
    CHECK(rpc.serve_for([](int x) { return x; }, double_seconds(nan_value)) ==
          ringmq::serve_status::idle);

    auto handle = rpc.try_send(1);
    REQUIRE(handle.valid());
    CHECK(rpc.send_for(2, double_seconds(nan_value)).status() == ringmq::request_status::timeout);
    CHECK(rpc.call_for(2, -1s).status() == ringmq::request_status::timeout);
    CHECK(handle.wait_for(double_seconds(nan_value)).status() == ringmq::request_status::timeout);
    // The wait gave the request up; the queued request is still received.
    CHECK(rpc.try_receive().has_value());
  }
  SECTION("infinite timeouts on a closed channel return at once") {
    rpc.close();
    CHECK_FALSE(rpc.receive_for(double_seconds(infinity)).has_value());
    CHECK(rpc.serve_for([](int x) { return x; }, std::chrono::hours::max()) ==
          ringmq::serve_status::drained);
    CHECK(rpc.call_for(1, picoseconds::max()).status() == ringmq::request_status::closed);
    CHECK(rpc.send_for(1, double_seconds(infinity)).status() == ringmq::request_status::closed);
  }
  SECTION("an infinite call ends when a responder replies") {
    std::thread responder(
        [&] { (void)rpc.serve_for([](int x) { return x * 2; }, std::chrono::nanoseconds::max()); });
    const ringmq::reply_result<int> result = rpc.call_for(21, double_seconds(infinity));
    responder.join();
    REQUIRE(result.ok());
    CHECK(result.get() == 42);
  }
}

TEST_CASE("misuse: broadcast_ring timeouts", "[misuse]") {
  ringmq::broadcast_ring<int> ring(2, 1);
  std::optional<ringmq::broadcast_ring<int>::reader> reader = ring.try_join();
  REQUIRE(reader.has_value());
  int seen = 0;
  const auto visit = [&](const int& value) { seen = value; };

  CHECK_FALSE(reader->read_for(visit, double_seconds(nan_value)));
  CHECK_FALSE(reader->read_for(visit, -1s));
  CHECK(reader->read_batch_for(visit, 4, std::chrono::nanoseconds::min()) == 0);
  REQUIRE(ring.try_publish(1));
  REQUIRE(ring.try_publish(2));
  CHECK_FALSE(ring.publish_for(3, double_seconds(nan_value)));  // full: the reader is behind
  CHECK_FALSE(ring.publish_for(3, -1s));

  ring.close();
  CHECK_FALSE(ring.publish_for(3, double_seconds(infinity)));
  CHECK(reader->read_for(visit, double_seconds(infinity)));
  CHECK(seen == 1);
  CHECK(reader->read_batch_for(visit, 4, picoseconds::max()) == 1);
  CHECK(seen == 2);
  CHECK_FALSE(reader->read_for(visit, std::chrono::hours::max()));
}

TEST_CASE("misuse: topic block_timeout max waits for room", "[misuse]") {
  ringmq::topic<int> topic;
  auto subscription = topic.subscribe(
      "#", ringmq::ring_inbox{.capacity = 1, .block_timeout = std::chrono::nanoseconds::max()});
  REQUIRE(topic.publish("a", 1).ok());
  std::atomic<bool> popped{false};
  std::thread consumer([&] {
    std::this_thread::sleep_for(20ms);
    popped = true;
    (void)subscription.inbox().try_pop();
  });
  const ringmq::publish_result result = topic.publish("a", 2);
  const bool popped_first = popped.load();
  consumer.join();
  CHECK(result.ok());
  CHECK(result.delivered == 1);
  CHECK(popped_first);
  CHECK(subscription.inbox().try_pop() == std::optional<int>(2));
}

TEST_CASE("misuse: worker_pool poll of nanoseconds::max", "[misuse]") {
  ringmq::work_queue<int> queue({.capacity = 4});
  std::atomic<int> handled{0};
  ringmq::worker_pool<ringmq::work_queue<int>> pool(
      queue,
      [&](int&) {
        handled.fetch_add(1);
        return ringmq::handler_result::ack;
      },
      {.threads = 1, .poll = std::chrono::nanoseconds::max()});
  REQUIRE(queue.try_send(1).ok());
  // Closing the queue ends the worker's wait, so stop() returns although poll never ends.
  while (queue.size() != 0) std::this_thread::sleep_for(1ms);
  queue.close();
  pool.stop();
  CHECK(handled.load() == 1);
  CHECK(pool.stats().acked == 1);
}
