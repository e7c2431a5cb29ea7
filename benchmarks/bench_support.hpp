// Pieces shared by ringmq's benchmark programs: an allocation counter, the waiting between
// failed try_ calls, a team of worker threads that run one iteration at a time, and the
// checksums that show whether an iteration lost or duplicated an item.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace ringmq_bench {

// ---------------------------------------------------------------------------------------------
// Allocation counter, defined in allocation_counter.cpp. A program that includes this header
// must link that file, which replaces the global operator new so that every call of it counts.

// Counts one allocation. Call it from allocator hooks of libraries that do not allocate with
// operator new.
void count_allocation() noexcept;

// Number of allocations since the program started.
std::uint64_t allocations_so_far() noexcept;

// ---------------------------------------------------------------------------------------------
// Waiting between failed try_ calls, the same for every queue.

inline constexpr std::uint32_t retry_spin_rounds = 256;

// A thread that has retried for this long without success gives up, and the benchmark reports
// an error, so that a queue that lost an item fails the run instead of hanging it.
inline constexpr std::chrono::seconds stall_timeout{10};

inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Waits between the retries of one try_ call. It pauses first, then yields on every round.
class retry_wait {
 public:
  // Waits one round. Returns false once the caller has been retrying for stall_timeout.
  bool wait() {
    if (rounds_ < retry_spin_rounds) {
      ++rounds_;
      cpu_pause();
      return true;
    }
    if (rounds_ == retry_spin_rounds) yield_start_ = std::chrono::steady_clock::now();
    ++rounds_;
    std::this_thread::yield();
    // The timeout need not be precise, so the clock is read only every 1024 rounds.
    if ((rounds_ - retry_spin_rounds) % 1024 != 0) return true;
    return std::chrono::steady_clock::now() - yield_start_ < stall_timeout;
  }

 private:
  std::uint32_t rounds_ = 0;
  std::chrono::steady_clock::time_point yield_start_;
};

// ---------------------------------------------------------------------------------------------
// Thread placement.
//
// Linux tends to wake a thread on the CPU of the thread that woke it. So two workers started by
// one benchmark thread often share a core for a whole iteration, and a "1 producer, 1 consumer"
// run then measures two threads taking turns on one core. Benchmarks about the handoff between
// cores pin their threads to different CPUs. The CPUs come from the process's affinity mask,
// so under `taskset -c 0` every thread is pinned to CPU 0. On other systems nothing is pinned.

// The CPUs this process may run on, in increasing order; empty where that is unknown. Read
// once, at the first call, so that threads pinned later do not change the result. Call it
// before pinning any thread.
inline const std::vector<int>& allowed_cpus() {
  static const std::vector<int> cpus = [] {
    std::vector<int> allowed;
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
      for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) allowed.push_back(cpu);
      }
    }
#endif
    return allowed;
  }();
  return cpus;
}

// Pins `thread` to allowed CPU number `index`, counted modulo the number of allowed CPUs.
// Returns false where threads cannot be pinned.
inline bool pin_to_allowed_cpu(std::thread::native_handle_type thread, std::size_t index) {
#ifdef __linux__
  const std::vector<int>& cpus = allowed_cpus();
  if (cpus.empty()) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus[index % cpus.size()], &set);
  return pthread_setaffinity_np(thread, sizeof set, &set) == 0;
#else
  static_cast<void>(thread);
  static_cast<void>(index);
  return false;
#endif
}

// Pins the calling thread to allowed CPU number `index` for the object's lifetime, and then
// gives it back the CPUs it had.
class scoped_pin {
 public:
  explicit scoped_pin(std::size_t index) {
#ifdef __linux__
    CPU_ZERO(&saved_);
    saved_valid_ = pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) == 0;
    static_cast<void>(pin_to_allowed_cpu(pthread_self(), index));
#else
    static_cast<void>(index);
#endif
  }

  scoped_pin(const scoped_pin&) = delete;
  scoped_pin& operator=(const scoped_pin&) = delete;

  ~scoped_pin() {
#ifdef __linux__
    if (saved_valid_) static_cast<void>(pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_));
#endif
  }

 private:
#ifdef __linux__
  cpu_set_t saved_;
  bool saved_valid_ = false;
#endif
};

// ---------------------------------------------------------------------------------------------
// Worker threads and item checksums for the throughput shapes.

// Worker threads that each run one iteration whenever the benchmark thread starts one.
class worker_team {
 public:
  explicit worker_team(std::uint32_t size) : size_(size) {}

  worker_team(const worker_team&) = delete;
  worker_team& operator=(const worker_team&) = delete;

  ~worker_team() {
    stopped_.store(true, std::memory_order_relaxed);
    // Release: pairs with the acquire load in wait_for_start, which then reads stopped_ true.
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }

  // Starts a worker thread running `work`. The team must get exactly `size` workers, and each
  // must loop: while (wait_for_start(seen)) { run one iteration; finish(); }.
  template <class Work>
  void add(Work work) {
    workers_.emplace_back(std::move(work));
  }

  // Pins worker k to allowed CPU number k, wrapping around, so that with two CPUs and two
  // workers each has a core of its own.
  void spread_over_cpus() {
    for (std::size_t index = 0; index < workers_.size(); ++index) {
      static_cast<void>(pin_to_allowed_cpu(workers_[index].native_handle(), index));
    }
  }

  // Called by the benchmark thread: runs one iteration on every worker and returns when each
  // has called finish().
  void run_iteration() {
    running_.store(size_, std::memory_order_relaxed);
    // Release: pairs with the acquire load in wait_for_start, so workers read the new running_.
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::uint32_t left = running_.load(std::memory_order_acquire); left != 0;
         left = running_.load(std::memory_order_acquire)) {
      running_.wait(left, std::memory_order_acquire);
    }
  }

  // Called by a worker: waits until an iteration newer than `seen` starts and updates `seen`.
  // Returns false when the team is being destroyed.
  bool wait_for_start(std::uint32_t& seen) {
    generation_.wait(seen, std::memory_order_acquire);
    seen = generation_.load(std::memory_order_acquire);
    return !stopped_.load(std::memory_order_relaxed);
  }

  // Called by a worker at the end of its iteration. Release: pairs with the acquire loads in
  // run_iteration, so the benchmark thread reads the worker's results.
  void finish() {
    if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) running_.notify_one();
  }

 private:
  const std::uint32_t size_;
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<std::uint32_t> running_{0};
  std::atomic<bool> stopped_{false};
  std::vector<std::thread> workers_;
};

// Count and checksums of the items one consumer popped in one iteration. Lost and duplicated
// items change at least one of the three unless they balance in count, sum and sum of squares
// at once.
struct alignas(64) item_tally {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t sum_of_squares = 0;  // modulo 2^64

  void add(std::uint64_t item) {
    ++count;
    sum += item;
    sum_of_squares += item * item;
  }

  void add(const item_tally& other) {
    count += other.count;
    sum += other.sum;
    sum_of_squares += other.sum_of_squares;
  }

  bool operator==(const item_tally&) const = default;
};

// Returns item number `index` of producer `producer`. The items of one iteration are distinct.
inline std::uint64_t make_item(std::uint32_t producer, std::uint64_t index) {
  return (std::uint64_t{producer} << 32) | index;
}

}  // namespace ringmq_bench
