// ringmq::request_reply: requests from many threads to a pool of responders, each answered by
// its own reply or failure, with timeouts, backpressure and close.
//
//   ringmq::request_reply<query, answer> rpc{{.capacity = 1024, .max_outstanding = 2048}};
//
//   // requester thread
//   ringmq::reply_result<answer> result = rpc.call_for(query{...}, 50ms);
//   if (result) use(result.get());               // get() rethrows a responder's exception
//
//   // responder thread
//   while (rpc.serve_for([](const query& q) { return lookup(q); }, 100ms) !=
//          ringmq::serve_status::drained) {
//   }
//
// A send takes a reply cell from a preallocated table and pushes the request, with the cell's
// index and generation, into a bounded ringmq::ring. The responder that receives it answers
// through the incoming_request it got: reply(value), fail(exception), or nothing, when it
// destroys the request unanswered. The answer goes into the cell, where the requester's
// reply_handle waits for it. detail/reply_cells.hpp gives the protocol. An answer and a
// requester that gives up race on one compare-and-swap of the cell's state word, and the cell's
// generation grows at every reuse. So an answer that comes after the requester gave up is
// discarded and counted as a late reply, and never reaches another request.
//
// Guarantees.
// - Every request that a send accepted ends in exactly one way: a reply, a failure, unanswered,
//   or given up by its requester (a wait's timeout, or dropping the handle).
// - An answer reaches only the request it was given for.
// - Memory order: a send happens before the receive of its request, and an answer happens
//   before the wait that returns it.
// - After construction, nothing allocates except what Request's and Reply's constructors do,
//   and the exception a responder fails a request with.
// - try_send, try_receive, the answers and try_get take no lock. The blocking calls wait as
//   the wait policy chooses: wait<park>, the default, spins, yields, then sleeps in the kernel.
//
// docs/request_reply.md has every rule: statuses, timeouts, late replies, exceptions, close,
// capacity and the exhaustion of reply cells.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/reply_cells.hpp"
#include "ringmq/detail/reply_options.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"
#include "ringmq/ring.hpp"

namespace ringmq {

template <class Request, class Reply, class... Options>
class request_reply;
template <class Reply, class Wait = park>
class reply_handle;
template <class Request, class Reply, class Wait = park>
class incoming_request;

// Numbers of a request_reply channel, fixed at construction.
struct request_reply_config {
  std::size_t capacity = 1024;         // requests queued and not yet received
  std::size_t max_outstanding = 2048;  // requests holding a reply cell; at least capacity
};

// The outcome of a send, a wait or a call.
enum class request_status : std::uint8_t {
  ok,                 // the reply arrived; get() returns it
  responder_error,    // the responder failed the request; get() rethrows its exception
  unanswered,         // a responder destroyed the request without replying or failing it
  pending,            // no outcome yet; the request is still out
  timeout,            // a send found no room, or a wait no outcome, within its timeout
  closed,             // the channel is closed: a send was rejected, or a wait found no outcome
  full,               // the request queue contains capacity requests
  outstanding_limit,  // max_outstanding requests hold reply cells
  no_request,         // the handle has no request: default-constructed, moved from, or done
};

constexpr std::string_view to_string(request_status status) noexcept {
  switch (status) {
    case request_status::ok:
      return "ok";
    case request_status::responder_error:
      return "responder_error";
    case request_status::unanswered:
      return "unanswered";
    case request_status::pending:
      return "pending";
    case request_status::timeout:
      return "timeout";
    case request_status::closed:
      return "closed";
    case request_status::full:
      return "full";
    case request_status::outstanding_limit:
      return "outstanding_limit";
    case request_status::no_request:
      return "no_request";
  }
  return "unknown";
}

// The result of a serve call.
enum class serve_status : std::uint8_t {
  served,   // handled one request; its reply or failure may still have been late
  idle,     // no request came: none was queued, or none within the timeout
  drained,  // the channel is closed and no request is left to receive
};

constexpr std::string_view to_string(serve_status status) noexcept {
  switch (status) {
    case serve_status::served:
      return "served";
    case serve_status::idle:
      return "idle";
    case serve_status::drained:
      return "drained";
  }
  return "unknown";
}

// Thrown by reply_result::get() when there is no reply to return and no responder exception to
// rethrow: the status was timeout, closed, unanswered, or a send's failure.
class request_error : public std::runtime_error {
 public:
  explicit request_error(request_status status)
      : std::runtime_error("ringmq::request_reply: no reply to get: the status is " +
                           std::string(to_string(status)) +
                           "; check status() or ok() before calling get()"),
        status_(status) {}

  request_status status() const noexcept { return status_; }

 private:
  request_status status_;
};

// A snapshot of a channel. Counts are exact when no call is in progress. Then
//   sent == replied + failed + unanswered + timed_out + abandoned + awaiting.
struct request_reply_stats {
  std::size_t queued = 0;       // requests in the queue, not yet received
  std::size_t awaiting = 0;     // requests sent that have no outcome and were not given up
  std::size_t outstanding = 0;  // reply cells in use: awaiting, plus outcomes not yet collected
  std::uint64_t sent = 0;
  std::uint64_t replied = 0;       // replies that reached their requester
  std::uint64_t failed = 0;        // failures that reached their requester
  std::uint64_t unanswered = 0;    // requests destroyed unanswered while the requester waited
  std::uint64_t timed_out = 0;     // requests given up because a wait timed out
  std::uint64_t abandoned = 0;     // requests given up because the handle was dropped
  std::uint64_t late_replies = 0;  // replies and failures discarded: the request was given up
};

// The result of a wait or a call: a status, and the reply or the responder's exception.
template <class Reply>
class reply_result {
 public:
  request_status status() const noexcept { return status_; }
  bool ok() const noexcept { return status_ == request_status::ok; }
  explicit operator bool() const noexcept { return ok(); }

  // Returns the reply. Rethrows the responder's exception for responder_error, and throws
  // request_error for every other status but ok.
  Reply& get() & {
    check_reply();
    return *value_;
  }
  const Reply& get() const& {
    check_reply();
    return *value_;
  }
  Reply get() && {
    check_reply();
    return std::move(*value_);
  }

  // The responder's exception for responder_error; null otherwise.
  std::exception_ptr error() const noexcept { return error_; }

 private:
  template <class, class>
  friend class reply_handle;
  template <class, class, class...>
  friend class request_reply;

  explicit reply_result(request_status status) noexcept : status_(status) {}

  void check_reply() const {
    if (status_ == request_status::ok) return;
    if (status_ == request_status::responder_error) std::rethrow_exception(error_);
    throw request_error(status_);
  }

  request_status status_;
  std::optional<Reply> value_;
  std::exception_ptr error_;
};

// The requester's side of one request: waits for its outcome. Move-only.
//
// A valid handle has a request in flight, and its status() is pending. A handle is empty
// when its send failed (status() says why), after it returned an outcome or gave the request up
// (status() is no_request), or when default-constructed or moved from. Dropping a valid handle
// gives the request up: a later answer is discarded and counted as late. A handle must not
// outlive its channel. One thread at a time may use a handle.
template <class Reply, class Wait>
class reply_handle {
  using cells_type = detail::reply_cells<Reply, Wait>;

 public:
  using result_type = reply_result<Reply>;

  reply_handle() noexcept = default;

  reply_handle(reply_handle&& other) noexcept
      : cells_(std::exchange(other.cells_, nullptr)),
        token_(other.token_),
        status_(std::exchange(other.status_, request_status::no_request)) {}

  // Gives up this handle's own request, if any, then takes over other's.
  reply_handle& operator=(reply_handle&& other) noexcept {
    if (this != &other) {
      finish();
      cells_ = std::exchange(other.cells_, nullptr);
      token_ = other.token_;
      status_ = std::exchange(other.status_, request_status::no_request);
    }
    return *this;
  }

  ~reply_handle() { finish(); }

  bool valid() const noexcept { return cells_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

  // pending for a valid handle; otherwise why the handle is empty.
  request_status status() const noexcept { return status_; }

  // Returns the outcome if it arrived, which empties the handle. Otherwise returns pending, or
  // closed when the channel is closed, and the handle stays valid. Does not wait for the outcome.
  result_type try_get() noexcept {
    if (!valid()) return result_type(status_);
    if (detail::is_outcome(cells_->phase(token_))) return take();
    return result_type(cells_->is_closed() ? request_status::closed : request_status::pending);
  }

  // Waits for the outcome, and returns it. Returns closed, keeping the request, once the channel
  // is closed and no outcome has arrived.
  result_type wait() noexcept { return wait_until(detail::steady_time::max()); }

  // As wait(), for at most `timeout` on steady_clock. When the timeout passes with no outcome,
  // the request is given up, as a gRPC deadline ends a call: the handle is emptied, the reply
  // cell freed, and an answer that comes later is discarded and counted as late. A zero or
  // negative timeout checks once. Use try_get() to poll without giving the request up.
  template <class Rep, class Period>
  result_type wait_for(std::chrono::duration<Rep, Period> timeout) noexcept {
    if (!valid()) return result_type(status_);
    return wait_until(detail::deadline_after(timeout));
  }

 private:
  template <class, class, class...>
  friend class request_reply;

  reply_handle(cells_type& cells, detail::reply_token token) noexcept
      : cells_(&cells), token_(token), status_(request_status::pending) {}

  explicit reply_handle(request_status failure) noexcept : status_(failure) {}

  result_type wait_until(detail::steady_time deadline) noexcept {
    if (!valid()) return result_type(status_);
    switch (cells_->wait_until(token_, deadline, true)) {
      case cells_type::wait_outcome::answered:
        return take();
      case cells_type::wait_outcome::closed:
        return result_type(request_status::closed);
      case cells_type::wait_outcome::timed_out:
        break;
    }
    cells_ = nullptr;  // the wait gave the request up and freed the cell
    status_ = request_status::no_request;
    return result_type(request_status::timeout);
  }

  // Moves the outcome out of the cell into a result and empties the handle.
  result_type take() noexcept {
    result_type result(request_status::ok);
    cells_->collect(
        token_, [&](detail::reply_phase outcome, Reply* value, std::exception_ptr& error) noexcept {
          if (outcome == detail::reply_phase::replied) {
            result.value_.emplace(std::move(*value));
          } else if (outcome == detail::reply_phase::failed) {
            result.status_ = request_status::responder_error;
            result.error_ = std::move(error);
          } else {
            result.status_ = request_status::unanswered;
          }
        });
    cells_ = nullptr;
    status_ = request_status::no_request;
    return result;
  }

  // Gives up the request, or discards its outcome, and frees the cell.
  void finish() noexcept {
    if (!valid()) return;
    if (!cells_->try_abandon(token_, cells_type::abandon_reason::dropped)) {
      // An answer won the cell: wait the few instructions until it is written, then discard it.
      cells_->wait_until(token_, detail::steady_time::max(), false);
      cells_->collect(token_, [](detail::reply_phase, Reply*, std::exception_ptr&) noexcept {});
    }
    cells_ = nullptr;
    status_ = request_status::no_request;
  }

  cells_type* cells_ = nullptr;
  detail::reply_token token_{};
  request_status status_ = request_status::no_request;
};

// The responder's side of one request: the request's body, and the calls that answer it.
// Move-only.
//
// Answer once, with reply() or fail(); both are answers. Destroying a request that was not answered
// tells the requester that it is unanswered. An answer returns false, and delivers nothing, when
// the requester has given the request up (a late reply, which stats() counts) or when this request
// was already answered. An incoming_request must not outlive its channel. One thread at a time
// may use it.
template <class Request, class Reply, class Wait>
class incoming_request {
  using cells_type = detail::reply_cells<Reply, Wait>;

 public:
  incoming_request(incoming_request&& other) noexcept
      : body_(std::move(other.body_)),
        cells_(std::exchange(other.cells_, nullptr)),
        token_(other.token_) {}

  // Tells the requester of this request, if it is not yet answered, that it is unanswered, then
  // takes over other's request.
  incoming_request& operator=(
      incoming_request&& other) noexcept requires std::is_nothrow_move_assignable_v<Request> {
    if (this != &other) {
      finish();
      body_ = std::move(other.body_);
      cells_ = std::exchange(other.cells_, nullptr);
      token_ = other.token_;
    }
    return *this;
  }

  ~incoming_request() { finish(); }

  Request& body() & noexcept { return body_; }
  const Request& body() const& noexcept { return body_; }
  Request&& body() && noexcept { return std::move(body_); }

  // Delivers `value` as the reply. Returns false, leaving value unchanged, when the requester
  // gave the request up or the request was already answered.
  bool reply(Reply&& value) noexcept {
    return answer(detail::reply_phase::replied, [&](void* at, std::exception_ptr&) noexcept {
      ::new (at) Reply(std::move(value));
    });
  }

  // As reply(Reply&&), with a copy of value. A copy that throws leaves the request unanswered.
  bool reply(const Reply& value) {
    if (answered()) return false;
    if (!cells_->awaits_answer(token_)) {
      // Skip the copy: the requester has given the request up, so the reply is late.
      cells_->count_late_reply();
      cells_ = nullptr;
      return false;
    }
    return reply(Reply(value));
  }

  // Delivers `error` as the outcome: the requester's get() rethrows it. Returns false when the
  // requester gave the request up or the request was already answered. Throws
  // std::invalid_argument for a null error, and the request stays unanswered.
  bool fail(std::exception_ptr error) {
    if (error == nullptr) {
      throw std::invalid_argument(
          "ringmq::incoming_request::fail: error is a null std::exception_ptr; pass "
          "std::current_exception() or std::make_exception_ptr(e)");
    }
    return answer(detail::reply_phase::failed,
                  [&](void*, std::exception_ptr& slot) noexcept { slot = std::move(error); });
  }

  // Whether reply() or fail() was called, or this object was moved from.
  bool answered() const noexcept { return cells_ == nullptr; }

  // Whether the requester has given the request up, by a wait's timeout or by dropping its
  // handle, so that an answer would be discarded. A responder may skip costly work then.
  bool cancelled() const noexcept { return !answered() && !cells_->awaits_answer(token_); }

 private:
  template <class, class, class...>
  friend class request_reply;

  incoming_request(Request&& body, cells_type& cells, detail::reply_token token) noexcept
      : body_(std::move(body)), cells_(&cells), token_(token) {}

  template <class Write>
  bool answer(detail::reply_phase outcome, Write&& write) noexcept {
    if (answered()) return false;
    const bool delivered = cells_->answer(token_, outcome, true, std::forward<Write>(write));
    cells_ = nullptr;
    return delivered;
  }

  void finish() noexcept {
    if (answered()) return;
    cells_->answer(token_, detail::reply_phase::unanswered, false,
                   [](void*, std::exception_ptr&) noexcept {});
    cells_ = nullptr;
  }

  Request body_;
  cells_type* cells_;
  detail::reply_token token_;
};

// A bounded channel of requests to responders, each answered through its own reply cell.
//
// Options, in any order: wait<spin|yield|park> for every blocking call (default park),
// producers<single|multi> for the requesters and consumers<single|multi> for the responders
// (default multi: single promises that one thread at a time sends, or receives), and
// slot_layout<padded|packed> for the request queue.
//
// Requirements: Request and Reply are object types whose move constructor and destructor are
// noexcept. The handles and incoming requests of a channel must be gone before it is destroyed.
template <class Request, class Reply, class... Options>
class request_reply {
  static_assert(ring_element<Request>,
                "ringmq::request_reply<Request, Reply>: Request must be a non-const object type "
                "whose move constructor and destructor are noexcept, because requests move "
                "through a ringmq::ring");
  static_assert(ring_element<Reply>,
                "ringmq::request_reply<Request, Reply>: Reply must be a non-const object type "
                "whose move constructor and destructor are noexcept, because a reply is moved "
                "into its cell after the responder has won the cell and cannot undo that");

  using options = detail::reply_options<Options...>;
  static_assert(options::all_supported);

  using wait_type = typename options::wait_policy;
  using envelope = detail::request_envelope<Request>;
  using queue_type =
      ring<envelope, wait<wait_type>, producers<typename options::requester_role>,
           consumers<typename options::responder_role>, slot_layout<typename options::layout>>;
  using cells_type = detail::reply_cells<Reply, wait_type>;

 public:
  using request_type = Request;
  using reply_type = Reply;
  using handle_type = reply_handle<Reply, wait_type>;
  using incoming_type = incoming_request<Request, Reply, wait_type>;
  using result_type = reply_result<Reply>;

  // Creates an open channel. Throws std::invalid_argument, naming the field and its value, for
  // a capacity or max_outstanding of 0 or a max_outstanding below the capacity, and
  // std::length_error for a max_outstanding of 2^32 - 1 or more.
  explicit request_reply(const request_reply_config& config = {})
      : config_(checked(config)), cells_(config.max_outstanding), requests_(config.capacity) {}

  request_reply(const request_reply&) = delete;
  request_reply& operator=(const request_reply&) = delete;

  // ---- requester: send -----------------------------------------------------------------------

  // Sends the request unless the channel is closed, every reply cell is in use
  // (outstanding_limit) or the queue is full. On failure the request is left unchanged, and the
  // returned handle is empty with the reason as its status().
  handle_type try_send(Request&& request) noexcept {
    if (cells_.is_closed()) return handle_type(request_status::closed);
    const std::optional<detail::reply_token> token = cells_.try_take();
    if (!token) return handle_type(request_status::outstanding_limit);
    RINGMQ_PREEMPTION_POINT();
    if (!requests_.try_emplace(*token, std::move(request))) {  // moves only on success
      cells_.give_back_unsent(*token);
      return handle_type(requests_.is_closed() ? request_status::closed : request_status::full);
    }
    RINGMQ_PREEMPTION_POINT();
    cells_.confirm_sent(*token);
    return handle_type(cells_, *token);
  }
  handle_type try_send(const Request& request) { return try_send(Request(request)); }

  // As try_send, waiting while the queue is full or every cell is in use. Fails only with closed.
  handle_type send(Request&& request) noexcept {
    return send_until(std::move(request), detail::steady_time::max());
  }
  handle_type send(const Request& request) { return send(Request(request)); }

  // As send, waiting at most `timeout` on steady_clock for room; then fails with timeout.
  template <class Rep, class Period>
  handle_type send_for(Request&& request, std::chrono::duration<Rep, Period> timeout) noexcept {
    handle_type first = try_send(std::move(request));  // a send with room needs no deadline
    if (!retry_after(first.status())) return first;
    return send_until(std::move(request), detail::deadline_after(timeout));
  }
  template <class Rep, class Period>
  handle_type send_for(const Request& request, std::chrono::duration<Rep, Period> timeout) {
    return send_for(Request(request), timeout);
  }

  // ---- requester: call -----------------------------------------------------------------------

  // Sends the request and waits for its outcome, both within one `timeout` on steady_clock.
  // Returns the outcome, or the status of the send or the wait that failed. The request is
  // given up when the call returns timeout or closed, so a later answer counts as late.
  template <class Rep, class Period>
  result_type call_for(Request&& request, std::chrono::duration<Rep, Period> timeout) noexcept {
    const detail::steady_time deadline = detail::deadline_after(timeout);
    handle_type handle = send_until(std::move(request), deadline);
    return handle.wait_until(deadline);
  }
  template <class Rep, class Period>
  result_type call_for(const Request& request, std::chrono::duration<Rep, Period> timeout) {
    return call_for(Request(request), timeout);
  }

  // As call_for without a timeout: returns an outcome, or closed.
  result_type call(Request&& request) noexcept {
    handle_type handle = send_until(std::move(request), detail::steady_time::max());
    return handle.wait_until(detail::steady_time::max());
  }
  result_type call(const Request& request) { return call(Request(request)); }

  // ---- responder: receive --------------------------------------------------------------------

  // Takes the oldest queued request, or returns nothing when none is queued.
  std::optional<incoming_type> try_receive() noexcept { return accept(requests_.try_pop()); }

  // Takes the oldest request, waiting for one. Returns nothing once the channel is drained:
  // closed, with no request left in the queue.
  std::optional<incoming_type> receive() noexcept { return accept(requests_.pop()); }

  // As receive, waiting at most `timeout` on steady_clock.
  template <class Rep, class Period>
  std::optional<incoming_type> receive_for(std::chrono::duration<Rep, Period> timeout) noexcept {
    return accept(requests_.pop_for(timeout));
  }

  // ---- responder: serve ----------------------------------------------------------------------
  // Each serve call receives one request and answers it with handler(const Request&): with the
  // reply the handler returns, or, when it throws, with the exception as the failure. The
  // handler's exception never leaves the serve call.

  template <class Handler>
    requires std::invocable<Handler&, const Request&> &&
        std::convertible_to<std::invoke_result_t<Handler&, const Request&>, Reply>
            serve_status try_serve(Handler&& handler) {
      return serve_one(try_receive(), handler);
    }

  template <class Handler>
    requires std::invocable<Handler&, const Request&> &&
        std::convertible_to<std::invoke_result_t<Handler&, const Request&>, Reply>
            serve_status serve(Handler&& handler) {
      return serve_one(receive(), handler);
    }

  template <class Handler, class Rep, class Period>
    requires std::invocable<Handler&, const Request&> &&
        std::convertible_to<std::invoke_result_t<Handler&, const Request&>, Reply>
            serve_status serve_for(Handler&& handler, std::chrono::duration<Rep, Period> timeout) {
      return serve_one(receive_for(timeout), handler);
    }

  // ---- close and observers -------------------------------------------------------------------

  // Closes the channel. Sends fail with closed from now on, and every wait of a requester
  // returns at once: the outcome if it has arrived, else closed. Requests already queued stay
  // for the responders, and the answers to them still reach the handles that hold them.
  // Idempotent.
  void close() noexcept {
    cells_.close();
    RINGMQ_PREEMPTION_POINT();
    requests_.close();
  }

  bool is_closed() const noexcept { return cells_.is_closed(); }

  // Whether the channel is closed and no request is left in the queue.
  bool is_drained() const noexcept { return requests_.is_closed() && requests_.empty(); }

  std::size_t capacity() const noexcept { return config_.capacity; }
  std::size_t max_outstanding() const noexcept { return config_.max_outstanding; }

  // A snapshot of the channel: O(max_outstanding), for monitoring rather than every call.
  request_reply_stats stats() const noexcept {
    const typename cells_type::totals totals = cells_.count();
    request_reply_stats out;
    out.queued = requests_.size();
    out.awaiting = totals.awaiting;
    out.outstanding = totals.outstanding;
    out.sent = totals.sent;
    out.replied = totals.replied;
    out.failed = totals.failed;
    out.unanswered = totals.unanswered;
    out.timed_out = totals.timed_out;
    out.abandoned = totals.abandoned;
    out.late_replies = cells_.late_replies();
    return out;
  }

 private:
  static const request_reply_config& checked(const request_reply_config& config) {
    detail::check_reply_config(config.capacity, config.max_outstanding);
    return config;
  }

  static bool retry_after(request_status status) noexcept {
    return status == request_status::full || status == request_status::outstanding_limit;
  }

  bool has_room() const noexcept {
    return cells_.has_free_cell() && requests_.size() < requests_.capacity();
  }

  // Calls try_send until it succeeds, the channel is closed or the deadline passes. Between
  // attempts it spins, yields or sleeps, as the wait policy chooses for each round.
  handle_type send_until(Request&& request, detail::steady_time deadline) noexcept {
    const bool timed = deadline != detail::steady_time::max();
    for (std::uint32_t round = 0;; round += (round != UINT32_MAX) ? 1 : 0) {
      handle_type handle = try_send(std::move(request));  // moves only on success
      if (!retry_after(handle.status())) return handle;
      if (timed && std::chrono::steady_clock::now() >= deadline) {
        return handle_type(request_status::timeout);
      }
      switch (wait_type::step(round)) {
        case wait_step::spin:
          detail::cpu_relax();
          break;
        case wait_step::yield:
          std::this_thread::yield();
          break;
        case wait_step::sleep:
          cells_.sleep_for_room([this] { return has_room() || is_closed(); }, deadline);
          break;
      }
    }
  }

  std::optional<incoming_type> accept(std::optional<envelope> popped) noexcept {
    if (!popped) return std::nullopt;
    cells_.wake_senders();  // the pop made room in the queue
    return incoming_type(std::move(popped->body), cells_, popped->token);
  }

  template <class Handler>
  serve_status serve_one(std::optional<incoming_type> incoming, Handler& handler) {
    if (!incoming) return is_drained() ? serve_status::drained : serve_status::idle;
    try {
      Reply reply = std::invoke(handler, std::as_const(incoming->body()));
      (void)incoming->reply(std::move(reply));  // a late reply is counted by the channel
    } catch (...) {
      (void)incoming->fail(std::current_exception());
    }
    return serve_status::served;
  }

  request_reply_config config_;
  cells_type cells_;
  queue_type requests_;
};

}  // namespace ringmq
