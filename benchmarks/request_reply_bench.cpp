// Benchmarks of ringmq::request_reply against a ping-pong over two ringmq rings and, when
// installed, ZeroMQ's inproc REQ/REP sockets, in one binary, so that the ratios between them
// compare runs on the same machine under the same load.
//
// Every benchmark is named BM_<peer>_<shape>, and every one moves std::uint64_t tokens: the
// requester sends a token, the responder replies with token + 1, and the requester checks the
// reply.
// The peers:
//   request_reply   ringmq::request_reply<std::uint64_t, std::uint64_t>, capacity 1024,
//                   max_outstanding 2048, the default options (several requesters and
//                   responders, wait<park>). The _spin and _yield rows use wait<spin> and
//                   wait<yield>.
//   ring            two ringmq::ring<std::uint64_t> of capacity 1024, one for each direction,
//                   with the default options (wait<park>), or the wait policy of the row.
//   zmq_req_rep     a ZMQ_REQ socket connected to a ZMQ_REP socket bound to an inproc endpoint.
// The shapes:
//   round_trip        One requester thread (the benchmark thread) and one responder thread.
//                     Both wait in their peer's blocking calls: call_for (or call) and serve
//                     for request_reply, push and pop for the rings, send and recv for ZeroMQ.
//                     Time is per round trip.
//   call_single_thread  One thread sends, receives, replies and collects, with the calls that
//                     never wait: try_send, try_receive, reply, try_get; try_push and try_pop
//                     on both rings; ZMQ_DONTWAIT sends and receives. Time is per round trip.
// Each ringmq benchmark also reports allocs_per_op: calls of the global operator new per round
// trip. libzmq allocates with std::malloc, which that counter does not see, so the ZeroMQ
// benchmarks report no allocs_per_op.
//
// Absolute times depend on the machine and its load. Compare peers by their ratios within one
// run.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <ringmq/request_reply.hpp>
#include <ringmq/ring.hpp>

#include "bench_support.hpp"

#ifdef RINGMQ_HAVE_ZMQ
#include <zmq.hpp>
#endif

namespace {

using ringmq_bench::allocations_so_far;
using ringmq_bench::stall_timeout;

constexpr std::size_t queue_capacity = 1024;

// The token that stops a responder thread of the ring and ZeroMQ shapes. Tokens start at 0 and
// grow by 2, so no other token has this value.
constexpr std::uint64_t stop_token = ~std::uint64_t{0};

// Sets allocs_per_op to the allocations since `before`, per iteration.
void report_allocations_per_iteration(benchmark::State& state, std::uint64_t before) {
  state.counters["allocs_per_op"] = benchmark::Counter(
      static_cast<double>(allocations_so_far() - before), benchmark::Counter::kAvgIterations);
}

// Stops the benchmark with an error saying that `reply` came back for `token`.
void report_wrong_reply(benchmark::State& state, std::uint64_t token, std::uint64_t reply) {
  const std::string message = "the responder replied " + std::to_string(reply) + " to token " +
                              std::to_string(token) + ", expected " + std::to_string(token + 1);
  state.SkipWithError(message.c_str());
}

// ---------------------------------------------------------------------------------------------
// request_reply

template <class... Options>
using channel = ringmq::request_reply<std::uint64_t, std::uint64_t, Options...>;

// The call that the requester of the round_trip shape makes.
enum class call_form {
  call_for,  // with a timeout, which costs a clock read per call for the deadline
  call,      // without one
};

template <call_form Form, class... Options>
void run_request_reply_round_trip(benchmark::State& state) {
  auto rpc = std::make_unique<channel<Options...>>(ringmq::request_reply_config{
      .capacity = queue_capacity, .max_outstanding = 2 * queue_capacity});
  std::thread responder([&rpc] {
    const auto reply_to = [](const std::uint64_t& token) { return token + 1; };
    while (rpc->serve(reply_to) != ringmq::serve_status::drained) {
    }
  });

  std::uint64_t token = 0;
  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    ringmq::reply_result<std::uint64_t> result =
        Form == call_form::call_for ? rpc->call_for(token, stall_timeout) : rpc->call(token);
    if (!result.ok()) {
      const std::string message = "token " + std::to_string(token) + " ended with status " +
                                  std::string(ringmq::to_string(result.status()));
      state.SkipWithError(message.c_str());
      break;
    }
    if (result.get() != token + 1) {
      report_wrong_reply(state, token, result.get());
      break;
    }
    token += 2;
  }
  report_allocations_per_iteration(state, allocations_before);

  rpc->close();
  responder.join();
  if (state.error_occurred()) return;
  const ringmq::request_reply_stats stats = rpc->stats();
  if (stats.sent != stats.replied || stats.outstanding != 0 || stats.late_replies != 0) {
    const std::string message = "the channel counted " + std::to_string(stats.sent) + " sent, " +
                                std::to_string(stats.replied) + " replied, " +
                                std::to_string(stats.outstanding) + " outstanding and " +
                                std::to_string(stats.late_replies) +
                                " late replies; expected sent == replied and no others";
    state.SkipWithError(message.c_str());
  }
}

void run_request_reply_single_thread(benchmark::State& state) {
  auto rpc = std::make_unique<channel<>>(ringmq::request_reply_config{
      .capacity = queue_capacity, .max_outstanding = 2 * queue_capacity});
  std::uint64_t token = 0;

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    ringmq::reply_handle<std::uint64_t> handle = rpc->try_send(token);
    if (!handle) {
      state.SkipWithError("try_send on an empty channel failed");
      break;
    }
    std::optional<channel<>::incoming_type> incoming = rpc->try_receive();
    if (!incoming) {
      state.SkipWithError("try_receive after a successful try_send found nothing");
      break;
    }
    if (!incoming->reply(incoming->body() + 1)) {
      state.SkipWithError("reply to a request whose handle waits returned false");
      break;
    }
    ringmq::reply_result<std::uint64_t> result = handle.try_get();
    if (!result.ok()) {
      state.SkipWithError("try_get after the reply found no reply");
      break;
    }
    if (result.get() != token + 1) {
      report_wrong_reply(state, token, result.get());
      break;
    }
    token += 2;
  }
  report_allocations_per_iteration(state, allocations_before);
}

// ---------------------------------------------------------------------------------------------
// ring ping-pong: requests on one ring, replies on the other.

template <class... Options>
using token_ring = ringmq::ring<std::uint64_t, Options...>;

template <class... Options>
void run_ring_round_trip(benchmark::State& state) {
  auto requests = std::make_unique<token_ring<Options...>>(queue_capacity);
  auto replies = std::make_unique<token_ring<Options...>>(queue_capacity);
  std::thread responder([&requests, &replies] {
    for (;;) {
      const std::optional<std::uint64_t> token = requests->pop();
      if (!token || *token == stop_token) return;
      if (!replies->push(*token + 1)) return;
    }
  });

  std::uint64_t token = 0;
  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    if (!requests->push_for(std::uint64_t{token}, stall_timeout)) {
      state.SkipWithError("push_for to the request ring timed out");
      break;
    }
    const std::optional<std::uint64_t> reply = replies->pop_for(stall_timeout);
    if (!reply) {
      const std::string message = "token " + std::to_string(token) + " got no reply within " +
                                  std::to_string(stall_timeout.count()) + " s";
      state.SkipWithError(message.c_str());
      break;
    }
    if (*reply != token + 1) {
      report_wrong_reply(state, token, *reply);
      break;
    }
    token += 2;
  }
  report_allocations_per_iteration(state, allocations_before);

  static_cast<void>(requests->push(std::uint64_t{stop_token}));
  responder.join();
}

void run_ring_single_thread(benchmark::State& state) {
  auto requests = std::make_unique<token_ring<>>(queue_capacity);
  auto replies = std::make_unique<token_ring<>>(queue_capacity);
  std::uint64_t token = 0;

  const std::uint64_t allocations_before = allocations_so_far();
  for (auto _ : state) {
    std::uint64_t request = 0;
    std::uint64_t reply = 0;
    if (!requests->try_push(std::uint64_t{token}) || !requests->try_pop(request) ||
        !replies->try_push(request + 1) || !replies->try_pop(reply)) {
      state.SkipWithError("a try_push or try_pop on an empty ring failed");
      break;
    }
    if (reply != token + 1) {
      report_wrong_reply(state, token, reply);
      break;
    }
    token += 2;
  }
  report_allocations_per_iteration(state, allocations_before);
}

// ---------------------------------------------------------------------------------------------
// ZeroMQ REQ/REP over inproc.

#ifdef RINGMQ_HAVE_ZMQ
// A REQ socket connected to a REP socket. Sockets are not thread-safe: in the round_trip shape
// the REP socket is used only by the responder thread, which is created after the socket. zmq(7)
// of libzmq 4.3 names passing a socket to a newly created thread as a safe way to migrate it.
class zmq_pair {
 public:
  // A receive that waits stall_timeout fails, so that a lost message ends the run with an error
  // and a responder whose requester stopped returns.
  zmq_pair()
      : requester_(context_, zmq::socket_type::req), responder_(context_, zmq::socket_type::rep) {
    const auto timeout_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(stall_timeout).count());
    for (zmq::socket_t* socket : {&requester_, &responder_}) {
      socket->set(zmq::sockopt::linger, 0);
      socket->set(zmq::sockopt::rcvtimeo, timeout_ms);
    }
    responder_.bind(endpoint);
    requester_.connect(endpoint);
  }

  zmq::socket_t& requester() { return requester_; }
  zmq::socket_t& responder() { return responder_; }

 private:
  static constexpr const char* endpoint = "inproc://request_reply_bench";

  // Declared first, so that it is destroyed after the sockets.
  zmq::context_t context_;
  zmq::socket_t requester_;
  zmq::socket_t responder_;
};

bool zmq_send(zmq::socket_t& socket, std::uint64_t value, zmq::send_flags flags) {
  return socket.send(zmq::const_buffer(&value, sizeof value), flags).has_value();
}

// Receives one 8-byte message into value. Returns false when nothing was received or the
// message had another size.
bool zmq_receive(zmq::socket_t& socket, std::uint64_t& value, zmq::recv_flags flags) {
  const zmq::recv_buffer_result_t received =
      socket.recv(zmq::mutable_buffer(&value, sizeof value), flags);
  return received.has_value() && received->untruncated_size == sizeof value;
}

void run_zmq_round_trip(benchmark::State& state) {
  zmq_pair sockets;
  std::thread responder([&sockets] {
    zmq::socket_t& socket = sockets.responder();
    for (;;) {
      std::uint64_t token = 0;
      if (!zmq_receive(socket, token, zmq::recv_flags::none)) return;
      if (!zmq_send(socket, token == stop_token ? token : token + 1, zmq::send_flags::none)) {
        return;
      }
      if (token == stop_token) return;
    }
  });

  zmq::socket_t& socket = sockets.requester();
  std::uint64_t token = 0;
  for (auto _ : state) {
    std::uint64_t reply = 0;
    if (!zmq_send(socket, token, zmq::send_flags::none) ||
        !zmq_receive(socket, reply, zmq::recv_flags::none)) {
      state.SkipWithError("a blocking send or recv on the REQ socket failed");
      break;
    }
    if (reply != token + 1) {
      report_wrong_reply(state, token, reply);
      break;
    }
    token += 2;
  }

  // After an error, REQ/REP's lockstep may leave the REQ socket unable to send; the responder
  // then returns when its receive times out.
  if (!state.error_occurred()) {
    std::uint64_t reply = 0;
    static_cast<void>(zmq_send(socket, stop_token, zmq::send_flags::none) &&
                      zmq_receive(socket, reply, zmq::recv_flags::none));
  }
  responder.join();
}

void run_zmq_single_thread(benchmark::State& state) {
  zmq_pair sockets;
  zmq::socket_t& requester = sockets.requester();
  zmq::socket_t& responder = sockets.responder();
  std::uint64_t token = 0;

  // Each receive retries in case the message has not reached the peer socket when the send
  // returns.
  const auto receive_retrying = [](zmq::socket_t& socket, std::uint64_t& value) {
    ringmq_bench::retry_wait waiter;
    while (!zmq_receive(socket, value, zmq::recv_flags::dontwait)) {
      if (!waiter.wait()) return false;
    }
    return true;
  };
  for (auto _ : state) {
    std::uint64_t request = 0;
    std::uint64_t reply = 0;
    if (!zmq_send(requester, token, zmq::send_flags::dontwait) ||
        !receive_retrying(responder, request) ||
        !zmq_send(responder, request + 1, zmq::send_flags::dontwait) ||
        !receive_retrying(requester, reply)) {
      state.SkipWithError("a send or receive between the REQ and REP sockets failed");
      break;
    }
    if (reply != token + 1) {
      report_wrong_reply(state, token, reply);
      break;
    }
    token += 2;
  }
}
#endif  // RINGMQ_HAVE_ZMQ

// ---------------------------------------------------------------------------------------------
// Registration.

void register_benchmark(const std::string& name, void (*run)(benchmark::State&)) {
  benchmark::RegisterBenchmark(("BM_" + name).c_str(), run)->UseRealTime();
}

// Registers every benchmark, grouped by shape so that the output lists the peers of one shape
// together.
void register_all() {
  using ringmq::spin;
  using ringmq::wait;
  using ringmq::yield;

  register_benchmark("request_reply_round_trip", run_request_reply_round_trip<call_form::call_for>);
  register_benchmark("request_reply_round_trip_no_timeout",
                     run_request_reply_round_trip<call_form::call>);
  register_benchmark("ring_round_trip", run_ring_round_trip<>);
  register_benchmark("request_reply_round_trip_spin",
                     run_request_reply_round_trip<call_form::call_for, wait<spin>>);
  register_benchmark("ring_round_trip_spin", run_ring_round_trip<wait<spin>>);
  register_benchmark("request_reply_round_trip_yield",
                     run_request_reply_round_trip<call_form::call_for, wait<yield>>);
  register_benchmark("ring_round_trip_yield", run_ring_round_trip<wait<yield>>);
#ifdef RINGMQ_HAVE_ZMQ
  register_benchmark("zmq_req_rep_round_trip", run_zmq_round_trip);
#endif

  register_benchmark("request_reply_call_single_thread", run_request_reply_single_thread);
  register_benchmark("ring_call_single_thread", run_ring_single_thread);
#ifdef RINGMQ_HAVE_ZMQ
  register_benchmark("zmq_req_rep_call_single_thread", run_zmq_single_thread);
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
