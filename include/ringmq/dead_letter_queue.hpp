// ringmq dead letters: messages that a work queue gave up on, kept for inspection and redrive.
//
//   while (auto letter = queue.dead_letters().try_receive()) {
//     log(letter->id, to_string(letter->reason), letter->detail);
//   }
//   queue.redrive(100);  // or send up to 100 of them back to the source, oldest first
//
// A dead_letter_queue is bounded. When a dead letter arrives and it is full, its overflow
// policy decides which one is dropped: drop_oldest (the default) or drop_newest. Every drop is
// counted in dropped().
//
// Thread safety: every call may run concurrently with any other. Calls take a mutex, because
// dead-lettering is the failure path and not the hot path of a work queue.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ringmq {

// The reason a message became a dead letter.
enum class dead_letter_reason : std::uint8_t {
  max_receives,  // its max_receive_count-th attempt failed (nack or lease expiry)
  rejected,      // a consumer called reject()
  expired,       // it was older than the queue's retention when it was due for delivery
  evicted,       // try_evict_oldest() removed it to make room, as a full subscription does
};

constexpr std::string_view to_string(dead_letter_reason reason) noexcept {
  switch (reason) {
    case dead_letter_reason::max_receives:
      return "max_receives";
    case dead_letter_reason::rejected:
      return "rejected";
    case dead_letter_reason::expired:
      return "expired";
    case dead_letter_reason::evicted:
      return "evicted";
  }
  return "unknown";
}

// A message that left its work queue without being acknowledged, with the reason.
template <class T, class Clock = std::chrono::steady_clock>
struct dead_letter {
  using time_point = typename Clock::time_point;

  T body;
  std::uint64_t id = 0;
  std::uint32_t receive_count = 0;  // deliveries, including ones released without failure
  std::uint32_t failure_count = 0;  // nacks and lease expiries
  dead_letter_reason reason = dead_letter_reason::rejected;
  std::string detail{};  // reject()'s text, the handler's exception message, or a fixed text
  time_point sent_at{};
  time_point dead_lettered_at{};
};

// Overflow policy: a full dead-letter queue discards its oldest dead letter to keep the new one.
struct drop_oldest {};
// Overflow policy: a full dead-letter queue discards the new dead letter.
struct drop_newest {};

template <class P>
concept dead_letter_overflow_policy = std::same_as<P, drop_oldest> || std::same_as<P, drop_newest>;

// Option tag choosing what a work queue's full dead-letter queue drops; default drop_oldest.
template <class Policy>
struct dead_letter_overflow {
  static_assert(dead_letter_overflow_policy<Policy>,
                "ringmq::dead_letter_overflow<Policy>: Policy must be ringmq::drop_oldest or "
                "ringmq::drop_newest");
  using type = Policy;
};

// A bounded FIFO of dead letters. The owning work queue adds to it; users read, inspect and
// redrive from it.
template <class T, class Clock = std::chrono::steady_clock, class Overflow = drop_oldest>
class dead_letter_queue {
 public:
  using value_type = dead_letter<T, Clock>;

  // Creates an empty queue that keeps up to `capacity` dead letters. A capacity of 0 keeps
  // none: every dead letter is dropped and counted. Throws std::length_error for a capacity
  // whose storage size overflows.
  explicit dead_letter_queue(std::size_t capacity) : letters_(checked_capacity(capacity)) {}

  dead_letter_queue(const dead_letter_queue&) = delete;
  dead_letter_queue& operator=(const dead_letter_queue&) = delete;

  // Removes and returns the oldest dead letter, or nothing when the queue is empty.
  std::optional<value_type> try_receive() {
    std::lock_guard lock(mutex_);
    if (size_ == 0) return std::nullopt;
    std::optional<value_type> front = std::move(letters_[head_]);
    pop_front_locked();
    return front;
  }

  // Calls visit(const dead_letter&) on every dead letter, oldest first, under the queue's
  // mutex: visit must not call back into this queue or its work queue.
  template <class Visit>
  void for_each(Visit visit) const {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < size_; ++i) visit(*letters_[index(i)]);
  }

  // Discards every dead letter and returns how many there were. Cleared ones are not counted
  // as dropped.
  std::size_t clear() {
    std::lock_guard lock(mutex_);
    const std::size_t cleared = size_;
    while (size_ != 0) pop_front_locked();
    return cleared;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return size_;
  }
  bool empty() const { return size() == 0; }
  std::size_t capacity() const noexcept { return letters_.size(); }

  // Dead letters discarded because the queue was full, since construction.
  std::uint64_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }

  // Dead letters added since construction, including ones dropped later or at once.
  std::uint64_t added() const {
    std::lock_guard lock(mutex_);
    return added_;
  }

  // Adds a dead letter, applying the overflow policy when full. Returns false when the new
  // letter was dropped. Used by the owning work queue.
  bool add(value_type&& letter) {
    std::lock_guard lock(mutex_);
    ++added_;
    if (letters_.empty()) {
      ++dropped_;
      return false;
    }
    if (size_ == letters_.size()) {
      ++dropped_;
      if constexpr (std::is_same_v<Overflow, drop_newest>) return false;
      pop_front_locked();
    }
    letters_[index(size_)].emplace(std::move(letter));
    ++size_;
    return true;
  }

  // Removes up to `max` dead letters, oldest first, handing each to take(value_type&) while the
  // mutex is held. take moves from the letter and returns true, or returns false and leaves it
  // untouched, which stops the walk. Returns how many were taken. Used by redrive, which must
  // keep the order against concurrent adds.
  template <class Take>
  std::size_t take_front(std::size_t max, Take take) {
    std::lock_guard lock(mutex_);
    std::size_t taken = 0;
    while (taken < max && size_ != 0) {
      if (!take(*letters_[head_])) break;
      pop_front_locked();
      ++taken;
    }
    return taken;
  }

 private:
  std::size_t index(std::size_t offset) const noexcept {
    return (head_ + offset) % letters_.size();
  }

  void pop_front_locked() noexcept {
    letters_[head_].reset();
    head_ = (head_ + 1) % letters_.size();
    --size_;
  }

  mutable std::mutex mutex_;
  static std::size_t checked_capacity(std::size_t capacity) {
    if (capacity > std::vector<std::optional<value_type>>().max_size()) {
      throw std::length_error("ringmq::dead_letter_queue: capacity " + std::to_string(capacity) +
                              " is too large: its storage of " +
                              std::to_string(sizeof(std::optional<value_type>)) +
                              " bytes per dead letter overflows; pass a smaller capacity");
    }
    return capacity;
  }

  std::vector<std::optional<value_type>> letters_;  // a circular buffer; slots [head_, +size_)
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t added_ = 0;
};

}  // namespace ringmq
