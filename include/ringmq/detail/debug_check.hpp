// ringmq internals: checks of the library's preconditions that debug builds run and release
// builds compile away.
//
// RINGMQ_DEBUG_CHECKS turns them on (1) or off (0). When it is not defined, they are on unless
// NDEBUG is defined, as assert() is. The checks add members to some classes, so every
// translation unit of a program must see the same setting.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>

#if !defined(RINGMQ_DEBUG_CHECKS)
#if defined(NDEBUG)
#define RINGMQ_DEBUG_CHECKS 0
#else
#define RINGMQ_DEBUG_CHECKS 1
#endif
#endif

namespace ringmq::detail {

inline constexpr bool debug_checks = RINGMQ_DEBUG_CHECKS != 0;

// Writes "ringmq: <message>" to stderr and aborts. Only for misuse that would otherwise be
// undefined behaviour, and only in builds with debug checks.
[[noreturn]] inline void debug_check_failed(const char* message) noexcept {
  std::fprintf(stderr, "ringmq: %s\n", message);
  std::fflush(stderr);
  std::abort();
}

// Catches a second thread entering a call of a side that the caller declared single, while
// another call of that side is still running. enter() sets a flag with an exchange and the
// returned scope clears it. Relaxed: the flag orders nothing. Exchanges on one atomic read the
// latest value in its modification order, so two overlapping calls always see each other. When
// the role passes from one thread to another with proper synchronization, the first thread's
// clear happens before the second thread's exchange, which then reads false: thread ids are not
// compared, so such a hand-over stays allowed.
// Side is a tag that gives each side's check a type of its own, so that two disabled checks
// take no room in the object that contains them.
template <class Side, bool Enabled>
class single_caller_check {
 public:
  class [[nodiscard]] scope {
   public:
    explicit scope(std::atomic<bool>& busy) noexcept : busy_(busy) {}
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() { busy_.store(false, std::memory_order_relaxed); }

   private:
    std::atomic<bool>& busy_;
  };

  // Marks a call as running. `message` is printed on failure: what went wrong and what to do.
  scope enter(const char* message) noexcept {
    if (busy_.exchange(true, std::memory_order_relaxed)) debug_check_failed(message);
    return scope(busy_);
  }

 private:
  std::atomic<bool> busy_{false};
};

template <class Side>
class single_caller_check<Side, false> {
 public:
  struct scope {};
  scope enter(const char*) noexcept { return {}; }
};

}  // namespace ringmq::detail
