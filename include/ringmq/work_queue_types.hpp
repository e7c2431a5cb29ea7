// ringmq work queue values: the config a work_queue is built from, the options of a send and a
// receive, and what the calls return: send_result, receipt, delivery and queue_stats.
// work_queue.hpp includes this header; see it and docs/work_queue.md for the rules.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "ringmq/backoff.hpp"

namespace ringmq {

template <class T, class... Options>
class work_queue;

using message_id = std::uint64_t;

// Numbers of a work queue, fixed at construction. Durations are on the queue's clock.
struct queue_config {
  std::size_t capacity = 1024;  // messages held: visible, delayed and leased
  std::chrono::nanoseconds visibility_timeout = std::chrono::seconds(30);
  std::chrono::nanoseconds max_visibility_timeout = std::chrono::hours(12);  // caps each lease
  std::uint32_t max_receive_count = 0;  // failed attempts before dead-lettering; 0: no limit
  std::chrono::nanoseconds retention = std::chrono::nanoseconds::max();  // max(): keep forever
  std::size_t dead_letter_capacity = 1024;
  backoff_config backoff{};  // numbers for the backoff policy that nack(receipt) uses
};

struct send_options {
  std::chrono::nanoseconds delay{};  // invisible for this long after the send; <= 0: none
};

struct receive_options {
  // The lease length for this receive, capped by max_visibility_timeout; empty: the queue's
  // visibility_timeout. A lease of zero or less ends at once and counts as a failed attempt.
  std::optional<std::chrono::nanoseconds> visibility_timeout;
};

enum class send_status : std::uint8_t {
  ok,
  full,     // capacity messages are visible, delayed or leased
  closed,   // close() was called
  timeout,  // send_for waited its whole timeout for room
};

constexpr std::string_view to_string(send_status status) noexcept {
  switch (status) {
    case send_status::ok:
      return "ok";
    case send_status::full:
      return "full";
    case send_status::closed:
      return "closed";
    case send_status::timeout:
      return "timeout";
  }
  return "unknown";
}

// The outcome of a send: the new message's id, or why there is none.
struct send_result {
  send_status status = send_status::closed;
  message_id id = 0;  // 0 unless status is ok

  bool ok() const noexcept { return status == send_status::ok; }
  explicit operator bool() const noexcept { return ok(); }
};

// Names one delivery of one message. It is valid for ack, nack, release, extend and reject while
// that delivery's lease runs, and for only one of ack, nack, release and reject. Any other
// receipt, including a default-constructed or forged one, makes those calls return false.
class receipt {
 public:
  receipt() = default;

  message_id id() const noexcept { return message_; }
  friend bool operator==(const receipt&, const receipt&) = default;

 private:
  template <class, class...>
  friend class work_queue;

  receipt(std::uint64_t queue, message_id message, std::uint32_t slot,
          std::uint32_t delivery) noexcept
      : queue_(queue), message_(message), slot_(slot), delivery_(delivery) {}

  std::uint64_t queue_ = 0;  // the issuing queue's tag; 0 is never issued
  message_id message_ = 0;
  std::uint32_t slot_ = 0;
  std::uint32_t delivery_ = 0;
};

// A message handed out by a receive, with a copy of its body and the receipt of its lease.
template <class T, class Clock = std::chrono::steady_clock>
class delivery {
 public:
  using time_point = typename Clock::time_point;

  T& body() & noexcept { return body_; }
  const T& body() const& noexcept { return body_; }
  T&& body() && noexcept { return std::move(body_); }

  message_id id() const noexcept { return receipt_.id(); }
  // Hand-outs of this message so far, this one included.
  std::uint32_t receive_count() const noexcept { return receive_count_; }
  // Failed attempts before this one: nacks and lease expiries.
  std::uint32_t failure_count() const noexcept { return failure_count_; }
  const ringmq::receipt& receipt() const noexcept { return receipt_; }
  time_point sent_at() const noexcept { return sent_at_; }

 private:
  template <class, class...>
  friend class work_queue;

  template <class Body>
  delivery(Body&& body, ringmq::receipt r, std::uint32_t receives, std::uint32_t failures,
           time_point sent_at)
      : body_(std::forward<Body>(body)),
        receipt_(r),
        receive_count_(receives),
        failure_count_(failures),
        sent_at_(sent_at) {}

  T body_;
  ringmq::receipt receipt_;
  std::uint32_t receive_count_;
  std::uint32_t failure_count_;
  time_point sent_at_;
};

// A snapshot of a work queue. Counts are exact when no call is in progress.
struct queue_stats {
  std::size_t visible = 0;
  std::size_t in_flight = 0;  // leased
  std::size_t delayed = 0;
  std::size_t dead_letters = 0;                   // in the dead-letter queue now
  std::chrono::nanoseconds oldest_visible_age{};  // 0 when nothing is visible
  std::uint64_t sent = 0;
  std::uint64_t received = 0;     // hand-outs, redeliveries included
  std::uint64_t redelivered = 0;  // hand-outs of a message that was handed out before
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t released = 0;
  std::uint64_t expired_leases = 0;
  std::uint64_t rejected = 0;
  std::uint64_t evicted = 0;  // visible messages dead-lettered by try_evict_oldest()
  std::uint64_t dead_lettered = 0;  // for any reason, including ones dropped at once
  std::uint64_t dropped = 0;        // dead letters discarded because the dead-letter queue was full
  std::uint64_t redriven = 0;
};

}  // namespace ringmq
