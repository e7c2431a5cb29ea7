// Tests of ringmq::request_reply: configuration, round trips, timeouts, late replies, dropped
// handles, responder exceptions and unanswered requests. Further cases cover backpressure from a
// full queue and from exhausted reply cells, close, statistics after each step, and the
// destruction of the requests and replies that the channel stores.
//
// Timeouts here are waits that no responder can end, so each result is fixed whatever the
// timing. Where a test wants a thread to be blocked before it acts, it lets the thread run for
// settle_time first; a slower thread still gets the same result by another path.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <ringmq/request_reply.hpp>

#include "support/counted.hpp"
#include "support/elements.hpp"
#include "support/ring_configs.hpp"

using namespace std::chrono_literals;
using ringmq::request_reply_config;
using ringmq::request_reply_stats;
using ringmq::request_status;
using ringmq::serve_status;
using ringmq_test::counted;
using ringmq_test::move_only;

namespace {

using channel = ringmq::request_reply<int, int>;

// The reply every responder in these tests computes, so that a reply identifies its request.
int reply_to(int request) { return request * 3 + 1; }

// How long a thread gets to run into a blocking call before the main thread acts.
constexpr auto settle_time = 20ms;

// A timeout that no test reaches unless the call under test fails to wake.
constexpr auto long_timeout = 1min;

// Checks every field of a stats() snapshot against `expected`, one check per field, and checks
// that the counts add up, which is true whenever no call is in progress.
void check_stats(const request_reply_stats& actual, std::string_view step,
                 const request_reply_stats& expected) {
  INFO("stats " << step);
  CHECK(actual.queued == expected.queued);
  CHECK(actual.awaiting == expected.awaiting);
  CHECK(actual.outstanding == expected.outstanding);
  CHECK(actual.sent == expected.sent);
  CHECK(actual.replied == expected.replied);
  CHECK(actual.failed == expected.failed);
  CHECK(actual.unanswered == expected.unanswered);
  CHECK(actual.timed_out == expected.timed_out);
  CHECK(actual.abandoned == expected.abandoned);
  CHECK(actual.late_replies == expected.late_replies);
  CHECK(actual.sent == actual.replied + actual.failed + actual.unanswered + actual.timed_out +
                           actual.abandoned + actual.awaiting);
}

// Sends with try_send, failing the test unless the send succeeds.
template <class Channel, class Request>
typename Channel::handle_type send_one(Channel& rpc, Request&& request) {
  typename Channel::handle_type handle = rpc.try_send(std::forward<Request>(request));
  INFO("try_send status " << ringmq::to_string(handle.status()));
  REQUIRE(handle.valid());
  return handle;
}

// Receives with try_receive, failing the test when no request is queued.
template <class Channel>
typename Channel::incoming_type receive_one(Channel& rpc) {
  std::optional<typename Channel::incoming_type> incoming = rpc.try_receive();
  REQUIRE(incoming.has_value());
  return std::move(*incoming);
}

// Constructs a channel from `config` and returns the message of the Error it throws, or a note
// that it threw nothing. An exception of another type fails the test.
template <class Error>
std::string construction_error(const request_reply_config& config) {
  try {
    channel rpc(config);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no exception)";
}

// An exception type that only responders in these tests throw.
struct lookup_failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A reply that counts its copies, to show which calls copy.
struct copy_counting {
  explicit copy_counting(int v) noexcept : value(v) {}
  copy_counting(const copy_counting& other) : value(other.value) {
    copies.fetch_add(1, std::memory_order_relaxed);
  }
  copy_counting(copy_counting&&) noexcept = default;
  copy_counting& operator=(const copy_counting&) = default;
  copy_counting& operator=(copy_counting&&) noexcept = default;
  ~copy_counting() = default;

  int value;
  static inline std::atomic<int> copies{0};  // only single-threaded tests read it
};

// A responder thread that serves requests with reply_to until the channel is drained.
class responder_thread {
 public:
  template <class Channel>
  explicit responder_thread(Channel& rpc)
      : thread_([&rpc] {
          while (rpc.serve([](const int& request) { return reply_to(request); }) !=
                 serve_status::drained) {
          }
        }) {}

  responder_thread(const responder_thread&) = delete;
  responder_thread& operator=(const responder_thread&) = delete;

  ~responder_thread() { join(); }

  // Call after closing the channel, which ends the thread's loop.
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

}  // namespace

// ---- configuration -----------------------------------------------------------------------------

TEST_CASE("request_reply: config validation names the bad value", "[request_reply]") {
  using Catch::Matchers::Contains;
  using std::invalid_argument;

  SECTION("capacity 0") {
    CHECK_THAT(construction_error<invalid_argument>({.capacity = 0}), Contains("capacity 0"));
  }
  SECTION("max_outstanding 0") {
    CHECK_THAT(construction_error<invalid_argument>({.capacity = 1, .max_outstanding = 0}),
               Contains("max_outstanding 0"));
  }
  SECTION("max_outstanding below capacity") {
    const std::string message =
        construction_error<invalid_argument>({.capacity = 16, .max_outstanding = 15});
    CHECK_THAT(message, Contains("max_outstanding 15"));
    CHECK_THAT(message, Contains("capacity 16"));
  }
  SECTION("max_outstanding 2^32 - 1") {
    CHECK_THAT(construction_error<std::length_error>({.max_outstanding = 4294967295U}),
               Contains("max_outstanding 4294967295"));
  }
  SECTION("max_outstanding SIZE_MAX") {
    const std::size_t huge = std::numeric_limits<std::size_t>::max();
    CHECK_THAT(construction_error<std::length_error>({.max_outstanding = huge}),
               Contains("max_outstanding " + std::to_string(huge)));
  }
}

TEST_CASE("request_reply: config limits that are valid", "[request_reply]") {
  SECTION("defaults") {
    channel rpc;
    CHECK(rpc.capacity() == 1024);
    CHECK(rpc.max_outstanding() == 2048);
  }
  SECTION("capacity 1 and max_outstanding 1") {
    channel rpc({.capacity = 1, .max_outstanding = 1});
    channel::handle_type first = send_one(rpc, 1);
    CHECK(rpc.try_send(2).status() == request_status::outstanding_limit);
    CHECK(rpc.capacity() == 1);
    CHECK(rpc.max_outstanding() == 1);
  }
}

TEST_CASE("request_reply: status names", "[request_reply]") {
  CHECK(ringmq::to_string(request_status::ok) == "ok");
  CHECK(ringmq::to_string(request_status::responder_error) == "responder_error");
  CHECK(ringmq::to_string(request_status::unanswered) == "unanswered");
  CHECK(ringmq::to_string(request_status::pending) == "pending");
  CHECK(ringmq::to_string(request_status::timeout) == "timeout");
  CHECK(ringmq::to_string(request_status::closed) == "closed");
  CHECK(ringmq::to_string(request_status::full) == "full");
  CHECK(ringmq::to_string(request_status::outstanding_limit) == "outstanding_limit");
  CHECK(ringmq::to_string(request_status::no_request) == "no_request");
  CHECK(ringmq::to_string(static_cast<request_status>(200)) == "unknown");
  CHECK(ringmq::to_string(serve_status::served) == "served");
  CHECK(ringmq::to_string(serve_status::idle) == "idle");
  CHECK(ringmq::to_string(serve_status::drained) == "drained");
  CHECK(ringmq::to_string(static_cast<serve_status>(200)) == "unknown");
}

// ---- round trips ------------------------------------------------------------------------------

TEST_CASE("request_reply: round trip with try calls", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  check_stats(rpc.stats(), "when new", {});

  channel::handle_type handle = send_one(rpc, 7);
  CHECK(handle.status() == request_status::pending);
  check_stats(rpc.stats(), "after the send",
              {.queued = 1, .awaiting = 1, .outstanding = 1, .sent = 1});

  const ringmq::reply_result<int> early = handle.try_get();
  CHECK(early.status() == request_status::pending);
  CHECK(handle.valid());

  channel::incoming_type incoming = receive_one(rpc);
  CHECK(incoming.body() == 7);
  CHECK_FALSE(incoming.answered());
  CHECK_FALSE(incoming.cancelled());
  check_stats(rpc.stats(), "after the receive", {.awaiting = 1, .outstanding = 1, .sent = 1});

  CHECK(incoming.reply(reply_to(incoming.body())));
  CHECK(incoming.answered());
  check_stats(rpc.stats(), "after the reply", {.outstanding = 1, .sent = 1, .replied = 1});

  ringmq::reply_result<int> result = handle.try_get();
  REQUIRE(result.status() == request_status::ok);
  CHECK(result.ok());
  CHECK(static_cast<bool>(result));
  CHECK(result.get() == 22);
  CHECK(result.error() == nullptr);
  CHECK_FALSE(handle.valid());
  CHECK(handle.status() == request_status::no_request);
  check_stats(rpc.stats(), "after the collect", {.sent = 1, .replied = 1});

  // The outcome is given once.
  CHECK(handle.try_get().status() == request_status::no_request);
  CHECK(handle.wait().status() == request_status::no_request);
  CHECK(handle.wait_for(1ms).status() == request_status::no_request);
  CHECK_FALSE(incoming.reply(1));
}

TEST_CASE("request_reply: every send, wait and call form", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  responder_thread responder(rpc);
  const int lvalue = 5;

  SECTION("send and wait") {
    channel::handle_type handle = rpc.send(1);
    REQUIRE(handle.valid());
    CHECK(handle.wait().get() == reply_to(1));
  }
  SECTION("send a copy and wait_for") {
    channel::handle_type handle = rpc.send(lvalue);
    REQUIRE(handle.valid());
    CHECK(handle.wait_for(long_timeout).get() == reply_to(lvalue));
  }
  SECTION("send_for and wait_for") {
    channel::handle_type handle = rpc.send_for(2, long_timeout);
    REQUIRE(handle.valid());
    CHECK(handle.wait_for(long_timeout).get() == reply_to(2));
  }
  SECTION("send_for a copy with an infinite timeout") {
    channel::handle_type handle = rpc.send_for(lvalue, std::chrono::hours::max());
    REQUIRE(handle.valid());
    CHECK(handle.wait_for(std::chrono::hours::max()).get() == reply_to(lvalue));
  }
  SECTION("try_send a copy") {
    channel::handle_type handle = send_one(rpc, lvalue);
    CHECK(handle.wait().get() == reply_to(lvalue));
  }
  SECTION("call_for") {
    CHECK(rpc.call_for(3, long_timeout).get() == reply_to(3));
    CHECK(rpc.call_for(lvalue, long_timeout).get() == reply_to(lvalue));
  }
  SECTION("call") {
    CHECK(rpc.call(4).get() == reply_to(4));
    CHECK(rpc.call(lvalue).get() == reply_to(lvalue));
  }
  SECTION("many calls in order") {
    for (int request = 0; request < 200; ++request) {
      ringmq::reply_result<int> result = rpc.call_for(request, long_timeout);
      REQUIRE(result.ok());
      CHECK(result.get() == reply_to(request));
    }
  }

  rpc.close();
  responder.join();
  const request_reply_stats stats = rpc.stats();
  CHECK(stats.sent == stats.replied);
  CHECK(stats.outstanding == 0);
  CHECK(stats.late_replies == 0);
}

// The option sets a channel may take, each run through the same round trips.
using default_options = ringmq::request_reply<int, int>;
using spinning = ringmq::request_reply<int, int, ringmq::wait<ringmq::spin>>;
using yielding = ringmq::request_reply<int, int, ringmq::wait<ringmq::yield>>;
using sleeping = ringmq::request_reply<int, int, ringmq::wait<ringmq_test::sleep_only>>;
using one_to_one =
    ringmq::request_reply<int, int, ringmq::consumers<ringmq::single>,
                          ringmq::producers<ringmq::single>, ringmq::slot_layout<ringmq::packed>>;

TEMPLATE_TEST_CASE("request_reply: round trips under every option set", "[request_reply]",
                   default_options, spinning, yielding, sleeping, one_to_one) {
  TestType rpc({.capacity = 2, .max_outstanding = 2});
  responder_thread responder(rpc);

  // More requests than cells, so every cell is reused and the senders wait for room.
  for (int request = 0; request < 100; ++request) {
    ringmq::reply_result<int> result = rpc.call_for(request, long_timeout);
    INFO("request " << request << ": " << ringmq::to_string(result.status()));
    REQUIRE(result.ok());
    CHECK(result.get() == reply_to(request));
  }
  std::vector<typename TestType::handle_type> handles;
  for (int request = 0; request < 2; ++request) handles.push_back(rpc.send(request));
  for (int request = 0; request < 2; ++request) {
    CHECK(handles[static_cast<std::size_t>(request)].wait().get() == reply_to(request));
  }

  rpc.close();
  responder.join();
  check_stats(rpc.stats(), "at the end", {.sent = 102, .replied = 102});
}

TEST_CASE("request_reply: move-only request and reply", "[request_reply]") {
  ringmq::request_reply<move_only, move_only> rpc({.capacity = 2, .max_outstanding = 2});
  auto handle = send_one(rpc, move_only(4));
  auto incoming = receive_one(rpc);
  REQUIRE(incoming.body().value != nullptr);
  CHECK(*incoming.body().value == 4);
  move_only taken = std::move(incoming).body();
  CHECK(*taken.value == 4);

  CHECK(incoming.reply(move_only(5)));
  ringmq::reply_result<move_only> result = handle.try_get();
  REQUIRE(result.ok());
  move_only reply = std::move(result).get();
  REQUIRE(reply.value != nullptr);
  CHECK(*reply.value == 5);
}

// ---- timeouts and late replies ----------------------------------------------------------------

TEST_CASE("request_reply: wait_for timeout gives the request up", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type handle = send_one(rpc, 1);

  const ringmq::reply_result<int> result = handle.wait_for(1ms);
  CHECK(result.status() == request_status::timeout);
  CHECK_FALSE(result.ok());
  CHECK_FALSE(handle.valid());
  CHECK(handle.status() == request_status::no_request);
  CHECK(handle.wait_for(1ms).status() == request_status::no_request);
  check_stats(rpc.stats(), "after the timeout", {.queued = 1, .sent = 1, .timed_out = 1});

  // The request stays queued, and its responder finds it cancelled.
  channel::incoming_type incoming = receive_one(rpc);
  CHECK(incoming.cancelled());
  CHECK_FALSE(incoming.reply(reply_to(1)));
  CHECK(incoming.answered());
  check_stats(rpc.stats(), "after the late reply", {.sent = 1, .timed_out = 1, .late_replies = 1});
}

TEST_CASE("request_reply: zero timeout checks once", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});

  SECTION("with the reply there") {
    channel::handle_type handle = send_one(rpc, 2);
    CHECK(receive_one(rpc).reply(reply_to(2)));
    CHECK(handle.wait_for(0ms).get() == reply_to(2));
    CHECK(rpc.stats().timed_out == 0);
  }
  SECTION("without a reply") {
    channel::handle_type handle = send_one(rpc, 2);
    CHECK(handle.wait_for(-5s).status() == request_status::timeout);
    CHECK(rpc.stats().timed_out == 1);
  }
}

TEST_CASE("request_reply: late reply skips a reused cell", "[request_reply]") {
  // One reply cell, so the second request must reuse the cell of the first.
  channel rpc({.capacity = 1, .max_outstanding = 1});
  channel::handle_type first = send_one(rpc, 10);
  channel::incoming_type stale = receive_one(rpc);
  CHECK(first.wait_for(0ms).status() == request_status::timeout);

  channel::handle_type second = send_one(rpc, 20);
  CHECK(stale.cancelled());
  CHECK_FALSE(stale.reply(reply_to(10)));
  CHECK(second.try_get().status() == request_status::pending);
  check_stats(
      rpc.stats(), "after the late reply",
      {.queued = 1, .awaiting = 1, .outstanding = 1, .sent = 2, .timed_out = 1, .late_replies = 1});

  channel::incoming_type fresh = receive_one(rpc);
  CHECK(fresh.body() == 20);
  CHECK_FALSE(fresh.cancelled());
  CHECK(fresh.reply(reply_to(20)));
  CHECK(second.try_get().get() == reply_to(20));
  check_stats(rpc.stats(), "after the second reply",
              {.sent = 2, .replied = 1, .timed_out = 1, .late_replies = 1});
}

TEST_CASE("request_reply: late failure is discarded and counted", "[request_reply]") {
  channel rpc({.capacity = 1, .max_outstanding = 1});
  channel::handle_type handle = send_one(rpc, 1);
  channel::incoming_type incoming = receive_one(rpc);
  CHECK(handle.wait_for(0ms).status() == request_status::timeout);

  CHECK_FALSE(incoming.fail(std::make_exception_ptr(lookup_failed("too late"))));
  check_stats(rpc.stats(), "after the late failure",
              {.sent = 1, .timed_out = 1, .late_replies = 1});
}

TEST_CASE("request_reply: late reply by copy copies nothing", "[request_reply]") {
  ringmq::request_reply<int, copy_counting> rpc({.capacity = 1, .max_outstanding = 1});
  auto handle = send_one(rpc, 1);
  auto incoming = receive_one(rpc);
  CHECK(handle.wait_for(0ms).status() == request_status::timeout);

  copy_counting::copies.store(0);
  const copy_counting reply(7);
  CHECK_FALSE(incoming.reply(reply));
  CHECK(copy_counting::copies.load() == 0);
  CHECK(rpc.stats().late_replies == 1);
  CHECK_FALSE(incoming.reply(reply));  // already answered: neither copied nor counted again
  CHECK(rpc.stats().late_replies == 1);

  auto second = send_one(rpc, 2);
  CHECK(receive_one(rpc).reply(reply));
  CHECK(copy_counting::copies.load() == 1);
  CHECK(second.try_get().get().value == 7);
}

// ---- dropped handles --------------------------------------------------------------------------

TEST_CASE("request_reply: dropped handle gives the request up", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  std::optional<channel::handle_type> handle = send_one(rpc, 1);
  handle.reset();
  check_stats(rpc.stats(), "after the drop", {.queued = 1, .sent = 1, .abandoned = 1});

  channel::incoming_type incoming = receive_one(rpc);
  CHECK(incoming.cancelled());
  CHECK_FALSE(incoming.reply(reply_to(1)));
  check_stats(rpc.stats(), "after the reply", {.sent = 1, .abandoned = 1, .late_replies = 1});
}

TEST_CASE("request_reply: handle dropped after its reply", "[request_reply]") {
  counted::reset();
  {
    ringmq::request_reply<int, counted> rpc({.capacity = 2, .max_outstanding = 2});
    std::optional<ringmq::reply_handle<counted>> handle = send_one(rpc, 1);
    CHECK(receive_one(rpc).reply(counted(5)));
    CHECK(counted::live() == 1);  // the reply waits in its cell

    handle.reset();
    CHECK(counted::live() == 0);
    check_stats(rpc.stats(), "after the drop", {.sent = 1, .replied = 1});
  }
  CHECK(counted::errors() == 0);
  CHECK(counted::constructions() == counted::destructions());
}

TEST_CASE("request_reply: moving a handle moves its request", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type first = send_one(rpc, 1);

  channel::handle_type moved(std::move(first));
  CHECK_FALSE(first.valid());
  CHECK(first.status() == request_status::no_request);
  CHECK(first.try_get().status() == request_status::no_request);
  CHECK(moved.valid());

  // Assigning over a valid handle gives its own request up.
  channel::handle_type second = send_one(rpc, 2);
  second = std::move(moved);
  CHECK(rpc.stats().abandoned == 1);

  channel::incoming_type for_first = receive_one(rpc);
  channel::incoming_type for_second = receive_one(rpc);
  CHECK(for_first.reply(reply_to(1)));
  CHECK_FALSE(for_second.reply(reply_to(2)));
  CHECK(second.try_get().get() == reply_to(1));

  channel::handle_type empty;
  CHECK_FALSE(empty.valid());
  CHECK(empty.status() == request_status::no_request);
  CHECK(empty.wait().status() == request_status::no_request);
  check_stats(rpc.stats(), "at the end",
              {.sent = 2, .replied = 1, .abandoned = 1, .late_replies = 1});
}

// ---- responder errors and unanswered requests -------------------------------------------------

TEST_CASE("request_reply: handler exception reaches the requester", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type handle = send_one(rpc, -1);

  const serve_status served = rpc.try_serve([](const int& request) -> int {
    if (request < 0) throw lookup_failed("no entry for " + std::to_string(request));
    return reply_to(request);
  });
  CHECK(served == serve_status::served);
  check_stats(rpc.stats(), "after the failure", {.outstanding = 1, .sent = 1, .failed = 1});

  ringmq::reply_result<int> result = handle.try_get();
  CHECK(result.status() == request_status::responder_error);
  CHECK_FALSE(result.ok());
  REQUIRE(result.error() != nullptr);
  CHECK_THROWS_MATCHES(result.get(), lookup_failed, Catch::Message("no entry for -1"));
  CHECK_THROWS_AS(std::as_const(result).get(), lookup_failed);
  CHECK_THROWS_AS(std::move(result).get(), lookup_failed);
  check_stats(rpc.stats(), "after the collect", {.sent = 1, .failed = 1});
}

TEST_CASE("request_reply: handler exception through call_for", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  std::thread responder([&rpc] {
    while (rpc.serve([](const int& request) -> int {
      if (request % 2 != 0) throw lookup_failed("odd " + std::to_string(request));
      return reply_to(request);
    }) != serve_status::drained) {
    }
  });

  for (int request = 0; request < 20; ++request) {
    ringmq::reply_result<int> result = rpc.call_for(request, long_timeout);
    INFO("request " << request);
    if (request % 2 == 0) {
      REQUIRE(result.ok());
      CHECK(result.get() == reply_to(request));
    } else {
      REQUIRE(result.status() == request_status::responder_error);
      CHECK_THROWS_MATCHES(result.get(), lookup_failed,
                           Catch::Message("odd " + std::to_string(request)));
    }
  }
  rpc.close();
  responder.join();
  check_stats(rpc.stats(), "at the end", {.sent = 20, .replied = 10, .failed = 10});
}

TEST_CASE("request_reply: fail with an exception", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type handle = send_one(rpc, 1);
  channel::incoming_type incoming = receive_one(rpc);

  CHECK(incoming.fail(std::make_exception_ptr(std::out_of_range("key 1"))));
  CHECK(incoming.answered());
  CHECK_FALSE(incoming.fail(std::make_exception_ptr(std::out_of_range("twice"))));
  CHECK_FALSE(incoming.reply(2));

  ringmq::reply_result<int> result = handle.wait_for(long_timeout);
  CHECK(result.status() == request_status::responder_error);
  CHECK_THROWS_MATCHES(result.get(), std::out_of_range, Catch::Message("key 1"));
  check_stats(rpc.stats(), "at the end", {.sent = 1, .failed = 1});
}

TEST_CASE("request_reply: fail rejects a null exception", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type handle = send_one(rpc, 1);
  channel::incoming_type incoming = receive_one(rpc);

  CHECK_THROWS_MATCHES(incoming.fail(nullptr), std::invalid_argument,
                       Catch::Message("ringmq::incoming_request::fail: error is a null "
                                      "std::exception_ptr; pass std::current_exception() or "
                                      "std::make_exception_ptr(e)"));
  CHECK_FALSE(incoming.answered());
  CHECK(handle.try_get().status() == request_status::pending);

  CHECK(incoming.reply(reply_to(1)));
  CHECK(handle.try_get().get() == reply_to(1));
}

TEST_CASE("request_reply: request destroyed unanswered", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type handle = send_one(rpc, 1);
  { channel::incoming_type ignored = receive_one(rpc); }
  check_stats(rpc.stats(), "after the destruction", {.outstanding = 1, .sent = 1, .unanswered = 1});

  ringmq::reply_result<int> result = handle.wait_for(long_timeout);
  CHECK(result.status() == request_status::unanswered);
  CHECK(result.error() == nullptr);
  try {
    (void)result.get();
    FAIL("get() of an unanswered result returned");
  } catch (const ringmq::request_error& error) {
    CHECK(error.status() == request_status::unanswered);
    CHECK_THAT(error.what(), Catch::Matchers::Contains("unanswered"));
  }
  check_stats(rpc.stats(), "after the collect", {.sent = 1, .unanswered = 1});
}

TEST_CASE("request_reply: request destroyed after its requester left", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  std::optional<channel::handle_type> handle = send_one(rpc, 1);
  std::optional<channel::incoming_type> incoming = receive_one(rpc);
  handle.reset();
  incoming.reset();
  // Nothing was answered, so nothing counts as a late reply.
  check_stats(rpc.stats(), "at the end", {.sent = 1, .abandoned = 1});
}

TEST_CASE("request_reply: moving an incoming request", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type first = send_one(rpc, 1);
  channel::handle_type second = send_one(rpc, 2);
  channel::incoming_type for_first = receive_one(rpc);
  channel::incoming_type for_second = receive_one(rpc);

  channel::incoming_type moved(std::move(for_first));
  CHECK(for_first.answered());
  CHECK_FALSE(for_first.reply(0));
  CHECK(moved.body() == 1);

  // Assigning over an unanswered request leaves that request unanswered.
  for_second = std::move(moved);
  CHECK(second.try_get().status() == request_status::unanswered);
  CHECK(for_second.body() == 1);
  CHECK(for_second.reply(reply_to(1)));
  CHECK(first.try_get().get() == reply_to(1));
  check_stats(rpc.stats(), "at the end", {.sent = 2, .replied = 1, .unanswered = 1});
}

TEST_CASE("request_reply: get throws request_error without a reply", "[request_reply]") {
  channel rpc({.capacity = 1, .max_outstanding = 1});
  channel::handle_type handle = send_one(rpc, 1);

  SECTION("pending") {
    ringmq::reply_result<int> result = handle.try_get();
    CHECK_THROWS_MATCHES(result.get(), ringmq::request_error,
                         Catch::Message("ringmq::request_reply: no reply to get: the status is "
                                        "pending; check status() or ok() before calling get()"));
  }
  SECTION("timeout") {
    ringmq::reply_result<int> result = handle.wait_for(0ms);
    try {
      (void)result.get();
      FAIL("get() of a timed-out result returned");
    } catch (const ringmq::request_error& error) {
      CHECK(error.status() == request_status::timeout);
    }
  }
  SECTION("a failed send") {
    ringmq::reply_result<int> result = rpc.call_for(2, 0ms);
    CHECK(result.status() == request_status::timeout);
    CHECK_THROWS_AS(result.get(), ringmq::request_error);
  }
}

// ---- backpressure -----------------------------------------------------------------------------

TEST_CASE("request_reply: full queue rejects sends", "[request_reply]") {
  ringmq::request_reply<move_only, int> rpc({.capacity = 2, .max_outstanding = 4});
  auto first = send_one(rpc, move_only(1));
  auto second = send_one(rpc, move_only(2));
  check_stats(rpc.stats(), "when full", {.queued = 2, .awaiting = 2, .outstanding = 2, .sent = 2});

  move_only request(3);
  auto rejected = rpc.try_send(std::move(request));
  CHECK_FALSE(rejected.valid());
  CHECK(rejected.status() == request_status::full);
  CHECK(rejected.try_get().status() == request_status::full);
  CHECK(rejected.wait().status() == request_status::full);
  REQUIRE(request.value != nullptr);  // a failed send moves nothing
  CHECK(*request.value == 3);

  auto timed_out = rpc.send_for(std::move(request), 1ms);
  CHECK(timed_out.status() == request_status::timeout);
  REQUIRE(request.value != nullptr);
  CHECK(*request.value == 3);

  CHECK(rpc.call_for(std::move(request), 1ms).status() == request_status::timeout);
  REQUIRE(request.value != nullptr);
  check_stats(rpc.stats(), "after the rejected sends",
              {.queued = 2, .awaiting = 2, .outstanding = 2, .sent = 2});

  // A receive makes room.
  auto incoming = receive_one(rpc);
  auto third = send_one(rpc, std::move(request));
  CHECK(request.value == nullptr);  // the send moved it into the queue
}

TEST_CASE("request_reply: send waits for queue room", "[request_reply]") {
  channel rpc({.capacity = 1, .max_outstanding = 4});
  channel::handle_type first = send_one(rpc, 1);

  std::atomic<bool> sending{false};
  channel::handle_type second;
  std::thread sender([&] {
    sending.store(true);
    second = rpc.send(2);
  });
  while (!sending.load()) std::this_thread::yield();
  std::this_thread::sleep_for(settle_time);  // let the sender block while the queue is full

  channel::incoming_type for_first = receive_one(rpc);
  sender.join();
  REQUIRE(second.valid());
  CHECK(for_first.body() == 1);
  channel::incoming_type for_second = receive_one(rpc);
  CHECK(for_second.body() == 2);
  check_stats(rpc.stats(), "at the end", {.awaiting = 2, .outstanding = 2, .sent = 2});
}

TEST_CASE("request_reply: exhausted reply cells reject sends", "[request_reply]") {
  // Two cells and a queue of one: a reply not yet collected keeps its cell in use.
  channel rpc({.capacity = 1, .max_outstanding = 2});
  channel::handle_type first = send_one(rpc, 1);
  CHECK(receive_one(rpc).reply(reply_to(1)));
  channel::handle_type second = send_one(rpc, 2);
  channel::incoming_type incoming = receive_one(rpc);
  check_stats(rpc.stats(), "with every cell in use",
              {.awaiting = 1, .outstanding = 2, .sent = 2, .replied = 1});

  // The queue is empty, yet there is no cell for a third request.
  channel::handle_type rejected = rpc.try_send(3);
  CHECK(rejected.status() == request_status::outstanding_limit);
  CHECK(rpc.send_for(3, 1ms).status() == request_status::timeout);
  CHECK(rpc.call_for(3, 1ms).status() == request_status::timeout);
  check_stats(rpc.stats(), "after the rejected sends",
              {.awaiting = 1, .outstanding = 2, .sent = 2, .replied = 1});

  // Collecting a reply frees its cell.
  CHECK(first.try_get().get() == reply_to(1));
  channel::handle_type third = send_one(rpc, 3);
  check_stats(rpc.stats(), "after the collect",
              {.queued = 1, .awaiting = 2, .outstanding = 2, .sent = 3, .replied = 1});
}

TEST_CASE("request_reply: send waits for a free cell", "[request_reply]") {
  channel rpc({.capacity = 1, .max_outstanding = 1});
  channel::handle_type first = send_one(rpc, 1);
  CHECK(receive_one(rpc).reply(reply_to(1)));

  std::atomic<bool> sending{false};
  channel::handle_type second;
  std::thread sender([&] {
    sending.store(true);
    second = rpc.send_for(2, long_timeout);
  });
  while (!sending.load()) std::this_thread::yield();
  std::this_thread::sleep_for(settle_time);  // let the sender block while no cell is free

  CHECK(first.try_get().get() == reply_to(1));
  sender.join();
  REQUIRE(second.valid());
  CHECK(receive_one(rpc).body() == 2);
}

// ---- close ------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("request_reply: close wakes waiting requesters with closed", "[request_reply]",
                   default_options, spinning, sleeping) {
  constexpr int requesters = 3;
  TestType rpc({.capacity = 4, .max_outstanding = 4});
  std::vector<typename TestType::handle_type> handles(requesters);
  std::vector<request_status> statuses(requesters, request_status::ok);
  std::atomic<int> waiting{0};

  std::vector<std::thread> threads;
  for (int index = 0; index < requesters; ++index) {
    threads.emplace_back([&, index] {
      auto& handle = handles[static_cast<std::size_t>(index)];
      handle = rpc.try_send(index);
      waiting.fetch_add(1);
      // A wait that close() fails to wake returns timeout after a minute, and the test fails.
      statuses[static_cast<std::size_t>(index)] = handle.wait_for(long_timeout).status();
    });
  }
  while (waiting.load() < requesters) std::this_thread::yield();
  std::this_thread::sleep_for(settle_time);  // let the requesters block in their waits
  rpc.close();
  for (std::thread& thread : threads) thread.join();

  for (int index = 0; index < requesters; ++index) {
    INFO("requester " << index);
    CHECK(statuses[static_cast<std::size_t>(index)] == request_status::closed);
    CHECK(handles[static_cast<std::size_t>(index)].valid());  // closed keeps the request
  }
  check_stats(rpc.stats(), "after close",
              {.queued = requesters,
               .awaiting = requesters,
               .outstanding = requesters,
               .sent = requesters});

  // Responders drain the accepted requests, and the replies reach the handles.
  for (int served = 0; served < requesters; ++served) {
    CHECK(rpc.try_serve([](const int& request) { return reply_to(request); }) ==
          serve_status::served);
  }
  CHECK(rpc.try_serve([](const int& request) { return reply_to(request); }) ==
        serve_status::drained);
  for (int index = 0; index < requesters; ++index) {
    auto& handle = handles[static_cast<std::size_t>(index)];
    CHECK(handle.try_get().get() == reply_to(index));
  }
  check_stats(rpc.stats(), "after the drain", {.sent = requesters, .replied = requesters});
}

TEST_CASE("request_reply: close keeps a reply that arrived", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type answered = send_one(rpc, 1);
  channel::handle_type waiting = send_one(rpc, 2);
  CHECK(receive_one(rpc).reply(reply_to(1)));
  rpc.close();

  CHECK(answered.wait().get() == reply_to(1));
  CHECK(waiting.wait().status() == request_status::closed);
  CHECK(waiting.wait_for(long_timeout).status() == request_status::closed);
  CHECK(waiting.try_get().status() == request_status::closed);
  CHECK(waiting.valid());

  // A reply sent after close reaches the handle.
  CHECK(receive_one(rpc).reply(reply_to(2)));
  CHECK(waiting.wait().get() == reply_to(2));
  check_stats(rpc.stats(), "at the end", {.sent = 2, .replied = 2});
}

TEST_CASE("request_reply: sends after close fail with closed", "[request_reply]") {
  ringmq::request_reply<move_only, int> rpc({.capacity = 4, .max_outstanding = 8});
  rpc.close();
  CHECK(rpc.is_closed());
  rpc.close();  // idempotent
  CHECK(rpc.is_closed());

  move_only request(1);
  CHECK(rpc.try_send(std::move(request)).status() == request_status::closed);
  CHECK(rpc.send(std::move(request)).status() == request_status::closed);
  CHECK(rpc.send_for(std::move(request), long_timeout).status() == request_status::closed);
  CHECK(rpc.call_for(std::move(request), long_timeout).status() == request_status::closed);
  CHECK(rpc.call(std::move(request)).status() == request_status::closed);
  REQUIRE(request.value != nullptr);  // failed sends move nothing
  CHECK(*request.value == 1);
  check_stats(rpc.stats(), "at the end", {});
}

TEST_CASE("request_reply: close wakes a blocked sender", "[request_reply]") {
  channel rpc({.capacity = 1, .max_outstanding = 2});
  channel::handle_type first = send_one(rpc, 1);

  std::atomic<bool> sending{false};
  request_status status = request_status::ok;
  std::thread sender([&] {
    sending.store(true);
    status = rpc.send_for(2, long_timeout).status();
  });
  while (!sending.load()) std::this_thread::yield();
  std::this_thread::sleep_for(settle_time);  // let the sender block while the queue is full
  rpc.close();
  sender.join();
  CHECK(status == request_status::closed);
  check_stats(rpc.stats(), "at the end", {.queued = 1, .awaiting = 1, .outstanding = 1, .sent = 1});
}

TEST_CASE("request_reply: call_for gives up at close", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  std::atomic<bool> calling{false};
  request_status status = request_status::ok;
  std::thread requester([&] {
    calling.store(true);
    status = rpc.call_for(1, long_timeout).status();
  });
  while (!calling.load()) std::this_thread::yield();
  // Wait for the request, so that close() finds it sent.
  std::optional<channel::incoming_type> incoming = rpc.receive_for(long_timeout);
  REQUIRE(incoming.has_value());
  rpc.close();
  requester.join();
  CHECK(status == request_status::closed);

  CHECK(incoming->cancelled());
  CHECK_FALSE(incoming->reply(reply_to(1)));
  check_stats(rpc.stats(), "at the end", {.sent = 1, .abandoned = 1, .late_replies = 1});
}

TEST_CASE("request_reply: drained channel ends receives at once", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  channel::handle_type first = send_one(rpc, 1);
  channel::handle_type second = send_one(rpc, 2);
  rpc.close();
  CHECK_FALSE(rpc.is_drained());

  std::optional<channel::incoming_type> incoming = rpc.receive_for(long_timeout);
  REQUIRE(incoming.has_value());
  CHECK(incoming->body() == 1);
  CHECK(rpc.serve_for([](const int& request) { return reply_to(request); }, long_timeout) ==
        serve_status::served);
  CHECK(rpc.is_drained());

  CHECK_FALSE(rpc.try_receive().has_value());
  CHECK_FALSE(rpc.receive().has_value());
  CHECK_FALSE(rpc.receive_for(long_timeout).has_value());
  const auto handler = [](const int& request) { return reply_to(request); };
  CHECK(rpc.try_serve(handler) == serve_status::drained);
  CHECK(rpc.serve(handler) == serve_status::drained);
  CHECK(rpc.serve_for(handler, long_timeout) == serve_status::drained);

  CHECK(second.try_get().get() == reply_to(2));
  CHECK(incoming->reply(reply_to(1)));
  CHECK(first.try_get().get() == reply_to(1));
}

TEST_CASE("request_reply: serve without a request is idle", "[request_reply]") {
  channel rpc({.capacity = 4, .max_outstanding = 8});
  int calls = 0;
  const auto handler = [&calls](const int& request) {
    ++calls;
    return reply_to(request);
  };
  CHECK(rpc.try_serve(handler) == serve_status::idle);
  CHECK(rpc.serve_for(handler, 1ms) == serve_status::idle);
  CHECK_FALSE(rpc.receive_for(1ms).has_value());
  CHECK_FALSE(rpc.is_drained());
  CHECK(calls == 0);
}

// ---- elements ---------------------------------------------------------------------------------

TEST_CASE("request_reply: every counted element is destroyed once", "[request_reply]") {
  counted::reset();
  {
    ringmq::request_reply<counted, counted> rpc({.capacity = 4, .max_outstanding = 8});

    // Collected: the requester owns the reply.
    auto collected = send_one(rpc, counted(1));
    {
      auto incoming = receive_one(rpc);
      CHECK(incoming.reply(counted(incoming.body().value() + 100)));
    }
    {
      ringmq::reply_result<counted> result = collected.try_get();
      REQUIRE(result.ok());
      CHECK(result.get().value() == 101);
    }

    // Late: the responder keeps its argument.
    auto late = send_one(rpc, counted(2));
    CHECK(late.wait_for(0ms).status() == request_status::timeout);
    {
      auto incoming = receive_one(rpc);
      counted reply(102);
      CHECK_FALSE(incoming.reply(std::move(reply)));
      CHECK_FALSE(reply.moved_from());
      CHECK(reply.value() == 102);
    }

    // Dropped after the reply: the handle destroys it.
    {
      auto dropped = send_one(rpc, counted(3));
      CHECK(receive_one(rpc).reply(counted(103)));
    }

    // A copy is sent; the caller's request stays.
    const counted kept(4);
    auto copied = send_one(rpc, kept);
    CHECK(kept.value() == 4);

    // Two requests stay queued until the channel is destroyed; their handles give them up.
    auto left = send_one(rpc, counted(5));
    auto replied = send_one(rpc, counted(6));
    {
      auto incoming = receive_one(rpc);  // request 4
      CHECK(incoming.reply(counted(104)));
    }
    copied = {};  // collects nothing: drops the reply to 4
    replied = {};
    left = {};
    CHECK(rpc.stats().queued == 2);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
  CHECK(counted::constructions() == counted::destructions());
}
