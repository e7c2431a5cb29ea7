// A reference model of ringmq::work_queue and a runner that drives a queue and the model through
// the same calls, for the seeded model test (tests/work_queue_model_test.cpp) and the fuzz target
// (tests/fuzz/work_queue_fuzz.cpp). The runner takes every choice from a source of numbers: a
// seeded generator in the model test, the fuzzer's input bytes in the fuzz target. Every result
// is compared, and so are size(), the dead-letter list and its counters after every step,
// stats() as described below, and the dead letters left at the end.
//
// Order. A message that comes back (an expired lease, a delay that passed) joins the tail of
// the visible list when the queue reaps: in a receive and in stats(). A reap that brings back
// several messages at once hands them over in an order that the documentation leaves open. So
// the model keeps the visible list as a sequence of groups. A send, release, nack without delay
// or redrive appends a group of one, and a reap appends one group containing everything it
// brought back. A receive must hand out a message of the first group: the order between groups is
// checked, the order inside a group is not. Dead letters added by one reap form a group the
// same way, and after each step the model reads the queue's dead-letter list and takes the
// order inside each group from it.
//
// The model reaps at the start of every receive. The queue reaps there only when its clock
// reading is at or past the earliest deadline it has recorded. A reap with nothing due changes
// nothing, so the two agree unless the queue loses track of a deadline that has passed, and
// that is what the comparison catches.
//
// Retention adds one more unknown. A receive that finds messages past retention in the first
// group dead-letters the ones that come before the message it hands out, and the model learns
// which ones from the dead-letter list. That works only while every dead letter is kept, so a
// run with retention must keep more dead letters than it can produce, or the model reports a
// test error. For the same reason a batch receive runs only without retention: the list could
// not show which of its receives skipped which messages.
//
// With run_config::stats_every_step, stats() is compared after every step. Because stats()
// reaps, every expired lease is then back before the next call. Without it, stats() is only one
// of the random steps, so that sends and releases can overtake an expired lease that is not
// reaped yet.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringmq/work_queue.hpp>

namespace ringmq_test::work_queue_model {

using ringmq::dead_letter_reason;
using ringmq::message_id;
using ringmq::send_status;
using std::chrono::nanoseconds;

// Times and durations on the manual clock, in nanoseconds.
using nanos = std::int64_t;
constexpr nanos never = std::numeric_limits<nanos>::max();

// at + length for length >= 0, stopping at `never` as the queue's deadlines do.
inline nanos later(nanos at, nanos length) { return at > never - length ? never : at + length; }

using delivery_type = ringmq::delivery<std::string, ringmq::manual_clock>;
using letter_type = ringmq::dead_letter<std::string, ringmq::manual_clock>;

inline nanos to_nanos(ringmq::manual_clock::time_point at) { return at.time_since_epoch().count(); }

// The queue types under test: every pair of backoff and dead-letter overflow policies.
template <class Backoff, class Overflow>
struct queue_kind {
  using queue =
      ringmq::work_queue<std::string, ringmq::clock<ringmq::manual_clock>, ringmq::backoff<Backoff>,
                         ringmq::dead_letter_overflow<Overflow>>;
  static constexpr bool fixed_backoff = std::is_same_v<Backoff, ringmq::fixed_backoff>;
  static constexpr bool drop_newest = std::is_same_v<Overflow, ringmq::drop_newest>;
};

using no_backoff_drop_oldest = queue_kind<ringmq::no_backoff, ringmq::drop_oldest>;
using no_backoff_drop_newest = queue_kind<ringmq::no_backoff, ringmq::drop_newest>;
using fixed_backoff_drop_oldest = queue_kind<ringmq::fixed_backoff, ringmq::drop_oldest>;
using fixed_backoff_drop_newest = queue_kind<ringmq::fixed_backoff, ringmq::drop_newest>;

// The numbers of one run, drawn from its seed or from the fuzzer's input.
struct run_config {
  std::size_t capacity = 1;
  nanos visibility_timeout = 1;
  nanos max_visibility_timeout = 1;
  std::uint32_t max_receive_count = 0;
  nanos retention = never;  // never: no retention
  std::size_t dead_letter_capacity = 0;
  nanos backoff_initial = 0;  // backoff.initial, which only fixed_backoff uses
  nanos nack_delay = 0;       // what nack(r) waits: backoff_initial, or 0 under no_backoff
  bool drop_newest = false;
  bool stats_every_step = false;
  bool ack_batches = false;  // settles include ack_batch over 1 to 3 receipts
  nanos start = 0;           // the manual clock's time at the start
  int steps = 0;
  // Weights of the kinds of step. Each run draws its own mix, so that some runs let visible
  // messages pile up and age while others take them at once.
  std::uint64_t send_weight = 0;
  std::uint64_t receive_weight = 0;
  std::uint64_t settle_weight = 0;
  std::uint64_t advance_weight = 0;

  ringmq::queue_config queue_config() const {
    ringmq::queue_config config;
    config.capacity = capacity;
    config.visibility_timeout = nanoseconds(visibility_timeout);
    config.max_visibility_timeout = nanoseconds(max_visibility_timeout);
    config.max_receive_count = max_receive_count;
    config.retention = nanoseconds(retention);
    config.dead_letter_capacity = dead_letter_capacity;
    config.backoff = {.initial = nanoseconds(backoff_initial),
                      .max = nanoseconds(backoff_initial + 100),
                      .multiplier = 2.0};
    return config;
  }

  std::string describe() const {
    std::ostringstream out;
    out << "capacity " << capacity << ", visibility_timeout " << visibility_timeout
        << " ns, max_visibility_timeout " << max_visibility_timeout << " ns, max_receive_count "
        << max_receive_count << ", retention "
        << (retention == never ? std::string("none") : std::to_string(retention) + " ns")
        << ", dead_letter_capacity " << dead_letter_capacity << ", nack delay " << nack_delay
        << " ns, " << (drop_newest ? "drop_newest" : "drop_oldest") << ", stats "
        << (stats_every_step ? "after every step" : "as a random step") << ", " << steps
        << " steps";
    return out.str();
  }
};

// Events that a passing run should have produced somewhere, so that a model which never reaches
// them cannot pass unnoticed.
struct coverage {
  std::uint64_t reaps_of_several = 0;      // reaps that brought back two or more messages
  std::uint64_t reaps_behind_visible = 0;  // receives that reaped while messages were visible
  std::uint64_t retention_skips = 0;  // receives that met messages past retention, then handed out
  std::uint64_t max_receive_letters = 0;
  std::uint64_t rejected_letters = 0;
  std::uint64_t expired_letters = 0;
  std::uint64_t dropped_letters = 0;
  std::uint64_t redriven = 0;
  std::uint64_t expired_leases = 0;
  std::uint64_t failed_settles = 0;  // settles and extends that returned false
  std::uint64_t full_sends = 0;
  std::uint64_t closed_sends = 0;
};

enum class place { visible, delayed, leased };

struct model_message {
  std::string body;
  nanos sent_at = 0;
  std::uint32_t receive_count = 0;
  std::uint32_t failure_count = 0;
  place where = place::visible;
  nanos due = 0;            // the lease end when leased, the time it becomes visible when delayed
  std::uint64_t lease = 0;  // the model's number for the current lease, when leased
};

struct model_letter {
  std::string body;
  message_id id = 0;
  std::uint32_t receive_count = 0;
  std::uint32_t failure_count = 0;
  dead_letter_reason reason = dead_letter_reason::rejected;
  std::string detail;
  nanos sent_at = 0;
  nanos dead_lettered_at = 0;
};

// Dead letters added together, in an order the model does not know. `count` of `letters` were
// added: all of them, except in a partial group, whose count the model learns from added().
struct letter_group {
  std::vector<model_letter> letters;
  std::size_t count = 0;
  bool partial = false;
};

inline std::string list_ids(const std::vector<message_id>& ids) {
  std::string text = "{";
  for (const message_id id : ids) text += (text.size() > 1 ? ", " : "") + std::to_string(id);
  return text + "}";
}

inline std::string compare_letter(const letter_type& seen, const model_letter& expected) {
  std::ostringstream out;
  out << "dead letter " << seen.id << ": ";
  if (seen.body != expected.body) {
    out << "body '" << seen.body << "', expected '" << expected.body << "'";
  } else if (seen.receive_count != expected.receive_count) {
    out << "receive_count " << seen.receive_count << ", expected " << expected.receive_count;
  } else if (seen.failure_count != expected.failure_count) {
    out << "failure_count " << seen.failure_count << ", expected " << expected.failure_count;
  } else if (seen.reason != expected.reason) {
    out << "reason " << to_string(seen.reason) << ", expected " << to_string(expected.reason);
  } else if (seen.detail != expected.detail) {
    out << "detail '" << seen.detail << "', expected '" << expected.detail << "'";
  } else if (to_nanos(seen.sent_at) != expected.sent_at) {
    out << "sent_at " << to_nanos(seen.sent_at) << ", expected " << expected.sent_at;
  } else if (to_nanos(seen.dead_lettered_at) != expected.dead_lettered_at) {
    out << "dead_lettered_at " << to_nanos(seen.dead_lettered_at) << ", expected "
        << expected.dead_lettered_at;
  } else {
    return {};
  }
  return out.str();
}

// The reference model: one work queue, written from the rules in docs/work_queue.md.
class queue_model {
 public:
  queue_model(const run_config& config, coverage& seen)
      : config_(config), seen_(seen), now_(config.start) {}

  nanos now() const { return now_; }
  void advance(nanos step) { now_ = later(now_, step); }
  void close() { closed_ = true; }
  std::size_t size() const { return messages_.size(); }
  const std::deque<model_letter>& letters() const { return letters_; }

  // The lease length of a receive that requests `requested`, or the queue's default.
  nanos lease_length(std::optional<nanos> requested) const {
    if (!requested) return config_.visibility_timeout;
    return std::clamp(*requested, nanos{0}, config_.max_visibility_timeout);
  }

  send_status send_status_now() const {
    if (closed_) return send_status::closed;
    if (messages_.size() == config_.capacity) return send_status::full;
    return send_status::ok;
  }

  // Adds the message that the queue accepted under `id`.
  std::string send(message_id id, const std::string& body, nanos delay) {
    if (id == 0) return "send returned id 0";
    if (messages_.count(id) != 0) return "send returned id " + std::to_string(id) + ", held twice";
    ++counts_.sent;
    add(id, body);
    if (delay > 0) {
      model_message& message = messages_.at(id);
      message.where = place::delayed;
      message.due = later(now_, delay);
    } else {
      make_visible(id);
    }
    return {};
  }

  // Receives as the queue does, given what the queue handed out (`got`, or nothing).
  std::string receive(nanos lease, const delivery_type* got) {
    const bool visible_before = !visible_.empty();
    const std::size_t groups_before = visible_.size();
    reap();
    if (visible_before && visible_.size() > groups_before) ++seen_.reaps_behind_visible;

    bool skipped = false;  // messages past retention became dead letters on the way
    for (;;) {
      if (visible_.empty()) {
        if (got == nullptr) return {};
        return "receive handed out id " + std::to_string(got->id()) +
               ", but the model has no visible message";
      }
      std::vector<message_id>& group = visible_.front();
      std::vector<message_id> fresh;
      std::vector<message_id> old;
      for (const message_id id : group) {
        (past_retention(messages_.at(id)) ? old : fresh).push_back(id);
      }

      // Every message of the first group is past retention: all become dead letters.
      if (fresh.empty()) {
        letter_group letters;
        for (const message_id id : old) {
          letters.letters.push_back(make_letter(id, dead_letter_reason::expired, retention_text));
          messages_.erase(id);
          ++seen_.expired_letters;
        }
        letters.count = letters.letters.size();
        arriving_.push_back(std::move(letters));
        visible_.pop_front();
        skipped = true;
        continue;
      }

      if (got == nullptr) return "receive handed out nothing; expected one of " + list_ids(fresh);
      const message_id id = got->id();
      if (std::find(fresh.begin(), fresh.end(), id) == fresh.end()) {
        return "receive handed out id " + std::to_string(id) + "; expected one of " +
               list_ids(fresh) + (old.empty() ? "" : ", past retention " + list_ids(old));
      }
      model_message& message = messages_.at(id);
      std::string mismatch = compare_delivery(*got, id, message);
      if (!mismatch.empty()) return mismatch;

      // The messages past retention that the queue met before `id` became dead letters. The
      // dead-letter list shows which ones.
      if (!old.empty()) {
        letter_group letters;
        for (const message_id skipped : old) {
          letters.letters.push_back(
              make_letter(skipped, dead_letter_reason::expired, retention_text));
        }
        letters.partial = true;
        arriving_.push_back(std::move(letters));
      }
      if (skipped || !old.empty()) ++seen_.retention_skips;
      group.erase(std::find(group.begin(), group.end(), id));
      if (group.empty()) visible_.pop_front();

      ++message.receive_count;
      ++counts_.received;
      if (message.receive_count > 1) ++counts_.redelivered;
      message.where = place::leased;
      message.due = later(now_, lease);
      message.lease = ++last_lease_;
      return {};
    }
  }

  std::uint64_t last_lease() const { return last_lease_; }

  // Whether `lease` is the current lease of a message, ended or not.
  bool is_current(std::uint64_t lease) const {
    return lease != 0 && std::any_of(messages_.begin(), messages_.end(), [&](const auto& entry) {
             return entry.second.where == place::leased && entry.second.lease == lease;
           });
  }

  bool ack(std::uint64_t lease) {
    const std::optional<message_id> id = running(lease);
    if (!id) return false;
    messages_.erase(*id);
    ++counts_.acked;
    return true;
  }

  // nack(r), nack(r, delay) and nack(r, text): `delay` empty means the backoff policy's.
  bool nack(std::uint64_t lease, std::optional<nanos> delay, std::string_view text) {
    const std::optional<message_id> id = running(lease);
    if (!id) return false;
    ++counts_.nacked;
    fail(*id, delay ? *delay : config_.nack_delay, "nacked", text);
    return true;
  }

  bool release(std::uint64_t lease) {
    const std::optional<message_id> id = running(lease);
    if (!id) return false;
    ++counts_.released;
    requeue(*id, 0);
    return true;
  }

  bool extend(std::uint64_t lease, nanos timeout) {
    const nanos length = std::min(timeout, config_.max_visibility_timeout);
    if (length <= 0) return release(lease);
    const std::optional<message_id> id = running(lease);
    if (!id) return false;
    messages_.at(*id).due = later(now_, length);
    return true;
  }

  bool reject(std::uint64_t lease, std::string_view text) {
    const std::optional<message_id> id = running(lease);
    if (!id) return false;
    ++counts_.rejected;
    ++seen_.rejected_letters;
    dead_letter(*id, dead_letter_reason::rejected, std::string(text));
    return true;
  }

  std::size_t redrive(std::size_t max) {
    if (closed_) return 0;
    std::size_t moved = 0;
    while (moved < max && !letters_.empty() && messages_.size() < config_.capacity) {
      const model_letter letter = letters_.front();
      letters_.pop_front();
      add(letter.id, letter.body);
      make_visible(letter.id);
      ++moved;
    }
    counts_.redriven += moved;
    seen_.redriven += moved;
    return moved;
  }

  std::optional<model_letter> take_letter() {
    if (letters_.empty()) return std::nullopt;
    model_letter front = letters_.front();
    letters_.pop_front();
    return front;
  }

  std::size_t clear_letters() {
    const std::size_t cleared = letters_.size();
    letters_.clear();
    return cleared;
  }

  // stats() reaps before it counts; compare_stats after match_dead_letters reads the result.
  void reap_for_stats() { reap(); }

  std::string compare_stats(const ringmq::queue_stats& seen) const {
    ringmq::queue_stats expected;
    nanos oldest = never;
    for (const auto& [id, message] : messages_) {
      switch (message.where) {
        case place::visible:
          ++expected.visible;
          oldest = std::min(oldest, message.sent_at);
          break;
        case place::leased:
          ++expected.in_flight;
          break;
        case place::delayed:
          ++expected.delayed;
          break;
      }
    }
    if (oldest != never && now_ > oldest) expected.oldest_visible_age = nanoseconds(now_ - oldest);
    expected.dead_letters = letters_.size();
    expected.dead_lettered = added_;
    expected.dropped = dropped_;
    expected.sent = counts_.sent;
    expected.received = counts_.received;
    expected.redelivered = counts_.redelivered;
    expected.acked = counts_.acked;
    expected.nacked = counts_.nacked;
    expected.released = counts_.released;
    expected.expired_leases = counts_.expired_leases;
    expected.rejected = counts_.rejected;
    expected.redriven = counts_.redriven;

    std::ostringstream out;
    const auto field = [&](const char* name, auto got, auto want) {
      if (got != want) out << "stats()." << name << " " << got << ", expected " << want << "; ";
    };
    field("visible", seen.visible, expected.visible);
    field("in_flight", seen.in_flight, expected.in_flight);
    field("delayed", seen.delayed, expected.delayed);
    field("dead_letters", seen.dead_letters, expected.dead_letters);
    field("oldest_visible_age", seen.oldest_visible_age.count(),
          expected.oldest_visible_age.count());
    field("sent", seen.sent, expected.sent);
    field("received", seen.received, expected.received);
    field("redelivered", seen.redelivered, expected.redelivered);
    field("acked", seen.acked, expected.acked);
    field("nacked", seen.nacked, expected.nacked);
    field("released", seen.released, expected.released);
    field("expired_leases", seen.expired_leases, expected.expired_leases);
    field("rejected", seen.rejected, expected.rejected);
    field("dead_lettered", seen.dead_lettered, expected.dead_lettered);
    field("dropped", seen.dropped, expected.dropped);
    field("redriven", seen.redriven, expected.redriven);
    return out.str();
  }

  // Matches the dead letters that arrived since the last call against the queue's list
  // (`observed`, oldest first) and its added() and dropped() counters, then takes the order
  // inside each group, and which messages a partial group contains, from the queue.
  std::string match_dead_letters(const std::vector<letter_type>& observed, std::uint64_t added,
                                 std::uint64_t dropped) {
    std::uint64_t known = 0;
    letter_group* partial = nullptr;
    for (letter_group& group : arriving_) {
      if (group.partial) {
        partial = &group;
      } else {
        known += group.count;
      }
    }
    if (added < added_) return "dead_letters().added() went down to " + std::to_string(added);
    const std::uint64_t arrived = added - added_;
    if (partial != nullptr) {
      if (arrived < known || arrived - known > partial->letters.size()) {
        return "dead_letters().added() grew by " + std::to_string(arrived) + "; expected " +
               std::to_string(known) + " to " + std::to_string(known + partial->letters.size());
      }
      partial->count = static_cast<std::size_t>(arrived - known);
    } else if (arrived != known) {
      return "dead_letters().added() grew by " + std::to_string(arrived) + "; expected " +
             std::to_string(known);
    }

    // Flatten the old letters and the new groups into one sequence. The queue keeps the window
    // [first, first + kept_count) of it.
    const std::uint64_t total = letters_.size() + arrived;
    const std::uint64_t kept_count = std::min<std::uint64_t>(config_.dead_letter_capacity, total);
    const std::uint64_t first = config_.drop_newest ? 0 : total - kept_count;
    if (dropped != dropped_ + (total - kept_count)) {
      return "dead_letters().dropped() is " + std::to_string(dropped) + "; expected " +
             std::to_string(dropped_ + (total - kept_count));
    }
    if (observed.size() != kept_count) {
      return "the dead-letter list contains " + std::to_string(observed.size()) +
             " letters; expected " + std::to_string(kept_count);
    }

    std::vector<letter_group> sequence;
    for (const model_letter& letter : letters_) sequence.push_back({{letter}, 1, false});
    for (letter_group& group : arriving_) sequence.push_back(std::move(group));
    arriving_.clear();

    std::deque<model_letter> result;
    std::vector<message_id> partial_taken;
    std::uint64_t position = 0;
    std::size_t next = 0;
    for (const letter_group& group : sequence) {
      const std::uint64_t begin = std::max(position, first);
      const std::uint64_t end = std::min(position + group.count, first + kept_count);
      position += group.count;
      const std::uint64_t in_window = begin < end ? end - begin : 0;
      if (group.partial && in_window != group.count) {
        return "test error: some dead letters of a receive past retention were dropped, so the "
               "model cannot tell which messages are still visible";
      }
      std::vector<bool> used(group.letters.size(), false);
      for (std::uint64_t i = 0; i < in_window; ++i) {
        const letter_type& seen = observed[next++];
        std::size_t match = 0;
        while (match < group.letters.size() &&
               (used[match] || group.letters[match].id != seen.id)) {
          ++match;
        }
        if (match == group.letters.size()) {
          std::vector<message_id> candidates;
          for (std::size_t j = 0; j < group.letters.size(); ++j) {
            if (!used[j]) candidates.push_back(group.letters[j].id);
          }
          return "dead letter " + std::to_string(next - 1) + " of the list has id " +
                 std::to_string(seen.id) + "; expected one of " + list_ids(candidates);
        }
        std::string mismatch = compare_letter(seen, group.letters[match]);
        if (!mismatch.empty()) return mismatch;
        used[match] = true;
        result.push_back(group.letters[match]);
        if (group.partial) partial_taken.push_back(seen.id);
      }
    }

    letters_ = std::move(result);
    added_ = added;
    dropped_ = dropped;
    seen_.dropped_letters = std::max(seen_.dropped_letters, dropped);
    for (const message_id id : partial_taken) {
      messages_.erase(id);
      for (std::vector<message_id>& group : visible_) {
        group.erase(std::remove(group.begin(), group.end(), id), group.end());
      }
    }
    visible_.erase(std::remove_if(visible_.begin(), visible_.end(),
                                  [](const std::vector<message_id>& g) { return g.empty(); }),
                   visible_.end());
    return {};
  }

 private:
  static constexpr const char* retention_text = "older than the retention period";

  struct counters {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t redelivered = 0;
    std::uint64_t acked = 0;
    std::uint64_t nacked = 0;
    std::uint64_t released = 0;
    std::uint64_t expired_leases = 0;
    std::uint64_t rejected = 0;
    std::uint64_t redriven = 0;
  };

  void add(message_id id, const std::string& body) {
    model_message message;
    message.body = body;
    message.sent_at = now_;
    messages_.emplace(id, std::move(message));
  }

  std::string compare_delivery(const delivery_type& got, message_id id,
                               const model_message& message) const {
    std::ostringstream out;
    out << "delivery of id " << id << ": ";
    if (got.receipt().id() != id) {
      out << "receipt().id() " << got.receipt().id();
    } else if (got.body() != message.body) {
      out << "body '" << got.body() << "', expected '" << message.body << "'";
    } else if (got.receive_count() != message.receive_count + 1) {
      out << "receive_count " << got.receive_count() << ", expected " << message.receive_count + 1;
    } else if (got.failure_count() != message.failure_count) {
      out << "failure_count " << got.failure_count() << ", expected " << message.failure_count;
    } else if (to_nanos(got.sent_at()) != message.sent_at) {
      out << "sent_at " << to_nanos(got.sent_at()) << ", expected " << message.sent_at;
    } else {
      return {};
    }
    return out.str();
  }

  bool past_retention(const model_message& message) const {
    return config_.retention != never && now_ - message.sent_at >= config_.retention;
  }

  // The message whose lease `lease` is, while that lease runs.
  std::optional<message_id> running(std::uint64_t lease) const {
    if (lease == 0) return std::nullopt;
    for (const auto& [id, message] : messages_) {
      if (message.where == place::leased && message.lease == lease) {
        if (now_ < message.due) return id;
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // Hands every expired lease and due delayed message back, as one group.
  void reap() {
    std::vector<message_id> due;
    for (const auto& [id, message] : messages_) {
      if (message.where != place::visible && message.due <= now_) due.push_back(id);
    }
    reaping_ = true;
    for (const message_id id : due) {
      if (messages_.at(id).where == place::leased) {
        ++counts_.expired_leases;
        ++seen_.expired_leases;
        fail(id, 0, "lease expired", {});
      } else {
        requeue(id, 0);
      }
    }
    reaping_ = false;
    if (reaped_visible_.size() > 1) ++seen_.reaps_of_several;
    if (!reaped_visible_.empty()) visible_.push_back(std::move(reaped_visible_));
    if (!reaped_letters_.empty()) {
      const std::size_t count = reaped_letters_.size();
      arriving_.push_back({std::move(reaped_letters_), count, false});
    }
    reaped_visible_.clear();
    reaped_letters_.clear();
  }

  // A failed attempt: a dead letter at max_receive_count, else back after `delay`.
  void fail(message_id id, nanos delay, std::string_view cause, std::string_view text) {
    model_message& message = messages_.at(id);
    ++message.failure_count;
    if (config_.max_receive_count != 0 && message.failure_count >= config_.max_receive_count) {
      std::string detail(text);
      if (detail.empty()) {
        detail = std::string(cause) + " on attempt " + std::to_string(message.failure_count) +
                 " of max_receive_count " + std::to_string(config_.max_receive_count);
      }
      ++seen_.max_receive_letters;
      dead_letter(id, dead_letter_reason::max_receives, std::move(detail));
      return;
    }
    requeue(id, delay);
  }

  void requeue(message_id id, nanos delay) {
    model_message& message = messages_.at(id);
    if (past_retention(message)) {
      ++seen_.expired_letters;
      dead_letter(id, dead_letter_reason::expired, retention_text);
    } else if (delay > 0) {
      message.where = place::delayed;
      message.due = later(now_, delay);
    } else {
      make_visible(id);
    }
  }

  void make_visible(message_id id) {
    messages_.at(id).where = place::visible;
    if (reaping_) {
      reaped_visible_.push_back(id);
    } else {
      visible_.push_back({id});
    }
  }

  model_letter make_letter(message_id id, dead_letter_reason reason, std::string detail) const {
    const model_message& message = messages_.at(id);
    return {message.body, id,     message.receive_count, message.failure_count,
            reason,       detail, message.sent_at,       now_};
  }

  void dead_letter(message_id id, dead_letter_reason reason, std::string detail) {
    model_letter letter = make_letter(id, reason, std::move(detail));
    messages_.erase(id);
    if (reaping_) {
      reaped_letters_.push_back(std::move(letter));
    } else {
      arriving_.push_back({{std::move(letter)}, 1, false});
    }
  }

  run_config config_;
  coverage& seen_;
  nanos now_;
  bool closed_ = false;
  std::map<message_id, model_message> messages_;  // every held message
  std::deque<std::vector<message_id>> visible_;   // groups, oldest first; see the file comment
  std::deque<model_letter> letters_;              // the dead-letter list, oldest first
  std::vector<letter_group> arriving_;            // dead letters not yet matched, in order
  std::uint64_t added_ = 0;
  std::uint64_t dropped_ = 0;
  counters counts_;
  std::uint64_t last_lease_ = 0;
  bool reaping_ = false;
  std::vector<message_id> reaped_visible_;
  std::vector<model_letter> reaped_letters_;
};

// A receipt that the test may settle with: the model's lease number, or 0 for a receipt that
// the model never issued (another queue's, a default-constructed one).
struct issued_receipt {
  ringmq::receipt receipt;
  std::uint64_t lease = 0;
};

// A source of the runner's choices: draw(bound) returns a number below bound (bound >= 1). Once
// exhausted() returns true, the runner stops after the current step.
template <class S>
concept choice_source = requires(S& source, std::uint64_t bound) {
  { source.draw(bound) } -> std::convertible_to<std::uint64_t>;
  { source.exhausted() } -> std::convertible_to<bool>;
};

// Runs one sequence of up to config.steps steps against a queue and the model, taking every
// choice from `source`. `name` identifies the run in a mismatch report (a seed, an input).
template <class Kind, choice_source Source>
class sequence_runner {
 public:
  using queue_type = typename Kind::queue;

  sequence_runner(const run_config& config, Source& source, std::string name, coverage& seen)
      : name_(std::move(name)),
        config_(config),
        source_(source),
        clock_(ringmq::manual_clock::time_point(nanoseconds(config_.start))),
        queue_(config_.queue_config(), clock_),
        other_({.capacity = 1, .visibility_timeout = std::chrono::hours(1)}, clock_),
        model_(config_, seen),
        seen_(seen) {}

  // Returns a description of the first mismatch, or an empty string.
  std::string run() {
    // A receipt from another queue, for slot 0 and delivery 1 like the first receipts here.
    if (!other_.try_send(std::string("foreign"))) return report(-1, "other queue: send failed");
    std::optional<delivery_type> foreign = other_.try_receive();
    if (!foreign) return report(-1, "other queue: receive failed");
    foreign_ = foreign->receipt();

    int step = 0;
    for (; step < config_.steps && !source_.exhausted(); ++step) {
      std::string mismatch = run_step();
      if (mismatch.empty()) mismatch = check_after_step(config_.stats_every_step);
      if (!mismatch.empty()) return report(step, mismatch);
    }

    // The end: stats(), then every dead letter in order.
    std::string mismatch = check_after_step(true);
    if (!mismatch.empty()) return report(step, mismatch);
    while (std::optional<letter_type> letter = queue_.dead_letters().try_receive()) {
      const std::optional<model_letter> expected = model_.take_letter();
      if (!expected) return report(step, "extra dead letter " + std::to_string(letter->id));
      mismatch = compare_letter(*letter, *expected);
      if (!mismatch.empty()) return report(step, "at the end, " + mismatch);
    }
    if (!model_.letters().empty()) return report(step, "dead letters missing at the end");
    return {};
  }

 private:
  std::uint64_t draw(std::uint64_t bound) { return source_.draw(bound); }
  nanos draw_between(nanos low, nanos high) {
    return low + static_cast<nanos>(draw(static_cast<std::uint64_t>(high - low + 1)));
  }

  std::string report(int step, const std::string& mismatch) const {
    std::ostringstream out;
    out << name_ << ", step " << step << ": " << mismatch << "\nconfig: " << config_.describe()
        << "\nsteps so far (last 40):\n";
    const std::size_t from = log_.size() > 40 ? log_.size() - 40 : 0;
    for (std::size_t i = from; i < log_.size(); ++i) out << "  " << log_[i] << "\n";
    return out.str();
  }

  void note(const std::string& text) {
    log_.push_back("[" + std::to_string(log_.size()) + "] t=" + std::to_string(model_.now()) + " " +
                   text);
  }

  std::string run_step() {
    // Fixed weights, and the run's own for sends, receives, settles and clock steps.
    constexpr std::uint64_t close_weight = 3;
    constexpr std::uint64_t redrive_weight = 40;
    constexpr std::uint64_t stats_weight = 30;
    constexpr std::uint64_t take_letter_weight = 30;
    constexpr std::uint64_t clear_letters_weight = 10;
    std::uint64_t roll = draw(close_weight + config_.send_weight + config_.receive_weight +
                              config_.settle_weight + redrive_weight + config_.advance_weight +
                              stats_weight + take_letter_weight + clear_letters_weight);
    const auto next_is = [&roll](std::uint64_t weight) {
      if (roll < weight) return true;
      roll -= weight;
      return false;
    };
    if (next_is(close_weight)) return do_close();
    if (next_is(config_.send_weight)) return do_send();
    if (next_is(config_.receive_weight)) return do_receive();
    if (next_is(config_.settle_weight)) return do_settle();
    if (next_is(redrive_weight)) return do_redrive();
    if (next_is(config_.advance_weight)) return do_advance(clock_step());
    if (next_is(stats_weight)) return do_stats();
    if (next_is(take_letter_weight)) return do_take_letter();
    return do_clear_letters();
  }

  // A clock step: mostly small, sometimes as long as a lease, sometimes far past every lease,
  // delay and retention.
  nanos clock_step() {
    const std::uint64_t kind = draw(10);
    if (kind < 5) return draw_between(0, 3);
    if (kind < 8) return draw_between(4, 25);
    return big_step();
  }

  nanos big_step() {
    const std::uint64_t kind = draw(400);
    if (kind == 0) return never;              // the clock stops at its maximum
    if (kind < 10) return 3'600'000'000'000;  // an hour
    return draw_between(20, 300);
  }

  std::string do_close() {
    note("close()");
    queue_.close();
    model_.close();
    return {};
  }

  std::string do_send() {
    const std::string body =
        "message " + std::to_string(next_body_++) +
        (draw(2) == 0 ? " with a body too long for the short-string buffer" : "");
    nanos delay = 0;
    if (draw(3) == 0) delay = draw(20) == 0 ? never : draw_between(-2, 60);
    if (delay > 0 && draw(2) == 0) {
      // Aim at a shared time, so that messages sent at different times come back in one reap
      // and then pass retention at different times.
      if (rendezvous_ <= model_.now()) rendezvous_ = later(model_.now(), draw_between(10, 60));
      delay = rendezvous_ - model_.now();
    }
    const ringmq::send_options options{.delay = nanoseconds(delay)};
    const std::uint64_t call = draw(10);
    ringmq::send_result result;
    std::string argument = body;
    if (call == 0) {
      result = queue_.send_for(std::move(argument), std::chrono::nanoseconds(0), options);
    } else if (call == 1) {
      result = queue_.try_send(argument, options);
    } else {
      result = queue_.try_send(std::move(argument), options);
    }
    note("send '" + body + "' delay " + std::to_string(delay) + " -> " +
         std::string(to_string(result.status)) + " id " + std::to_string(result.id));

    send_status expected = model_.send_status_now();
    if (call == 0 && expected == send_status::full) expected = send_status::timeout;
    if (result.status != expected) {
      return "send status " + std::string(to_string(result.status)) + ", expected " +
             std::string(to_string(expected));
    }
    if (!result.ok()) {
      if (result.id != 0) return "failed send returned id " + std::to_string(result.id);
      if (argument != body) return "failed send changed its argument to '" + argument + "'";
      if (result.status == send_status::closed) {
        ++seen_.closed_sends;
      } else {
        ++seen_.full_sends;
      }
      return {};
    }
    if (!sent_ids_.insert(result.id).second) {
      return "send returned id " + std::to_string(result.id) + " a second time";
    }
    return model_.send(result.id, body, delay);
  }

  std::string do_receive() {
    std::optional<nanos> requested;
    if (draw(2) == 0) {
      requested = draw(6) == 0 ? 0 : draw_between(-2, config_.max_visibility_timeout + 5);
      // Sometimes aim the lease end at the shared time too, so that leases of messages sent
      // at different times end in one reap.
      if (draw(2) == 0 && rendezvous_ > model_.now()) requested = rendezvous_ - model_.now();
    }
    ringmq::receive_options options;
    if (requested) options.visibility_timeout = nanoseconds(*requested);
    const nanos lease = model_.lease_length(requested);
    const std::string lease_text = requested ? std::to_string(*requested) : std::string("default");

    // A batch is several receives in one call, so the dead-letter list could not show which
    // messages past retention each of them skipped. Runs with retention receive one at a time.
    const std::uint64_t call = draw(4);
    if (call == 0 && config_.retention == never) {
      const std::size_t max = draw(4);
      std::vector<delivery_type> out;
      const std::size_t count = queue_.try_receive_batch(std::back_inserter(out), max, options);
      std::string ids;
      for (const delivery_type& got : out) ids += " " + std::to_string(got.id());
      note("try_receive_batch(max " + std::to_string(max) + ", lease " + lease_text + ") ->" + ids);
      if (count != out.size()) return "try_receive_batch returned a count unlike its output";
      for (const delivery_type& got : out) {
        std::string mismatch = model_.receive(lease, &got);
        if (!mismatch.empty()) return mismatch;
        remember(got.receipt(), model_.last_lease());
      }
      if (count < max) return model_.receive(lease, nullptr);
      return {};
    }

    std::optional<delivery_type> got;
    if (call == 1) {
      got = queue_.receive_for(std::chrono::nanoseconds(0), options);
    } else {
      got = queue_.try_receive(options);
    }
    note(std::string(call == 1 ? "receive_for(0, " : "try_receive(") + "lease " + lease_text +
         ") -> " + (got ? std::to_string(got->id()) : std::string("nothing")));
    std::string mismatch = model_.receive(lease, got ? &*got : nullptr);
    if (!mismatch.empty()) return mismatch;
    if (got) remember(got->receipt(), model_.last_lease());
    return {};
  }

  void remember(const ringmq::receipt& receipt, std::uint64_t lease) {
    receipts_.push_back({receipt, lease});
    if (receipts_.size() > 48) receipts_.erase(receipts_.begin());
  }

  // Picks a receipt: mostly one of a current lease, else any earlier one, another queue's or a
  // default-constructed one.
  issued_receipt pick_receipt() {
    const std::uint64_t kind = draw(20);
    if (kind < 15) {
      std::vector<issued_receipt> current;
      for (const issued_receipt& r : receipts_) {
        if (model_.is_current(r.lease)) current.push_back(r);
      }
      if (!current.empty()) return current[draw(current.size())];
    }
    if (kind < 18 && !receipts_.empty()) return receipts_[draw(receipts_.size())];
    if (kind == 18) return {foreign_, 0};
    return {ringmq::receipt{}, 0};
  }

  std::string do_settle() {
    const issued_receipt picked = pick_receipt();
    const ringmq::receipt& r = picked.receipt;
    const std::string receipt_text =
        "lease " + std::to_string(picked.lease) + " of id " + std::to_string(r.id());
    bool got = false;
    bool expected = false;
    std::string call;
    switch (draw(config_.ack_batches ? 10 : 9)) {
      case 0:
      case 1:
        got = queue_.ack(r);
        expected = model_.ack(picked.lease);
        call = "ack";
        break;
      case 2: {
        got = queue_.nack(r);
        expected = model_.nack(picked.lease, std::nullopt, {});
        call = "nack";
        break;
      }
      case 3: {
        const nanos delay = draw(8) == 0 ? never : draw_between(-2, 20);
        got = queue_.nack(r, nanoseconds(delay));
        expected = model_.nack(picked.lease, delay, {});
        call = "nack(delay " + std::to_string(delay) + ")";
        break;
      }
      case 4: {
        const std::string text = draw(4) == 0 ? "" : "handler failed: " + std::to_string(draw(100));
        got = queue_.nack(r, std::string_view(text));
        expected = model_.nack(picked.lease, std::nullopt, text);
        call = "nack('" + text + "')";
        break;
      }
      case 5:
        got = queue_.release(r);
        expected = model_.release(picked.lease);
        call = "release";
        break;
      case 6:
      case 7: {
        const nanos timeout = draw_between(-2, config_.max_visibility_timeout + 10);
        got = queue_.extend(r, nanoseconds(timeout));
        expected = model_.extend(picked.lease, timeout);
        call = "extend(" + std::to_string(timeout) + ")";
        break;
      }
      case 8: {
        const std::string text = draw(3) == 0 ? "" : "bad input " + std::to_string(draw(100));
        got = queue_.reject(r, text);
        expected = model_.reject(picked.lease, text);
        call = "reject('" + text + "')";
        break;
      }
      default:
        return do_ack_batch(picked);
    }
    note(call + " " + receipt_text + " -> " + (got ? "true" : "false"));
    if (!got) ++seen_.failed_settles;
    if (got != expected) {
      return call + " with " + receipt_text + " returned " + (got ? "true" : "false") +
             ", expected " + (expected ? "true" : "false");
    }
    return {};
  }

  // ack_batch over `first` and up to two more receipts, which may repeat one another.
  std::string do_ack_batch(const issued_receipt& first) {
    std::vector<issued_receipt> picked{first};
    for (std::uint64_t more = draw(3); more > 0; --more) picked.push_back(pick_receipt());
    std::vector<ringmq::receipt> receipts;
    std::string leases;
    for (const issued_receipt& r : picked) {
      receipts.push_back(r.receipt);
      leases += " " + std::to_string(r.lease);
    }
    const std::size_t acked = queue_.ack_batch(receipts.begin(), receipts.end());
    note("ack_batch(leases" + leases + ") -> " + std::to_string(acked));

    std::size_t expected = 0;
    for (const issued_receipt& r : picked) expected += model_.ack(r.lease) ? 1 : 0;
    if (acked < receipts.size()) ++seen_.failed_settles;
    if (acked != expected) {
      return "ack_batch(leases" + leases + ") acked " + std::to_string(acked) + ", expected " +
             std::to_string(expected);
    }
    return {};
  }

  std::string do_redrive() {
    const std::size_t max = draw(4);
    const std::size_t moved = queue_.redrive(max);
    note("redrive(" + std::to_string(max) + ") -> " + std::to_string(moved));
    const std::size_t expected = model_.redrive(max);
    if (moved != expected) {
      return "redrive moved " + std::to_string(moved) + ", expected " + std::to_string(expected);
    }
    return {};
  }

  std::string do_advance(nanos step) {
    clock_.advance(nanoseconds(step));
    model_.advance(step);
    note("advance(" + std::to_string(step) + ")");
    if (to_nanos(clock_.now()) != model_.now()) return "manual_clock disagrees with the model";
    return {};
  }

  std::string do_stats() {
    note("stats()");
    return compare_stats();
  }

  std::string do_take_letter() {
    const std::optional<letter_type> letter = queue_.dead_letters().try_receive();
    note("dead_letters().try_receive() -> " +
         (letter ? std::to_string(letter->id) : std::string("nothing")));
    const std::optional<model_letter> expected = model_.take_letter();
    if (letter.has_value() != expected.has_value()) {
      return "dead_letters().try_receive() returned " +
             std::string(letter ? "a letter" : "nothing") + ", expected " +
             (expected ? "letter " + std::to_string(expected->id) : std::string("nothing"));
    }
    return letter ? compare_letter(*letter, *expected) : std::string();
  }

  std::string do_clear_letters() {
    const std::size_t cleared = queue_.dead_letters().clear();
    note("dead_letters().clear() -> " + std::to_string(cleared));
    const std::size_t expected = model_.clear_letters();
    if (cleared != expected) {
      return "dead_letters().clear() returned " + std::to_string(cleared) + ", expected " +
             std::to_string(expected);
    }
    return {};
  }

  std::string match_letters() {
    std::vector<letter_type> observed;
    queue_.dead_letters().for_each([&](const letter_type& letter) { observed.push_back(letter); });
    return model_.match_dead_letters(observed, queue_.dead_letters().added(),
                                     queue_.dead_letters().dropped());
  }

  std::string compare_stats() {
    const ringmq::queue_stats stats = queue_.stats();
    model_.reap_for_stats();
    std::string mismatch = match_letters();
    if (!mismatch.empty()) return mismatch;
    return model_.compare_stats(stats);
  }

  // Checks size() and the dead letters after a step, and stats() when `with_stats`.
  std::string check_after_step(bool with_stats) {
    std::string mismatch = match_letters();
    if (!mismatch.empty()) return mismatch;
    if (queue_.size() != model_.size()) {
      return "size() " + std::to_string(queue_.size()) + ", expected " +
             std::to_string(model_.size());
    }
    if (queue_.dead_letters().size() != model_.letters().size()) {
      return "dead_letters().size() " + std::to_string(queue_.dead_letters().size()) +
             ", expected " + std::to_string(model_.letters().size());
    }
    if (with_stats) return compare_stats();
    return {};
  }

  std::string name_;
  run_config config_;
  Source& source_;
  ringmq::manual_clock clock_;
  queue_type queue_;
  queue_type other_;  // issues the foreign receipt
  queue_model model_;
  coverage& seen_;
  ringmq::receipt foreign_;
  std::vector<issued_receipt> receipts_;
  std::set<message_id> sent_ids_;
  std::vector<std::string> log_;
  std::uint64_t next_body_ = 0;
  nanos rendezvous_ = 0;  // when the delayed messages aimed at it become visible together
};

}  // namespace ringmq_test::work_queue_model
