// Stress tests of ringmq::request_reply: requesters and responders on several threads mixing
// every call, waits short enough to time out while responders work, handles dropped before
// their replies, responders that fail or drop requests, and close() while all of them run.
//
// Each reply is a function of its request's id, and ids carry the requester's number, so a
// reply that reached another request shows up as a mismatch. After each run the main thread
// checks the records of every thread against each other and against stats(): every accepted
// request was received once, every request ended in exactly one way, and every element was
// destroyed once.
//
// Nothing here measures speed. A watchdog closes the channel after a generous limit, so that a
// lost wake-up ends the run and the test reports it. Request counts shrink under
// ThreadSanitizer.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ringmq/request_reply.hpp>

#include "support/counted.hpp"
#include "support/preempt_build.hpp"
#include "support/ring_configs.hpp"
#include "support/sanitizers.hpp"

using namespace std::chrono_literals;
using ringmq::request_status;
using ringmq::serve_status;
using ringmq_test::counted;

namespace {

// Runs `rescue` every 10 ms once `limit` has passed without stop(), so that threads blocked by a
// lost wake-up return and the test can report the hang instead of hanging.
class watchdog {
 public:
  watchdog(std::chrono::seconds limit, std::function<void()> rescue)
      : rescue_(std::move(rescue)), thread_([this, limit] { run(limit); }) {}

  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  ~watchdog() { stop(); }

  void stop() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    stop_requested_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  bool fired() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return fired_;
  }

 private:
  void run(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stop_requested_.wait_for(lock, limit, [this] { return stopped_; })) return;
    fired_ = true;
    while (!stopped_) {
      lock.unlock();
      rescue_();
      lock.lock();
      stop_requested_.wait_for(lock, 10ms, [this] { return stopped_; });
    }
  }

  std::function<void()> rescue_;
  mutable std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopped_ = false;
  bool fired_ = false;
  std::thread thread_;
};

constexpr std::chrono::seconds run_limit{120};

// A wait that only the watchdog's close() ends early.
constexpr auto unbounded = std::chrono::hours(1);

// Request ids: the requester's number in the high half, its sequence number in the low half.
std::uint64_t make_id(std::uint32_t requester, std::uint64_t sequence) {
  return (std::uint64_t{requester} << 32U) | sequence;
}

// The reply to request `id`: distinct for every id.
std::uint64_t reply_value(std::uint64_t id) { return id * 0x9E3779B97F4A7C15ULL + 1; }

// What a responder that received a request with a receive call does with it, chosen by the
// request's sequence number. A serve call cannot drop a request, so it replies to the drop kind.
enum class answer_kind { reply, fail, drop };

answer_kind answer_for(std::uint64_t id) {
  const std::uint64_t sequence = id & 0xFFFF'FFFFU;
  if (sequence % 13 == 5) return answer_kind::fail;
  if (sequence % 17 == 3) return answer_kind::drop;
  return answer_kind::reply;
}

std::string failure_text(std::uint64_t id) { return "failed request " + std::to_string(id); }

// The responder's error. It keeps its text in a std::string of its own rather than deriving from
// std::runtime_error: libstdc++'s runtime_error shares one reference-counted string between
// copies, and its uninstrumented count made ThreadSanitizer report the responder freeing the
// text of its temporary after the requester had read the copy's.
class lookup_error : public std::exception {
 public:
  explicit lookup_error(std::string text) : text_(std::move(text)) {}
  const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::string text_;
};

using channel = ringmq::request_reply<counted, counted>;

// What one requester did. Each thread appends only to its own record, and the main thread reads
// the records after joining every thread.
struct requester_record {
  std::vector<std::uint64_t> accepted;  // ids of the sends that succeeded
  std::uint64_t ok = 0;
  std::uint64_t errors = 0;
  std::uint64_t unanswered = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t drops = 0;            // handles dropped before their outcome was collected
  std::uint64_t closed_calls = 0;     // call_for calls that returned closed, sent or not
  std::uint64_t mismatches = 0;       // outcomes that do not fit their request
  std::vector<std::string> problems;  // the first few mismatches, described
  // Handles whose wait returned closed, collected by the main thread after the responders end.
  std::vector<std::pair<std::uint64_t, channel::handle_type>> kept;
  // Every responder error this requester read. Holding them until the main thread destroys the
  // record makes that thread, after the joins, free each exception object. Otherwise the
  // responder may drop the last reference after the requester read the object, and the only
  // order between the two is exception_ptr's count inside uninstrumented libstdc++, which
  // ThreadSanitizer reports as a race on the freed object.
  std::vector<std::exception_ptr> errors_read;

  void mismatch(std::string what) {
    ++mismatches;
    if (problems.size() < 5) problems.push_back(std::move(what));
  }
};

// What one responder did.
struct responder_record {
  std::vector<std::uint64_t> received;
  std::uint64_t replies_delivered = 0;   // reply() calls that returned true
  std::uint64_t failures_delivered = 0;  // fail() calls that returned true
  std::uint64_t late = 0;                // reply() and fail() calls that returned false
  std::uint64_t served = 0;              // requests answered through a serve call
};

// Checks an outcome against request `id` and counts it in `record`.
void check_outcome(std::uint64_t id, channel::result_type& result, requester_record& record) {
  const std::string request = "request " + std::to_string(id) + ": ";
  switch (result.status()) {
    case request_status::ok:
      ++record.ok;
      if (answer_for(id) == answer_kind::fail) record.mismatch(request + "replied, not failed");
      if (result.get().value() != reply_value(id)) {
        record.mismatch(request + "got reply " + std::to_string(result.get().value()));
      }
      break;
    case request_status::responder_error:
      ++record.errors;
      if (answer_for(id) != answer_kind::fail) record.mismatch(request + "failed");
      record.errors_read.push_back(result.error());
      try {
        std::rethrow_exception(result.error());
      } catch (const lookup_error& error) {
        if (error.what() != failure_text(id)) {
          record.mismatch(request + "failed with " + error.what());
        }
      } catch (...) {
        record.mismatch(request + "failed with an exception of another type");
      }
      break;
    case request_status::unanswered:
      ++record.unanswered;
      if (answer_for(id) != answer_kind::drop) record.mismatch(request + "was unanswered");
      break;
    case request_status::timeout:
      ++record.timeouts;
      break;
    default:
      record.mismatch(request + "ended with status " +
                      std::string(ringmq::to_string(result.status())));
      break;
  }
}

// The shape of one run.
struct traffic {
  std::uint32_t requesters = 3;
  std::uint32_t responders = 2;
  std::uint64_t per_requester = 3000;
  std::size_t capacity = 8;
  std::size_t max_outstanding = 16;
  // 0: close after the requesters finish. Otherwise close once this many sends succeeded, while
  // the requesters still send; each then sends until a send returns closed.
  std::uint64_t close_after = 0;
};

std::uint64_t requests_per_requester(std::uint64_t count) {
  return ringmq_test::preempt_scaled(ringmq_test::thread_sanitizer ? count / 4 : count);
}

// Handles a send that failed: returns true when the requester should stop, because the run
// closes the channel mid-way; any other failure is a mismatch.
bool send_failed(const channel::handle_type& handle, const traffic& shape,
                 requester_record& record) {
  if (shape.close_after != 0 && handle.status() == request_status::closed) return true;
  record.mismatch("a send failed with " + std::string(ringmq::to_string(handle.status())));
  return false;
}

// Waits for a handle's outcome with `wait` and checks it. A wait that close() ended keeps its
// request: the handle goes to record.kept for the main thread to collect later.
template <class Wait>
void finish_request(std::uint64_t id, channel::handle_type handle, Wait&& wait,
                    requester_record& record) {
  channel::result_type result = wait(handle);
  if (result.status() == request_status::closed) {
    record.kept.emplace_back(id, std::move(handle));
    return;
  }
  check_outcome(id, result, record);
}

// One requester: sends requests with ids make_id(number, 0), make_id(number, 1), ..., each by a
// call picked at random, until it has sent per_requester requests or, when the run closes the
// channel mid-way, until a send returns closed.
void run_requester(channel& rpc, const traffic& shape, std::uint32_t number,
                   std::atomic<std::uint64_t>& accepted_total, requester_record& record) {
  std::minstd_rand random(number + 1);
  std::uint64_t sequence = 0;
  const auto note_accepted = [&](std::uint64_t id) {
    record.accepted.push_back(id);
    accepted_total.fetch_add(1, std::memory_order_relaxed);
  };
  const auto wait_forever = [](channel::handle_type& handle) { return handle.wait(); };

  while (shape.close_after != 0 || sequence < shape.per_requester) {
    const std::uint64_t id = make_id(number, sequence++);
    switch (random() % 5) {
      case 0: {  // call_for: send and wait in one step
        channel::result_type result = rpc.call_for(counted(id), unbounded);
        if (result.status() == request_status::closed) {
          // call_for gives its request up at close, so the id may or may not have been sent.
          ++record.closed_calls;
          if (shape.close_after != 0) return;
          record.mismatch("call_for returned closed before close()");
          break;
        }
        note_accepted(id);
        check_outcome(id, result, record);
        break;
      }
      case 1: {  // send, then a short wait that often times out
        channel::handle_type handle = rpc.send_for(counted(id), unbounded);
        if (!handle) {
          if (send_failed(handle, shape, record)) return;
          break;
        }
        note_accepted(id);
        const std::chrono::microseconds timeout(random() % 40);
        finish_request(
            id, std::move(handle), [&](channel::handle_type& h) { return h.wait_for(timeout); },
            record);
        break;
      }
      case 2: {  // try_send until accepted, then drop the handle at once
        channel::handle_type handle = rpc.try_send(counted(id));
        while (handle.status() == request_status::full ||
               handle.status() == request_status::outstanding_limit) {
          std::this_thread::yield();
          handle = rpc.try_send(counted(id));
        }
        if (!handle) {
          if (send_failed(handle, shape, record)) return;
          break;
        }
        note_accepted(id);
        ++record.drops;
        break;
      }
      case 3: {  // send, then poll with try_get, then wait
        channel::handle_type handle = rpc.send(counted(id));
        if (!handle) {
          if (send_failed(handle, shape, record)) return;
          break;
        }
        note_accepted(id);
        channel::result_type polled = handle.try_get();
        for (int poll = 0; poll < 16 && polled.status() == request_status::pending; ++poll) {
          std::this_thread::yield();
          polled = handle.try_get();
        }
        if (polled.status() == request_status::pending ||
            polled.status() == request_status::closed) {
          finish_request(id, std::move(handle), wait_forever, record);
        } else {
          check_outcome(id, polled, record);
        }
        break;
      }
      default: {  // four requests out at once, waited for in reverse order
        std::vector<std::pair<std::uint64_t, channel::handle_type>> batch;
        batch.emplace_back(id, rpc.send(counted(id)));
        for (int more = 0; more < 3; ++more) {
          const std::uint64_t extra = make_id(number, sequence++);
          batch.emplace_back(extra, rpc.send(counted(extra)));
        }
        bool stop = false;
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          if (!it->second) {
            stop = send_failed(it->second, shape, record) || stop;
            continue;
          }
          note_accepted(it->first);
          finish_request(it->first, std::move(it->second), wait_forever, record);
        }
        if (stop) return;
        break;
      }
    }
  }
}

// Answers one received request as answer_for(id) says, and records what happened.
void answer(channel::incoming_type& incoming, responder_record& record) {
  const std::uint64_t id = incoming.body().value();
  record.received.push_back(id);
  switch (answer_for(id)) {
    case answer_kind::reply:
      if (incoming.reply(counted(reply_value(id)))) {
        ++record.replies_delivered;
      } else {
        ++record.late;
      }
      break;
    case answer_kind::fail:
      if (incoming.fail(std::make_exception_ptr(lookup_error(failure_text(id))))) {
        ++record.failures_delivered;
      } else {
        ++record.late;
      }
      break;
    case answer_kind::drop:
      break;  // the caller destroys the request unanswered
  }
}

// One responder: takes requests with every receive and serve call in turn until the channel is
// drained.
void run_responder(channel& rpc, std::uint32_t number, responder_record& record) {
  const auto handler = [&record](const counted& request) -> counted {
    const std::uint64_t id = request.value();
    record.received.push_back(id);
    if (answer_for(id) == answer_kind::fail) throw lookup_error(failure_text(id));
    return counted(reply_value(id));
  };
  for (std::uint64_t round = number;; ++round) {
    if (round % 4 == 3) {
      const serve_status status =
          (round % 8 == 3) ? rpc.try_serve(handler) : rpc.serve_for(handler, 1ms);
      if (status == serve_status::drained) return;
      if (status == serve_status::served) ++record.served;
      continue;
    }
    std::optional<channel::incoming_type> incoming;
    if (round % 4 == 0) {
      incoming = rpc.try_receive();
    } else if (round % 4 == 1) {
      incoming = rpc.receive_for(1ms);
    } else {
      incoming = rpc.receive();
    }
    if (incoming) {
      answer(*incoming, record);
    } else if (rpc.is_drained()) {
      return;
    }
  }
}

// Runs one traffic shape and checks every record.
void run_and_check(const traffic& shape) {
  counted::reset();
  {
    channel rpc({.capacity = shape.capacity, .max_outstanding = shape.max_outstanding});
    std::vector<requester_record> requesters(shape.requesters);
    std::vector<responder_record> responders(shape.responders);
    std::atomic<std::uint64_t> accepted_total{0};

    watchdog guard(run_limit, [&rpc] { rpc.close(); });
    std::vector<std::thread> responder_threads;
    for (std::uint32_t number = 0; number < shape.responders; ++number) {
      responder_threads.emplace_back(
          [&, number] { run_responder(rpc, number, responders[number]); });
    }
    std::vector<std::thread> requester_threads;
    for (std::uint32_t number = 0; number < shape.requesters; ++number) {
      requester_threads.emplace_back(
          [&, number] { run_requester(rpc, shape, number, accepted_total, requesters[number]); });
    }

    if (shape.close_after != 0) {
      while (accepted_total.load(std::memory_order_relaxed) < shape.close_after && !guard.fired()) {
        std::this_thread::yield();
      }
      rpc.close();
    }
    for (std::thread& thread : requester_threads) thread.join();
    rpc.close();
    for (std::thread& thread : responder_threads) thread.join();
    guard.stop();
    REQUIRE_FALSE(guard.fired());

    // Replies to requests whose waits close() ended reach the handles that kept them.
    for (requester_record& record : requesters) {
      for (auto& [id, handle] : record.kept) {
        channel::result_type result = handle.try_get();
        INFO("kept request " << id << " ended with " << ringmq::to_string(result.status()));
        CHECK(result.status() != request_status::pending);
        CHECK(result.status() != request_status::closed);
        CHECK(result.status() != request_status::timeout);
        check_outcome(id, result, record);
      }
      record.kept.clear();
    }

    // Sum the records.
    std::vector<std::uint64_t> accepted;
    std::vector<std::uint64_t> received;
    requester_record asked;
    for (const requester_record& record : requesters) {
      accepted.insert(accepted.end(), record.accepted.begin(), record.accepted.end());
      asked.ok += record.ok;
      asked.errors += record.errors;
      asked.unanswered += record.unanswered;
      asked.timeouts += record.timeouts;
      asked.drops += record.drops;
      asked.closed_calls += record.closed_calls;
      asked.mismatches += record.mismatches;
      for (const std::string& problem : record.problems) UNSCOPED_INFO(problem);
    }
    responder_record answered;
    for (const responder_record& record : responders) {
      received.insert(received.end(), record.received.begin(), record.received.end());
      answered.replies_delivered += record.replies_delivered;
      answered.failures_delivered += record.failures_delivered;
      answered.late += record.late;
      answered.served += record.served;
    }
    std::sort(accepted.begin(), accepted.end());
    std::sort(received.begin(), received.end());
    const ringmq::request_reply_stats stats = rpc.stats();
    INFO("stats: sent " << stats.sent << ", replied " << stats.replied << ", failed "
                        << stats.failed << ", unanswered " << stats.unanswered << ", timed out "
                        << stats.timed_out << ", abandoned " << stats.abandoned << ", late "
                        << stats.late_replies);
    INFO("requesters: accepted " << accepted.size() << ", ok " << asked.ok << ", errors "
                                 << asked.errors << ", unanswered " << asked.unanswered
                                 << ", timeouts " << asked.timeouts << ", drops " << asked.drops
                                 << ", closed calls " << asked.closed_calls);
    INFO("responders: received " << received.size() << ", replies " << answered.replies_delivered
                                 << ", failures " << answered.failures_delivered << ", late "
                                 << answered.late << ", served " << answered.served);

    // Every outcome fit its request, and each request that a requester recorded as sent ended
    // once on its side.
    CHECK(asked.mismatches == 0);
    CHECK(asked.ok + asked.errors + asked.unanswered + asked.timeouts + asked.drops ==
          accepted.size());

    // Responders received every accepted request once and nothing else. A call_for that returned
    // closed may have sent its request, so only those may be received without being recorded.
    CHECK(std::adjacent_find(received.begin(), received.end()) == received.end());
    CHECK(std::includes(received.begin(), received.end(), accepted.begin(), accepted.end()));
    CHECK(received.size() <= accepted.size() + asked.closed_calls);
    CHECK(stats.sent == received.size());

    // Every request ended in one way, and nothing is left.
    CHECK(stats.queued == 0);
    CHECK(stats.awaiting == 0);
    CHECK(stats.outstanding == 0);
    CHECK(stats.sent ==
          stats.replied + stats.failed + stats.unanswered + stats.timed_out + stats.abandoned);
    CHECK(stats.timed_out == asked.timeouts);

    // The requesters collected some of the answers; a dropped handle or a closed call_for gave
    // its request up or discarded the answer that had arrived.
    CHECK(stats.replied >= asked.ok);
    CHECK(stats.failed >= asked.errors);
    CHECK(stats.unanswered >= asked.unanswered);
    CHECK(stats.abandoned + (stats.replied - asked.ok) + (stats.failed - asked.errors) +
              (stats.unanswered - asked.unanswered) ==
          asked.drops + (stats.sent - accepted.size()));

    // Responders' answers: serve calls hide whether theirs were late, so only those are unknown.
    CHECK(stats.late_replies >= answered.late);
    CHECK(stats.late_replies <= answered.late + answered.served);
    CHECK(stats.replied >= answered.replies_delivered);
    CHECK(stats.failed >= answered.failures_delivered);
    CHECK(stats.late_replies <= stats.timed_out + stats.abandoned);
  }
  CHECK(counted::live() == 0);
  CHECK(counted::errors() == 0);
  CHECK(counted::constructions() == counted::destructions());
}

}  // namespace

TEST_CASE("request_reply: many requesters and responders", "[request_reply][stress]") {
  traffic shape;
  shape.per_requester = requests_per_requester(3000);
  run_and_check(shape);
}

TEST_CASE("request_reply: few cells and a queue of one", "[request_reply][stress]") {
  // Few cells and a queue of one: senders wait for cells and for room all the time. A requester
  // holds up to 3 handles while it blocks in send for a fourth cell, and the answers in those
  // cells wait for it to collect them. With 4 * 3 + 1 cells, one requester always finds a cell;
  // with fewer, all four could wait for each other for good.
  traffic shape;
  shape.requesters = 4;
  shape.responders = 1;
  shape.capacity = 1;
  shape.max_outstanding = 13;
  shape.per_requester = requests_per_requester(1500);
  run_and_check(shape);
}

TEST_CASE("request_reply: close while every thread runs", "[request_reply][stress]") {
  traffic shape;
  shape.close_after = requests_per_requester(2000);
  run_and_check(shape);
}
