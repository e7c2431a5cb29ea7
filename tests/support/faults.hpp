// Fault injection: a countdown shared by every fault point, an element type whose
// constructors and copy assignment are fault points, and a countdown of allocations.
//
// A test arms the countdown with n, runs a scenario, and the n-th fault point reached from then
// on throws injected_fault. Sweeping n = 1, 2, ... until a run reaches no n-th point hits every
// call site of the scenario once. faulty keeps a counted inside, so counted::live() and
// counted::errors() show leaks and double destructions of faulty elements too.
//
// allocation_faults does the same for memory: the n-th call of the global operator new on the
// arming thread throws std::bad_alloc. tests/fault_allocation_test.cpp replaces operator new
// and operator delete for the test executable and calls it. Unarmed, it only counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "support/counted.hpp"

namespace ringmq_test {

// Thrown by a fault point when the countdown reaches it.
struct injected_fault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The countdown of fault points. It is process-wide, so that copies made inside the library
// count, and atomic, because the workers of a pool copy bodies on their own threads.
class fault_countdown {
 public:
  // Restarts the count, so that the n-th fault point from now throws, once. With n = 0 none does.
  static void arm(long n) noexcept {
    hits_.store(0, std::memory_order_relaxed);
    fired_.store(false, std::memory_order_relaxed);
    fire_at_.store(n, std::memory_order_relaxed);
  }

  static void disarm() noexcept { fire_at_.store(0, std::memory_order_relaxed); }

  // Fault points reached since arm().
  static long hits() noexcept { return hits_.load(std::memory_order_relaxed); }

  // Whether a fault point threw since arm().
  static bool fired() noexcept { return fired_.load(std::memory_order_relaxed); }

  // A fault point: throws injected_fault when it is the armed one.
  static void hit() {
    const long count = hits_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (count == fire_at_.load(std::memory_order_relaxed)) {
      fired_.store(true, std::memory_order_relaxed);
      throw injected_fault("fault injected at fault point " + std::to_string(count));
    }
  }

 private:
  static inline std::atomic<long> hits_{0};
  static inline std::atomic<long> fire_at_{0};
  static inline std::atomic<bool> fired_{false};
};

// Arms the countdown for one scope, so that a failed check cannot leave it armed for the next
// test.
class armed_fault {
 public:
  explicit armed_fault(long n) noexcept { fault_countdown::arm(n); }
  armed_fault(const armed_fault&) = delete;
  armed_fault& operator=(const armed_fault&) = delete;
  ~armed_fault() { fault_countdown::disarm(); }
};

// An element whose value constructor, copy constructor and copy assignment are fault points.
// Moves and the destructor never throw, as every ringmq container requires.
class faulty {
 public:
  explicit faulty(std::uint64_t value) : tally_(checked(value)) {}
  faulty(const faulty& other) : tally_(checked(other.tally_)) {}
  faulty(faulty&&) noexcept = default;

  faulty& operator=(const faulty& other) {
    fault_countdown::hit();
    tally_ = other.tally_;
    return *this;
  }
  faulty& operator=(faulty&&) noexcept = default;
  ~faulty() = default;

  std::uint64_t value() const noexcept { return tally_.value(); }

 private:
  template <class T>
  static const T& checked(const T& source) {
    fault_countdown::hit();
    return source;
  }

  counted tally_;
};

// Runs scenario() with the fault armed at n = 1, 2, ... until a run reaches fewer than n fault
// points, and returns how many runs it made. scenario must catch injected_fault where it
// expects one and check the state it leaves. This function checks that every faulty element it
// made was destroyed exactly once. The caller checks that the count is as large as the scenario's fault
// points, so that a scenario that stops reaching them fails.
template <class Scenario>
long sweep_faults(Scenario&& scenario) {
  long runs = 0;
  for (long n = 1;; ++n) {
    counted::reset();
    bool fired = false;
    {
      const armed_fault fault(n);
      scenario(n);
      fired = fault_countdown::fired();
    }
    ++runs;
    if (counted::live() != 0 || counted::errors() != 0) {
      throw std::logic_error("after the fault at point " + std::to_string(n) + ": " +
                             std::to_string(counted::live()) + " elements alive and " +
                             std::to_string(counted::errors()) +
                             " double destructions or reads of dead elements");
    }
    if (!fired) return runs;
  }
}

// Calls f() and returns whether it threw injected_fault. Other exceptions propagate.
template <class F>
bool throws_fault(F&& f) {
  try {
    std::forward<F>(f)();
    return false;
  } catch (const injected_fault&) {
    return true;
  }
}

// The countdown behind the test executable's operator new. Only allocations on the thread that
// armed it count down, so that threads the test does not control cannot take its fault.
class allocation_faults {
 public:
  static void arm(long n) noexcept {
    countdown_ = n;
    fired_ = false;
  }
  static void disarm() noexcept { countdown_ = 0; }
  // Whether an allocation failed on purpose on this thread since arm().
  static bool fired() noexcept { return fired_; }

  // Allocations made by operator new and not yet given back, on every thread.
  static long outstanding() noexcept { return outstanding_.load(std::memory_order_relaxed); }

  // Called by operator new before it allocates: throws std::bad_alloc for the armed allocation.
  static void before_allocation() {
    if (countdown_ > 0 && --countdown_ == 0) {
      fired_ = true;
      throw std::bad_alloc();
    }
  }
  static void allocated() noexcept { outstanding_.fetch_add(1, std::memory_order_relaxed); }
  static void deallocated() noexcept { outstanding_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  static inline thread_local long countdown_ = 0;
  static inline thread_local bool fired_ = false;
  static inline std::atomic<long> outstanding_{0};
};

// Constructs a T with construct(std::optional<T>&) while the n-th allocation fails, for n = 1,
// 2, ... until a construction succeeds, then calls use(T&) on that one and destroys it. Throws
// std::logic_error when a failed construction did not throw std::bad_alloc, or leaked, or when
// the final object leaked. Returns how many constructions it tried.
template <class T, class Construct, class Use>
long sweep_allocation_failures(Construct&& construct, Use&& use) {
  for (long n = 1;; ++n) {
    const long before = allocation_faults::outstanding();
    std::optional<T> object;
    bool failed = false;
    allocation_faults::arm(n);
    try {
      construct(object);
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    const bool fired = allocation_faults::fired();
    allocation_faults::disarm();
    const long leaked = allocation_faults::outstanding() - before;  // before any text is built
    const auto fail = [n](const std::string& what) {
      throw std::logic_error("with allocation " + std::to_string(n) + " failing: " + what);
    };
    if (fired != failed) fail(failed ? "bad_alloc from elsewhere" : "bad_alloc swallowed");
    if (failed) {
      if (object) fail("an object exists after its constructor threw");
      if (leaked != 0) fail(std::to_string(leaked) + " allocations leaked");
      continue;
    }
    use(*object);
    object.reset();
    const long kept = allocation_faults::outstanding() - before;
    if (kept != 0)
      fail("the object that was built leaked " + std::to_string(kept) + " allocations");
    return n;
  }
}

}  // namespace ringmq_test
