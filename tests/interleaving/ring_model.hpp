// The ring model: logical threads that run fixed programs of try calls on a ring core, an
// element type that reports misuse of its storage, and the properties checked during and after
// every execution. docs/interleaving.md lists the rules with their reasons.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "scheduler.hpp"

namespace ringmq_test::interleaving {

// ---------------------------------------------------------------------------------------------
// Elements.

// Storage of every element the cores construct. Each record is one address that held an
// element, kept in address order so that equal storage contents hash equally.
class element_registry {
 public:
  struct record {
    const void* address = nullptr;
    bool alive = false;
    std::uint64_t value = 0;
  };

  static element_registry& instance() noexcept {
    static element_registry registry;
    return registry;
  }

  void reset() noexcept { count_ = 0; }

  record* find(const void* address) noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      if (records_[i].address == address) return &records_[i];
    }
    return nullptr;
  }

  record& find_or_add(const void* address) {
    if (record* existing = find(address)) return *existing;
    if (count_ == records_.size()) {
      scheduler::current().fail("internal: more element addresses than the registry holds");
    }
    std::size_t at = count_;
    while (at > 0 && std::less<const void*>()(address, records_[at - 1].address)) {
      records_[at] = records_[at - 1];
      --at;
    }
    records_[at] = record{address, false, 0};
    ++count_;
    return records_[at];
  }

  void hash(hasher& state) const noexcept {
    state.add(count_);
    for (std::size_t i = 0; i < count_; ++i) {
      state.add(reinterpret_cast<std::uintptr_t>(records_[i].address));
      state.add(records_[i].alive ? 1 : 0);
      state.add(records_[i].value);
    }
  }

  // The first element still alive, or null.
  const record* first_alive() const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      if (records_[i].alive) return &records_[i];
    }
    return nullptr;
  }

 private:
  std::array<record, 64> records_{};
  std::size_t count_ = 0;
};

// A value "p<producer>#<sequence>": the producer thread and the index of the element among the
// elements that producer constructed.
inline std::uint64_t element_value(int producer, int sequence) noexcept {
  return static_cast<std::uint64_t>(producer) * 256 + static_cast<std::uint64_t>(sequence);
}
inline int producer_of(std::uint64_t value) noexcept { return static_cast<int>(value / 256); }
inline int sequence_of(std::uint64_t value) noexcept { return static_cast<int>(value % 256); }
inline std::string describe_value(std::uint64_t value) {
  return "p" + std::to_string(producer_of(value)) + "#" + std::to_string(sequence_of(value));
}

// The element type of the checked rings. Constructing, reading and destroying one are
// scheduling points, like atomic accesses, because element storage is shared memory: a core
// that publishes a slot before it constructs the element lets a consumer run in between.
class tracked {
 public:
  explicit tracked(std::uint64_t value) noexcept : value_(value) {
    scheduler& s = scheduler::current();
    s.before_access(access_kind::local, nullptr, 0);
    element_registry::record& r = element_registry::instance().find_or_add(this);
    if (r.alive) {
      s.fail("element: thread " + std::to_string(s.running_thread()) + " constructed " +
             describe_value(value) + " over the live element " + describe_value(r.value));
      return;
    }
    r.alive = true;
    r.value = value;
    if (s.tracing())
      std::printf("    thread %d: constructs %s\n", s.running_thread(),
                  describe_value(value).c_str());
  }

  ~tracked() {
    scheduler& s = scheduler::current();
    s.before_access(access_kind::local, nullptr, 0);
    element_registry::record* r = element_registry::instance().find(this);
    if (r == nullptr || !r->alive) {
      s.fail("element: thread " + std::to_string(s.running_thread()) +
             " destroyed an element that is not alive (double destruction)");
      return;
    }
    r->alive = false;
    if (s.tracing())
      std::printf("    thread %d: destroys %s\n", s.running_thread(),
                  describe_value(r->value).c_str());
  }

  tracked(const tracked&) = delete;
  tracked& operator=(const tracked&) = delete;

  // Returns the element's value, after checking that the storage holds a live element.
  std::uint64_t read() const noexcept {
    scheduler& s = scheduler::current();
    s.before_access(access_kind::local, nullptr, 0);
    const element_registry::record* r = element_registry::instance().find(this);
    if (r == nullptr || !r->alive) {
      s.fail("element: thread " + std::to_string(s.running_thread()) +
             " read storage that holds no live element");
      return ~std::uint64_t{0};
    }
    if (value_ != r->value) {
      s.fail("element: thread " + std::to_string(s.running_thread()) + " read " +
             describe_value(value_) + " from storage constructed as " + describe_value(r->value));
    }
    if (s.tracing())
      std::printf("    thread %d: reads %s\n", s.running_thread(),
                  describe_value(r->value).c_str());
    return r->value;
  }

 private:
  std::uint64_t value_;
};

// Storage for a core's slots at the same address in every execution, so that element addresses
// in the state hash mean the same slot in every execution. One allocation at a time.
alignas(256) inline unsigned char arena_bytes[32 * 1024];

template <class T>
struct arena_allocator {
  using value_type = T;

  arena_allocator() noexcept = default;
  template <class U>
  arena_allocator(const arena_allocator<U>&) noexcept {}  // NOLINT: allocator rebinding

  T* allocate(std::size_t n) {
    if (n > sizeof(arena_bytes) / sizeof(T) || alignof(T) > 256) {
      throw std::length_error("interleaving: a ring of " + std::to_string(n) +
                              " slots does not fit the test arena; use a smaller capacity");
    }
    return reinterpret_cast<T*>(arena_bytes);
  }
  void deallocate(T*, std::size_t) noexcept {}

  template <class U>
  bool operator==(const arena_allocator<U>&) const noexcept {
    return true;
  }
};

// ---------------------------------------------------------------------------------------------
// Programs and scenarios.

enum class op_kind : std::uint8_t { push, push_run, pop, pop_run, close, drained };

struct op {
  op_kind kind;
  int count = 1;  // the max_count of a run; 1 for the other calls
};

inline op push() { return {op_kind::push, 1}; }
inline op push_run(int count) { return {op_kind::push_run, count}; }
inline op pop() { return {op_kind::pop, 1}; }
inline op pop_run(int count) { return {op_kind::pop_run, count}; }
inline op close() { return {op_kind::close, 1}; }
inline op drained() { return {op_kind::drained, 1}; }

inline const char* op_name(op_kind kind) {
  switch (kind) {
    case op_kind::push:
      return "try_push";
    case op_kind::push_run:
      return "try_push_run";
    case op_kind::pop:
      return "try_pop";
    case op_kind::pop_run:
      return "try_pop_run";
    case op_kind::close:
      return "close";
    case op_kind::drained:
      return "drained";
  }
  return "?";
}

struct scenario {
  std::string name;
  std::string summary;
  std::size_t capacity = 1;
  std::vector<std::vector<op>> threads;
  // Empty: every execution must pass. Otherwise the violation kinds, separated by '|', of which
  // the search must find one (for deliberately broken cores and known gaps).
  std::string expected_violation;
  search_limits limits;
};

struct search_result {
  bool failed = false;
  std::string failure;
  std::vector<choice> schedule;
  std::uint64_t executions = 0;
  std::uint64_t complete_executions = 0;
  std::uint64_t states = 0;
  double seconds = 0;
};

// ---------------------------------------------------------------------------------------------
// The model.

template <class Core>
class ring_model {
 public:
  explicit ring_model(const scenario& s) : scenario_(s) {
    if (s.threads.empty() || static_cast<int>(s.threads.size()) >= scheduler::max_threads) {
      throw std::invalid_argument("interleaving: scenario " + s.name + " has " +
                                  std::to_string(s.threads.size()) + " threads; use 1 to " +
                                  std::to_string(scheduler::max_threads - 1));
    }
    for (const auto& program : s.threads) {
      int pushes = 0;
      for (const op& o : program) {
        if (o.kind == op_kind::push || o.kind == op_kind::push_run) pushes += o.count;
        if (o.count < 1 || o.count > 8) {
          throw std::invalid_argument("interleaving: scenario " + s.name +
                                      " has a call with count " + std::to_string(o.count) +
                                      "; use 1 to 8");
        }
      }
      if (pushes > 64) {
        throw std::invalid_argument("interleaving: scenario " + s.name + " has a thread that " +
                                    "pushes " + std::to_string(pushes) +
                                    " elements; use at most 64");
      }
    }
  }

  static void thread_body(void* self, int thread) {
    static_cast<ring_model*>(self)->run_thread(thread);
  }
  static void call_start_hook(void* self, int thread) {
    static_cast<ring_model*>(self)->start_call(scheduler::current(), thread);
  }
  // Adds what the threads' histories no longer hold: the element slots and the bookkeeping of
  // completed calls, which the remaining calls and the end checks read.
  static void hash_model(void* self, hasher& state) {
    element_registry::instance().hash(state);
    static_cast<const ring_model*>(self)->hash_bookkeeping(state);
  }

  // Constructs a fresh core and resets the bookkeeping for the next execution.
  void begin(scheduler& s) {
    const int count = static_cast<int>(scenario_.threads.size());
    s.begin_execution(count, true, this, &thread_body, &hash_model, &call_start_hook);
    element_registry::instance().reset();
    for (auto& consumer : next_expected_) consumer.fill(0);
    for (auto& producer : values_) producer.fill(value_record{});
    drain_count_ = 0;
    drain_first_ = 0;
    next_sequence_.fill(0);
    tally_ = tally{};
    core_ = ::new (static_cast<void*>(core_bytes_)) Core(scenario_.capacity);
  }

  // Drains the ring and checks a complete execution. Reports violations with s.fail().
  void finish(scheduler& s) {
    s.run_drain();
    if (s.failed()) return;

    for (int producer = 0; producer < scheduler::max_threads; ++producer) {
      for (int sequence = 0; sequence < next_sequence_[producer]; ++sequence) {
        const value_record& v = values_[producer][sequence];
        const std::string name = describe_value(element_value(producer, sequence));
        if (v.pushed && v.pops == 0) {
          return s.fail("lost: " + name + " was pushed but never popped");
        }
        if (v.pops > 1) {
          return s.fail("duplicated: " + name + " was popped " + std::to_string(v.pops) + " times");
        }
        if (!v.pushed && v.pops > 0) {
          return s.fail("invented: " + name + " was popped, but its push returned false");
        }
      }
    }
    if (tally_.drained_seen && drain_count_ > 0) {
      return s.fail("drained_too_early: drained() returned true, and the ring still held " +
                    describe_value(drain_first_) + " at the end");
    }

    core_->~Core();
    core_ = nullptr;
    if (s.failed()) return;
    if (const element_registry::record* r = element_registry::instance().first_alive()) {
      s.fail("element: " + describe_value(r->value) +
             " is still alive after the ring's destructor");
    }
  }

  // Forgets the core of an execution that was pruned or failed. Its threads stopped inside
  // calls, so its destructor would see half-done claims; it is not run, and the next execution
  // constructs over its storage, which holds no resource of its own.
  void abandon() { core_ = nullptr; }

 private:
  struct value_record {
    bool pushed = false;
    int pops = 0;
  };

  // Bookkeeping shared by all threads. Every field is a function of the threads' programs and
  // histories, so it adds nothing to the state.
  struct tally {
    int push_calls_in_progress = 0;
    int pop_calls_in_progress = 0;
    int pushed = 0;                 // elements pushed by completed push calls
    int popped = 0;                 // elements popped by completed pop calls
    int push_demand_started = 0;    // max_count summed over push calls started
    int push_unused_completed = 0;  // max_count - result summed over completed push calls
    int pop_demand_started = 0;
    int pop_unused_completed = 0;
    bool close_started = false;
    bool close_completed = false;
    bool drained_seen = false;  // some drained() returned true
  };

  // What a call must do, from what it saw at its start. Only the facts the rules below need
  // are kept, because they become part of the thread's state.
  struct call_start {
    // A push or pop must return at least one element while the demand of all calls of its side
    // started so far (including this one) stays below this bound; 0 when no rule applies.
    int succeed_below = 0;
    bool close_completed = false;  // close() had returned: a push must fail
    bool drained_seen = false;     // drained() had returned true: a pop must find nothing
    bool must_drain = false;       // drained() must return true
  };

  int drain_index() const noexcept { return static_cast<int>(scenario_.threads.size()); }

  void hash_bookkeeping(hasher& state) const noexcept {
    state.add(static_cast<std::uint64_t>(tally_.push_calls_in_progress) << 48 |
              static_cast<std::uint64_t>(tally_.pop_calls_in_progress) << 32 |
              static_cast<std::uint64_t>(tally_.pushed) << 16 |
              static_cast<std::uint64_t>(tally_.popped));
    state.add(static_cast<std::uint64_t>(tally_.push_demand_started) << 48 |
              static_cast<std::uint64_t>(tally_.push_unused_completed) << 32 |
              static_cast<std::uint64_t>(tally_.pop_demand_started) << 16 |
              static_cast<std::uint64_t>(tally_.pop_unused_completed));
    state.add(static_cast<std::uint64_t>(tally_.close_started) |
              static_cast<std::uint64_t>(tally_.close_completed) << 1 |
              static_cast<std::uint64_t>(tally_.drained_seen) << 2);
    for (int producer = 0; producer < drain_index(); ++producer) {
      state.add(static_cast<std::uint64_t>(next_sequence_[producer]));
      for (int sequence = 0; sequence < next_sequence_[producer]; ++sequence) {
        const value_record& v = values_[producer][sequence];
        state.add(static_cast<std::uint64_t>(v.pushed) | static_cast<std::uint64_t>(v.pops) << 1);
      }
      for (int consumer = 0; consumer < drain_index(); ++consumer) {
        state.add(static_cast<std::uint64_t>(next_expected_[consumer][producer]));
      }
    }
  }

  // Records what the current call of `thread` sees at its start, its first scheduling point.
  void start_call(scheduler& s, int thread) {
    const std::size_t index = current_index_[thread];
    const op& o = scenario_.threads[static_cast<std::size_t>(thread)][index];
    call_start& start = starts_[thread];
    start = call_start{};
    switch (o.kind) {
      case op_kind::push:
      case op_kind::push_run:
        start.close_completed = tally_.close_completed;
        // With no pop in progress, every popped position freed its slot, so this push fits
        // unless the positions that push calls could claim reach capacity past the pops. The
        // push calls are this one, those in progress and those still to start, at most their
        // max_count each, and those that completed, at the count they returned.
        if (tally_.pop_calls_in_progress == 0) {
          start.succeed_below = static_cast<int>(scenario_.capacity) + tally_.popped +
                                tally_.push_unused_completed + o.count;
        }
        if (start.succeed_below <= tally_.push_demand_started + o.count) start.succeed_below = 0;
        break;
      case op_kind::pop:
      case op_kind::pop_run:
        start.drained_seen = tally_.drained_seen;
        // With no push in progress, every claimed position was published, so this pop finds an
        // element unless the pop calls (counted as for pushes) could take them all.
        if (tally_.push_calls_in_progress == 0) {
          start.succeed_below = tally_.pushed + tally_.pop_unused_completed + o.count;
        }
        if (start.succeed_below <= tally_.pop_demand_started + o.count) start.succeed_below = 0;
        break;
      case op_kind::drained:
        start.must_drain = tally_.close_completed && tally_.push_calls_in_progress == 0 &&
                           tally_.pop_calls_in_progress == 0 && tally_.pushed == tally_.popped;
        break;
      case op_kind::close:
        break;
    }
    // What the call must do is part of the thread's local state.
    s.observe(static_cast<std::uint64_t>(start.succeed_below) << 8 |
              static_cast<std::uint64_t>(start.close_completed) |
              static_cast<std::uint64_t>(start.drained_seen) << 1 |
              static_cast<std::uint64_t>(start.must_drain) << 2);
    if (s.tracing()) std::printf("    thread %d: starts %s\n", thread, op_name(o.kind));

    switch (o.kind) {
      case op_kind::push:
      case op_kind::push_run:
        ++tally_.push_calls_in_progress;
        tally_.push_demand_started += o.count;
        break;
      case op_kind::pop:
      case op_kind::pop_run:
        ++tally_.pop_calls_in_progress;
        tally_.pop_demand_started += o.count;
        break;
      case op_kind::close:
        tally_.close_started = true;
        break;
      case op_kind::drained:
        break;
    }
  }

  void run_thread(int thread) {
    scheduler& s = scheduler::current();
    if (thread == drain_index()) return run_drain(s);
    const auto& program = scenario_.threads[static_cast<std::size_t>(thread)];
    for (std::size_t index = 0; index < program.size(); ++index) {
      const op& o = program[index];
      s.begin_call();
      current_index_[thread] = index;
      s.defer_call_start();
      const call_start& start = starts_[thread];
      std::size_t result = 0;
      switch (o.kind) {
        case op_kind::push:
        case op_kind::push_run:
          result = run_push(s, thread, o, start);
          break;
        case op_kind::pop:
        case op_kind::pop_run:
          result = run_pop(s, thread, o, start);
          break;
        case op_kind::close:
          run_close(s);
          break;
        case op_kind::drained:
          result = run_drained(s, thread, start);
          break;
      }
      if (s.tracing()) {
        std::printf("    thread %d: %s returns %zu\n", thread, op_name(o.kind), result);
      }
      // The call's outcome is in the bookkeeping now, and the next call depends on nothing
      // else that this one read.
      s.restart_history();
      s.observe(index + 1);
    }
  }

  std::size_t run_push(scheduler& s, int thread, const op& o, const call_start& start) {
    const int first = next_sequence_[thread];
    auto construct = [&](void* at) noexcept {
      const int sequence = next_sequence_[thread]++;
      const std::uint64_t value = element_value(thread, sequence);
      s.observe(value);
      ::new (at) tracked(value);
    };
    std::size_t result = 0;
    if (o.kind == op_kind::push) {
      result = core_->try_push_with(construct) ? 1 : 0;
    } else if constexpr (requires { core_->try_push_run(std::size_t{1}, construct); }) {
      result = core_->try_push_run(static_cast<std::size_t>(o.count), construct);
    } else {
      s.fail("internal: scenario " + scenario_.name + " calls try_push_run, which the core lacks");
    }
    s.settle_call_start();

    const int constructed = next_sequence_[thread] - first;
    if (static_cast<std::size_t>(constructed) != result) {
      s.fail("count_mismatch: thread " + std::to_string(thread) + " constructed " +
             std::to_string(constructed) + " elements in a push call that returned " +
             std::to_string(result));
    }
    if (result > static_cast<std::size_t>(o.count)) {
      s.fail("count_mismatch: a push call for at most " + std::to_string(o.count) +
             " elements returned " + std::to_string(result));
    }
    for (int sequence = first; sequence < next_sequence_[thread]; ++sequence) {
      values_[thread][sequence].pushed = true;
    }
    --tally_.push_calls_in_progress;
    tally_.pushed += static_cast<int>(result);
    tally_.push_unused_completed += o.count - static_cast<int>(result);

    if (result > 0 && start.close_completed) {
      s.fail("push_after_close: thread " + std::to_string(thread) + " pushed " +
             describe_value(element_value(thread, first)) +
             " in a call that started after close() returned");
    }
    if (result == 0 && !tally_.close_started && tally_.push_demand_started < start.succeed_below) {
      s.fail("spurious_full: thread " + std::to_string(thread) + "'s " + op_name(o.kind) +
             " returned 0 on an open ring, although no pop was in progress at its start and the "
             "push calls could not claim all the free slots");
    }
    return result;
  }

  std::size_t run_pop(scheduler& s, int thread, const op& o, const call_start& start) {
    std::size_t taken = 0;
    auto consume = [&](tracked& element) noexcept {
      const std::uint64_t value = element.read();
      s.observe(value);
      record_pop(s, thread, value);
      ++taken;
    };
    std::size_t result = 0;
    if (o.kind == op_kind::pop) {
      result = core_->try_pop_with(consume) ? 1 : 0;
    } else if constexpr (requires { core_->try_pop_run(std::size_t{1}, consume); }) {
      result = core_->try_pop_run(static_cast<std::size_t>(o.count), consume);
    } else {
      s.fail("internal: scenario " + scenario_.name + " calls try_pop_run, which the core lacks");
    }
    s.settle_call_start();

    if (taken != result || result > static_cast<std::size_t>(o.count)) {
      s.fail("count_mismatch: thread " + std::to_string(thread) + " consumed " +
             std::to_string(taken) + " elements in a pop call for at most " +
             std::to_string(o.count) + " that returned " + std::to_string(result));
    }
    --tally_.pop_calls_in_progress;
    tally_.popped += static_cast<int>(result);
    tally_.pop_unused_completed += o.count - static_cast<int>(result);

    if (result > 0 && start.drained_seen) {
      s.fail("drained_too_early: thread " + std::to_string(thread) +
             " popped an element in a call that started after drained() returned true");
    }
    if (result == 0 && tally_.pop_demand_started < start.succeed_below) {
      s.fail("spurious_empty: thread " + std::to_string(thread) + "'s " + op_name(o.kind) +
             " returned 0, although no push was in progress at its start and the elements "
             "pushed by then outnumber what all other pop calls could take");
    }
    return result;
  }

  void record_pop(scheduler& s, int consumer, std::uint64_t value) {
    const int producer = producer_of(value);
    const int sequence = sequence_of(value);
    if (producer < 0 || producer >= drain_index() || sequence >= next_sequence_[producer]) {
      return s.fail("invented: thread " + std::to_string(consumer) + " popped " +
                    describe_value(value) + ", which no producer constructed");
    }
    ++values_[producer][sequence].pops;
    int& next = next_expected_[consumer][producer];
    if (sequence < next) {
      return s.fail("fifo: thread " + std::to_string(consumer) + " popped " +
                    describe_value(value) + " after " +
                    describe_value(element_value(producer, next - 1)));
    }
    next = sequence + 1;
    if (consumer == drain_index() && drain_count_++ == 0) drain_first_ = value;
  }

  void run_close(scheduler&) {
    if constexpr (requires { core_->close(); }) {
      core_->close();
      scheduler::current().settle_call_start();
      tally_.close_completed = true;
    } else {
      scheduler::current().fail("internal: scenario " + scenario_.name +
                                " calls close(), which the core lacks");
    }
  }

  std::size_t run_drained(scheduler& s, int thread, const call_start& start) {
    bool result = false;
    if constexpr (requires { core_->drained(); }) {
      result = core_->drained();
    } else {
      s.fail("internal: scenario " + scenario_.name + " calls drained(), which the core lacks");
    }
    s.settle_call_start();
    if (result) tally_.drained_seen = true;
    // drained() must return true when close() had returned before the call, no push or pop was
    // in progress, and every element pushed had been popped.
    if (!result && start.must_drain) {
      s.fail("drained_false: thread " + std::to_string(thread) +
             "'s drained() returned false, although close() had returned, every pushed element "
             "had been popped and no call was in progress");
    }
    return result ? 1 : 0;
  }

  // The final single-threaded drain: pops until the ring reports no element ready.
  void run_drain(scheduler& s) {
    auto consume = [&](tracked& element) noexcept { record_pop(s, drain_index(), element.read()); };
    for (std::size_t count = 0;; ++count) {
      s.begin_call();
      if (!core_->try_pop_with(consume)) return;
      if (count >= scenario_.capacity) {
        return s.fail("invented: the final drain popped more than capacity() elements");
      }
    }
  }

  const scenario& scenario_;
  alignas(Core) unsigned char core_bytes_[sizeof(Core)];
  Core* core_ = nullptr;
  tally tally_;
  std::array<int, scheduler::max_threads> next_sequence_{};
  std::array<std::array<value_record, 64>, scheduler::max_threads> values_{};
  // Per consumer (the drain last) and producer: one past the highest sequence popped, for the
  // FIFO check. Nothing else about the order of past pops matters to later checks.
  std::array<std::array<int, scheduler::max_threads>, scheduler::max_threads + 1> next_expected_{};
  int drain_count_ = 0;
  std::uint64_t drain_first_ = 0;
  std::array<std::size_t, scheduler::max_threads> current_index_{};
  std::array<call_start, scheduler::max_threads> starts_{};
};

// ---------------------------------------------------------------------------------------------
// The search.

// Explores every execution of the scenario on Core, depth first, until one fails.
template <class Core>
search_result explore(scheduler& s, const scenario& sc) {
  const auto started = std::chrono::steady_clock::now();
  ring_model<Core> model(sc);
  s.set_limits(sc.limits);
  s.set_tracing(false);
  std::unordered_set<hasher, hasher_hash> visited;
  std::vector<int> prefix;
  search_result result;
  for (;;) {
    model.begin(s);
    const execution_end end = s.run_execution(prefix, &visited);
    if (end == execution_end::complete) {
      model.finish(s);
      ++result.complete_executions;
    } else {
      model.abandon();
    }
    ++result.executions;
    if (s.failed()) {
      result.failed = true;
      result.failure = s.failure();
      result.schedule = s.schedule();
      break;
    }

    // Backtrack to the deepest decision with a choice not taken yet.
    auto& decisions = s.decisions();
    while (!decisions.empty() && decisions.back().chosen + 1 >= decisions.back().count) {
      decisions.pop_back();
    }
    if (decisions.empty()) break;
    prefix.clear();
    for (const auto& d : decisions) prefix.push_back(d.chosen);
    ++prefix.back();
  }
  result.states = visited.size();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

// Runs one execution of the scenario on Core along `schedule`, printing every access.
template <class Core>
search_result replay(scheduler& s, const scenario& sc, const std::vector<choice>& schedule) {
  ring_model<Core> model(sc);
  s.set_limits(sc.limits);
  s.set_tracing(true);
  model.begin(s);
  const execution_end end = s.replay(schedule);
  if (end == execution_end::complete) {
    std::printf("  all threads finished; the final drain and end checks run\n");
    model.finish(s);
  } else {
    model.abandon();
  }
  s.set_tracing(false);
  search_result result;
  result.executions = 1;
  result.failed = s.failed();
  result.failure = s.failure();
  result.schedule = s.schedule();
  return result;
}

}  // namespace ringmq_test::interleaving
