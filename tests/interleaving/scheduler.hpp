// The interleaving explorer. Logical threads run as fibers on one OS thread, and every access to
// a checked_atomic is a scheduling point. A depth-first search over the scheduler's choices runs
// every sequentially consistent order of the accesses and prunes states seen before.
//
// State caching. A logical thread's local state is a function of its program and of everything
// it has read from shared memory. Each thread folds the values its accesses return, and a marker
// per scheduling point, into a 128-bit history hash. The model restarts the hash between calls, after
// recording the finished call's outcome in its own bookkeeping. At a scheduling point every
// thread waits before an access or has finished, so the tuple (values of all checked atomics in
// creation order, the model's state from its hash hook, each thread's history hash, which
// threads have finished) fixes every future execution. A tuple seen before had all its futures
// explored, so the search prunes it. The visited set stores a 128-bit hash of the tuple, so two
// distinct states merge only on a hash collision.
//
// A history only grows within a call, so no state repeats along one execution. The search is
// finite because every try call is bounded: a call that makes more accesses than its limit is
// reported as a livelock.
#pragma once

#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define RINGMQ_INTERLEAVING_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RINGMQ_INTERLEAVING_ASAN 1
#endif
#endif

#if defined(RINGMQ_INTERLEAVING_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// On x86-64 the fibers switch with a few instructions of their own; elsewhere with swapcontext.
#if !defined(RINGMQ_INTERLEAVING_FAST_SWITCH)
#if defined(__x86_64__)
#define RINGMQ_INTERLEAVING_FAST_SWITCH 1
#else
#define RINGMQ_INTERLEAVING_FAST_SWITCH 0
#endif
#endif

namespace ringmq_test::interleaving {

// A 128-bit hash built from two 64-bit lanes with different mixing, fed one word at a time.
class hasher {
 public:
  void add(std::uint64_t word) noexcept {
    low_ = finalize(low_ ^ (word + 0x9e3779b97f4a7c15));
    high_ = finalize(rotate(high_, 29) + word * 0xff51afd7ed558ccd + 0xc4ceb9fe1a85ec53);
  }

  std::uint64_t low() const noexcept { return low_; }
  std::uint64_t high() const noexcept { return high_; }
  bool operator==(const hasher&) const = default;

 private:
  // The finalizer of splitmix64.
  static std::uint64_t finalize(std::uint64_t x) noexcept {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
    x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
    return x ^ (x >> 31);
  }
  static std::uint64_t rotate(std::uint64_t x, int bits) noexcept {
    return (x << bits) | (x >> (64 - bits));
  }

  std::uint64_t low_ = 0x243f6a8885a308d3;
  std::uint64_t high_ = 0x13198a2e03707344;
};

struct hasher_hash {
  std::size_t operator()(const hasher& h) const noexcept {
    return static_cast<std::size_t>(h.low() ^ (h.high() >> 1));
  }
};

enum class access_kind : std::uint8_t { local, load, store, cas_weak, cas_strong, rmw };

// One value of shared memory under the scheduler's control, stored as 64 bits.
class cell {
 public:
  std::uint64_t raw() const noexcept { return raw_; }
  int index() const noexcept { return index_; }

 protected:
  std::uint64_t raw_ = 0;
  int index_ = -1;
};

// One scheduling decision: which thread performs its next access, and whether a
// compare_exchange_weak that would succeed fails spuriously instead.
struct choice {
  int thread = 0;
  bool spurious = false;
  bool operator==(const choice&) const = default;
};

std::string format_schedule(const std::vector<choice>& schedule);
bool parse_schedule(const std::string& text, std::vector<choice>& schedule);

struct search_limits {
  // Accesses one try call may make before it counts as a livelock.
  int accesses_per_call = 64;
  // Spurious failures of compare_exchange_weak the search may inject into one call.
  int spurious_per_call = 1;
};

enum class execution_end { complete, pruned, failed };

// Runs logical threads as fibers and decides, before every shared access, which one goes next.
// The model that drives it (see ring_model.hpp) supplies the threads' bodies and the checks.
class scheduler {
 public:
  static constexpr int max_threads = 8;

  scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // The scheduler of the running search, for checked_atomic and the element tracker.
  static scheduler& current() noexcept { return *current_; }

  // --- Called from shared-memory accesses and from the model.

  int register_cell(cell* c) {
    cells_.push_back(c);
    return static_cast<int>(cells_.size() - 1);
  }

  // A scheduling point before an access to `target`. Returns true when the scheduler chose a
  // spurious failure for this compare_exchange_weak. Only logical threads yield; code in the
  // main context (construction, destruction) and in the drain thread runs without yielding.
  bool before_access(access_kind kind, const cell* target, std::uint64_t expected);

  // Folds a value read from shared memory into the running thread's history.
  void observe(std::uint64_t value) noexcept {
    if (running_ >= 0) threads_[running_].history.add(value);
  }

  // Reports the result of an access when tracing is on.
  void trace_access(const char* what, const cell* target, std::uint64_t result) const;

  // Starts a try call of the running thread: resets its access count and spurious budget.
  void begin_call() noexcept;

  // Marks the running thread's next call as started at its first scheduling point: the model's
  // call-start hook runs then, just before the first access. A call starts and ends without
  // touching shared memory, so starting it as late as possible is one of its real executions,
  // and saves a scheduling point per call.
  void defer_call_start() noexcept { threads_[running_].start_pending = true; }

  // Runs the call-start hook now if the call made no access. Call after the call returns.
  void settle_call_start() {
    if (threads_[running_].start_pending) {
      threads_[running_].start_pending = false;
      call_start_(model_, running_);
    }
  }

  // Forgets the running thread's history. The model calls this between two calls, after it
  // recorded the outcome of the first in its own state (see ring_model::hash_model).
  void restart_history() noexcept {
    if (running_ >= 0) threads_[running_].history = hasher{};
  }

  // Records a violation. The caller continues, and a logical thread stops for good at its next
  // scheduling point, where its frames own no heap memory (a thread stopped inside fail() would
  // leak the message's temporaries). The execution then ends as failed.
  void fail(const std::string& message);

  bool failed() const noexcept { return !failure_.empty(); }
  const std::string& failure() const noexcept { return failure_; }
  int running_thread() const noexcept { return running_; }
  bool tracing() const noexcept { return tracing_; }
  void set_tracing(bool on) noexcept { tracing_ = on; }
  void set_limits(const search_limits& limits) noexcept { limits_ = limits; }

  // --- Called by the search.

  using thread_body = void (*)(void* model, int thread);
  using state_hook = void (*)(void* model, hasher& state);

  // Prepares an execution of `count` threads, plus one drain thread when `with_drain`.
  void begin_execution(int count, bool with_drain, void* model, thread_body body,
                       state_hook hash_model, thread_body call_start);

  // Runs the current execution with the choices of `prefix`, then with the first choice at each
  // new decision. At each new decision the state is looked up in `visited` (when not null) and
  // the execution is pruned if it was seen before. Records every decision in decisions().
  execution_end run_execution(const std::vector<int>& prefix,
                              std::unordered_set<hasher, hasher_hash>* visited);

  // Same, following an explicit schedule, then the first choice at each later decision.
  execution_end replay(const std::vector<choice>& schedule);

  struct decision {
    int chosen = 0;
    int count = 0;
    choice picked;
  };
  std::vector<decision>& decisions() noexcept { return decisions_; }
  std::vector<choice> schedule() const;

  // Runs the drain thread to its end. The model calls this once every logical thread finished.
  void run_drain();

 private:
  struct thread_state {
#if RINGMQ_INTERLEAVING_FAST_SWITCH
    void* stack_pointer = nullptr;
#else
    ucontext_t context{};
#endif
    std::unique_ptr<unsigned char[]> stack;
    void* fake_stack = nullptr;
    hasher history;
    bool finished = false;
    access_kind pending = access_kind::local;
    const cell* pending_target = nullptr;
    std::uint64_t pending_expected = 0;
    bool spurious_next = false;
    bool start_pending = false;
    int accesses_in_call = 0;
    int spurious_in_call = 0;
  };

  static void fiber_main();
  [[noreturn]] void abandon();
  void start_thread(int thread);
  void resume(int thread);
  void suspend(bool finished);
  void collect_choices(std::vector<choice>& choices) const;
  hasher hash_state() const;
  template <class Pick>
  execution_end drive(Pick&& pick);

  static constexpr std::size_t stack_size = 256 * 1024;
  static inline scheduler* current_ = nullptr;

  thread_state threads_[max_threads + 1];
  int thread_count_ = 0;
  int drain_thread_ = -1;
  int running_ = -1;
#if RINGMQ_INTERLEAVING_FAST_SWITCH
  void* main_stack_pointer_ = nullptr;
#else
  ucontext_t main_context_{};
#endif
  void* main_fake_stack_ = nullptr;
  const void* main_stack_bottom_ = nullptr;
  std::size_t main_stack_size_ = 0;
  std::vector<cell*> cells_;
  std::vector<decision> decisions_;
  std::vector<choice> choices_;
  std::string failure_;
  search_limits limits_;
  bool tracing_ = false;
  void* model_ = nullptr;
  thread_body body_ = nullptr;
  state_hook hash_model_ = nullptr;
  thread_body call_start_ = nullptr;
};

// A stand-in for std::atomic<U> whose every access is a scheduling point. Accesses run one at
// a time in the order the scheduler picks, so each execution is sequentially consistent; the
// memory_order arguments are accepted and ignored.
template <class U>
class checked_atomic : public cell {
  static_assert(std::is_integral_v<U> && sizeof(U) <= sizeof(std::uint64_t),
                "checked_atomic<U>: U must be an integral type of at most 64 bits");

 public:
  checked_atomic() noexcept : checked_atomic(U{}) {}
  checked_atomic(U initial) noexcept {  // NOLINT: implicit, as std::atomic's constructor is
    raw_ = encode(initial);
    index_ = scheduler::current().register_cell(this);
  }
  checked_atomic(const checked_atomic&) = delete;
  checked_atomic& operator=(const checked_atomic&) = delete;

  U load(std::memory_order = std::memory_order_seq_cst) const noexcept {
    scheduler& s = scheduler::current();
    s.before_access(access_kind::load, this, 0);
    s.observe(raw_);
    s.trace_access("load", this, raw_);
    return decode(raw_);
  }

  void store(U desired, std::memory_order = std::memory_order_seq_cst) noexcept {
    scheduler& s = scheduler::current();
    s.before_access(access_kind::store, this, 0);
    raw_ = encode(desired);
    s.trace_access("store", this, raw_);
  }

  bool compare_exchange_weak(U& expected, U desired, std::memory_order = std::memory_order_seq_cst,
                             std::memory_order = std::memory_order_seq_cst) noexcept {
    const bool spurious =
        scheduler::current().before_access(access_kind::cas_weak, this, encode(expected));
    return compare_exchange(expected, desired, spurious, "cas_weak");
  }

  bool compare_exchange_strong(U& expected, U desired,
                               std::memory_order = std::memory_order_seq_cst,
                               std::memory_order = std::memory_order_seq_cst) noexcept {
    scheduler::current().before_access(access_kind::cas_strong, this, encode(expected));
    return compare_exchange(expected, desired, false, "cas_strong");
  }

  U fetch_or(U operand, std::memory_order = std::memory_order_seq_cst) noexcept {
    return read_modify_write(true, operand, "fetch_or");
  }

  U exchange(U desired, std::memory_order = std::memory_order_seq_cst) noexcept {
    return read_modify_write(false, desired, "exchange");
  }

 private:
  static std::uint64_t encode(U value) noexcept { return static_cast<std::uint64_t>(value); }
  static U decode(std::uint64_t raw) noexcept { return static_cast<U>(raw); }

  bool compare_exchange(U& expected, U desired, bool spurious, const char* what) noexcept {
    scheduler& s = scheduler::current();
    const bool success = !spurious && raw_ == encode(expected);
    s.observe(success ? 1 : 0);
    s.observe(raw_);
    if (success) {
      raw_ = encode(desired);
    } else {
      expected = decode(raw_);
    }
    s.trace_access(success ? what : (spurious ? "cas_spurious_failure" : "cas_failure"), this,
                   raw_);
    return success;
  }

  // fetch_or (is_or) or exchange: the new value is computed after the scheduling point.
  U read_modify_write(bool is_or, U operand, const char* what) noexcept {
    scheduler& s = scheduler::current();
    s.before_access(access_kind::rmw, this, 0);
    const std::uint64_t old = raw_;
    s.observe(old);
    raw_ = encode(is_or ? static_cast<U>(decode(old) | operand) : operand);
    s.trace_access(what, this, old);
    return decode(old);
  }
};

}  // namespace ringmq_test::interleaving
