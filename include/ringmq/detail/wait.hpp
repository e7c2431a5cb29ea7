// ringmq internals: CPU pause, deadlines and the sleep/wake channel behind wait<park>.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "ringmq/detail/preemption.hpp"
#include "ringmq/detail/time.hpp"

#if defined(__linux__)
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#endif

namespace ringmq::detail {

// Size of the unit of cache coherence: 64 bytes on x86-64 and on most ARM cores.
inline constexpr std::size_t cache_line = 64;

// Tells the CPU that this thread is busy-waiting.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

using steady_time = std::chrono::steady_clock::time_point;

// Converts a timeout to an absolute deadline on steady_clock. A negative timeout, and a NaN,
// mean "now"; a timeout that would overflow the clock's representation saturates to
// time_point::max(), which callers treat as "no deadline".
template <class Rep, class Period>
steady_time deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  using clock_duration = std::chrono::steady_clock::duration;
  const steady_time now = std::chrono::steady_clock::now();

  // saturating_nanoseconds compares in long double before it converts, so a huge timeout, one
  // in a unit finer than nanoseconds, or a NaN never overflows.
  const nanos length = saturating_nanoseconds(timeout);
  if (length <= 0) return now;
  const clock_duration room = steady_time::max() - now;
  if (length >= saturating_nanoseconds(room)) return steady_time::max();
  const auto converted = std::chrono::ceil<clock_duration>(std::chrono::nanoseconds(length));
  return converted >= room ? steady_time::max() : now + converted;
}

// Blocks while *word == expected, until woken or until the deadline. Returns false on timeout.
// Spurious returns are allowed; callers recheck their condition.
inline bool sleep_while_equal(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                              steady_time deadline) noexcept {
#if defined(__linux__)
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  const bool untimed = deadline == steady_time::max();
  timespec relative{};
  if (!untimed) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= steady_time::duration::zero()) return false;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(left);
    relative.tv_sec = static_cast<std::time_t>(secs.count());
    relative.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(left - secs).count());
  }
  // FUTEX_WAIT compares *word with expected atomically with going to sleep, so a wake issued
  // after the value changed is never missed. The timeout is measured on CLOCK_MONOTONIC, which
  // is the clock behind std::chrono::steady_clock on Linux.
  const long result =
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
                untimed ? nullptr : &relative, nullptr, 0);
  return result == 0 || errno != ETIMEDOUT;
#else
  if (deadline == steady_time::max()) {
    word.wait(expected, std::memory_order_seq_cst);
    return true;
  }
  // NOTE: without futex, a timed sleep polls in steps of at most one millisecond, so a wake
  // may be seen up to that late.
  auto step = std::chrono::microseconds(50);
  while (word.load(std::memory_order_seq_cst) == expected) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<steady_time::duration>(step, deadline - now));
    step = std::min(step * 2, std::chrono::microseconds(1000));
  }
  return true;
#endif
}

// Wakes every thread sleeping in sleep_while_equal on word.
inline void wake_all(std::atomic<std::uint32_t>& word) noexcept {
#if defined(__linux__)
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT32_MAX,
            nullptr, nullptr, 0);
#else
  word.notify_all();
#endif
}

// Asymmetric fences. A wake-up protocol needs a full fence on both sides: between the waker's
// publishing store and its read of the sleeper count, and between the sleeper's registration
// and its recheck. On Linux the sleeper can instead issue membarrier(PRIVATE_EXPEDITED), which
// runs a full fence on every CPU that runs a thread of this process, and the waker then needs
// only a compiler barrier. Sleeping is the rare, slow path, so it pays for both sides.

// Returns whether membarrier(PRIVATE_EXPEDITED) is registered for this process. The answer is
// computed once and never changes, so both sides of every protocol agree on it.
inline bool process_fences_available() noexcept {
#if defined(__linux__)
  static const bool registered = [] {
    const long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return registered;
#else
  return false;
#endif
}

// The fast side's fence: a compiler barrier when the slow side uses heavy_fence, else a full
// fence.
inline void light_fence() noexcept {
  if (process_fences_available()) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// The slow side's fence: a full fence on every running thread of the process, or a full fence
// on this one when light_fence is itself a full fence.
inline void heavy_fence() noexcept {
#if defined(__linux__)
  if (process_fences_available()) {
    if (::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
    // NOTE: membarrier failed after a successful registration, which the kernel documents for
    // no case; then light_fence is only a compiler barrier and a wake-up may come late.
  }
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

// A place where threads of one side of a ring sleep until the other side makes progress.
//
// Protocol. Shared fields: sleepers_ (written by sleepers), epoch_ (written by wakers).
//   Sleeper: (S1) sleepers_.fetch_add   (S2) e = epoch_.load   (F1) heavy_fence   (S3) recheck
//            its condition, leave if it holds   (S4) futex-sleep while epoch_ == e.
//   Waker:   (P1) publishes its change with a release store   (F2) light_fence   (P2) reads
//            sleepers_; when it is non-zero, (P3) epoch_.fetch_add and wake_all.
// F1 and F2 together act as a full fence on each side, so either P2 sees S1, or S3 sees P1.
// If P2 sees no sleeper, S3 sees the change and the sleeper does not sleep. Otherwise P3
// happens: if S2 read its result, P1 happens before S3 through P3's release; if not, S4 finds
// epoch_ != e or is woken by wake_all. Either way no wake-up is lost, and a waker with nobody
// asleep pays a compiler barrier and one load of a line that only sleepers write.
class wake_channel {
 public:
  // Sleeps until woken, until ready() holds or until the deadline; returns false on timeout.
  template <class Ready>
  bool sleep_unless(Ready ready, steady_time deadline) noexcept {
    sleepers_.fetch_add(1, std::memory_order_seq_cst);                   // (S1)
    RINGMQ_PREEMPTION_POINT();
    const std::uint32_t epoch = epoch_.load(std::memory_order_acquire);  // (S2)
    heavy_fence();                                                       // (F1)
    RINGMQ_PREEMPTION_POINT();
    bool in_time = true;
    if (!ready()) in_time = sleep_while_equal(epoch_, epoch, deadline);  // (S3), (S4)
    sleepers_.fetch_sub(1, std::memory_order_relaxed);  // only makes later wakes cheaper
    return in_time;
  }

  // Wakes every sleeper, if any. Call after the release store that publishes progress.
  void wake() noexcept {
    RINGMQ_PREEMPTION_POINT();
    light_fence();                                               // (F2)
    if (sleepers_.load(std::memory_order_relaxed) == 0) return;  // (P2)
    epoch_.fetch_add(1, std::memory_order_acq_rel);              // (P3)
    wake_all(epoch_);
  }

 private:
  std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> sleepers_{0};
};

}  // namespace ringmq::detail
