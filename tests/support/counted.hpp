// Test element that counts its constructions and destructions.
//
// A container under test must destroy every element it constructs exactly once. counted keeps
// process-wide counters for that check and a liveness mark in every object, so a destructor
// that runs twice or a read of a destroyed or never-constructed object is counted as an error
// instead of passing silently. Tests call counted::reset() first and compare the counters at
// the end; the counters are atomic, so elements may live on several threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>

namespace ringmq_test {

// Thrown by counted's throwing constructor and by a copy of a counted marked throw_on_copy.
struct counted_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Selects counted's constructor that always throws counted_error.
struct throw_on_construct_t {
  explicit throw_on_construct_t() = default;
};
inline constexpr throw_on_construct_t throw_on_construct{};

class counted {
 public:
  explicit counted(std::uint64_t value) noexcept : value_(value) { note_construction(); }

  // Throws counted_error before the object exists, so nothing is counted.
  counted(std::uint64_t, throw_on_construct_t) {
    throw counted_error("counted: constructor failed on purpose (throw_on_construct)");
  }

  // Throws counted_error when other.throw_on_copy is set. The copy does not inherit the mark.
  counted(const counted& other) : value_(other.value()) {
    if (other.throw_on_copy) {
      throw counted_error("counted: copy failed on purpose (throw_on_copy is set)");
    }
    note_construction();
  }

  // Leaves other alive with its value, marked as moved from.
  counted(counted&& other) noexcept : value_(other.value()) {
    other.moved_from_ = true;
    note_construction();
  }

  counted& operator=(const counted& other) noexcept {
    check_alive();
    value_ = other.value();
    moved_from_ = false;
    return *this;
  }

  counted& operator=(counted&& other) noexcept {
    check_alive();
    value_ = other.value();
    moved_from_ = false;
    other.moved_from_ = true;
    return *this;
  }

  ~counted() {
    check_alive();
    state_ = dead_mark;
    live_.fetch_sub(1, std::memory_order_relaxed);
    destructions_.fetch_add(1, std::memory_order_relaxed);
  }

  std::uint64_t value() const noexcept {
    check_alive();
    return value_;
  }

  bool moved_from() const noexcept { return moved_from_; }

  // Makes the next copy constructed from this object throw counted_error.
  bool throw_on_copy = false;

  static void reset() noexcept {
    live_.store(0, std::memory_order_relaxed);
    constructions_.store(0, std::memory_order_relaxed);
    destructions_.store(0, std::memory_order_relaxed);
    errors_.store(0, std::memory_order_relaxed);
  }

  // Objects constructed and not yet destroyed since reset().
  static long live() noexcept { return live_.load(std::memory_order_relaxed); }
  static long constructions() noexcept { return constructions_.load(std::memory_order_relaxed); }
  static long destructions() noexcept { return destructions_.load(std::memory_order_relaxed); }
  // Double destructions and reads of objects that were destroyed or never constructed.
  static long errors() noexcept { return errors_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::uint64_t alive_mark = 0xA11BE0A11BE0A11Bu;
  static constexpr std::uint64_t dead_mark = 0xDEADDEADDEADDEADu;

  void note_construction() noexcept {
    live_.fetch_add(1, std::memory_order_relaxed);
    constructions_.fetch_add(1, std::memory_order_relaxed);
  }

  void check_alive() const noexcept {
    if (state_ != alive_mark) errors_.fetch_add(1, std::memory_order_relaxed);
  }

  // The counters only tally, and every test reads them after joining its threads.
  static inline std::atomic<long> live_{0};
  static inline std::atomic<long> constructions_{0};
  static inline std::atomic<long> destructions_{0};
  static inline std::atomic<long> errors_{0};

  std::uint64_t state_ = alive_mark;
  std::uint64_t value_;
  bool moved_from_ = false;
};

}  // namespace ringmq_test
