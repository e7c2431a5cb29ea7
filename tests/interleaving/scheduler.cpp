#include "scheduler.hpp"

#include <cstdlib>
#include <sstream>

namespace ringmq_test::interleaving {
namespace {

// AddressSanitizer needs a notice when the stack changes under it, or it reports the fiber's
// frames as stack overflows and misses their errors.
void start_switch(void** fake_stack_save, const void* bottom, std::size_t size) {
#if defined(RINGMQ_INTERLEAVING_ASAN)
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save;
  (void)bottom;
  (void)size;
#endif
}

void finish_switch(void* fake_stack_save, const void** bottom_old, std::size_t* size_old) {
#if defined(RINGMQ_INTERLEAVING_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
  (void)fake_stack_save;
  (void)bottom_old;
  (void)size_old;
#endif
}

}  // namespace

#if RINGMQ_INTERLEAVING_FAST_SWITCH
// Saves the callee-saved registers on the current stack, stores the stack pointer in *save,
// loads `load` as the stack pointer and pops the registers saved there. swapcontext does the
// same plus a system call for the signal mask, which took most of the search's time.
extern "C" void ringmq_interleaving_switch(void** save, void* load);
asm(R"(
  .pushsection .text
  .globl ringmq_interleaving_switch
  .type ringmq_interleaving_switch, @function
ringmq_interleaving_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size ringmq_interleaving_switch, .-ringmq_interleaving_switch
  .popsection
)");
#endif

std::string format_schedule(const std::vector<choice>& schedule) {
  std::string text;
  for (const choice& c : schedule) {
    if (!text.empty()) text += ' ';
    text += std::to_string(c.thread);
    if (c.spurious) text += '*';
  }
  return text;
}

bool parse_schedule(const std::string& text, std::vector<choice>& schedule) {
  std::istringstream words(text);
  std::string word;
  while (words >> word) {
    choice c;
    if (word.back() == '*') {
      c.spurious = true;
      word.pop_back();
    }
    if (word.empty() || word.find_first_not_of("0123456789") != std::string::npos) return false;
    c.thread = std::stoi(word);
    if (c.thread >= scheduler::max_threads) return false;
    schedule.push_back(c);
  }
  return true;
}

scheduler::scheduler() {
  current_ = this;
  for (thread_state& t : threads_) t.stack = std::make_unique<unsigned char[]>(stack_size);
}

bool scheduler::before_access(access_kind kind, const cell* target, std::uint64_t expected) {
  if (running_ < 0) return false;
  thread_state& t = threads_[running_];
  if (++t.accesses_in_call > limits_.accesses_per_call) {
    fail("livelock: thread " + std::to_string(running_) + " made more than " +
         std::to_string(limits_.accesses_per_call) +
         " shared accesses in one try call without returning");
  }
  if (failed()) abandon();
  if (running_ == drain_thread_) return false;
  t.pending = kind;
  t.pending_target = target;
  t.pending_expected = expected;
  suspend(false);

  // The scheduler chose this thread: the access runs now. The history counts scheduling points,
  // so that two points with no value read between them are different states.
  t.history.add(static_cast<std::uint64_t>(kind));
  const bool spurious = t.spurious_next;
  t.spurious_next = false;
  if (spurious) ++t.spurious_in_call;
  t.pending = access_kind::local;
  t.pending_target = nullptr;
  if (t.start_pending) {
    t.start_pending = false;
    call_start_(model_, running_);
  }
  return spurious;
}

void scheduler::trace_access(const char* what, const cell* target, std::uint64_t result) const {
  if (!tracing_ || running_ < 0) return;
  std::printf("    thread %d: %s atomic #%d -> %llu\n", running_, what, target->index(),
              static_cast<unsigned long long>(result));
}

void scheduler::begin_call() noexcept {
  if (running_ < 0) return;
  threads_[running_].accesses_in_call = 0;
  threads_[running_].spurious_in_call = 0;
}

void scheduler::fail(const std::string& message) {
  if (failure_.empty()) failure_ = message;
}

void scheduler::abandon() {
  suspend(true);
  std::abort();  // an abandoned thread is never resumed
}

void scheduler::begin_execution(int count, bool with_drain, void* model, thread_body body,
                                state_hook hash_model, thread_body call_start) {
  if (count < 1 || count > max_threads) {
    std::fprintf(stderr, "interleaving: %d threads requested; pass 1 to %d\n", count, max_threads);
    std::abort();
  }
  thread_count_ = count;
  drain_thread_ = with_drain ? count : -1;
  model_ = model;
  body_ = body;
  hash_model_ = hash_model;
  call_start_ = call_start;
  running_ = -1;
  cells_.clear();
  decisions_.clear();
  failure_.clear();
  for (int i = 0; i <= max_threads; ++i) {
    thread_state& t = threads_[i];
    t.history = hasher{};
    t.finished = false;
    t.pending = access_kind::local;
    t.pending_target = nullptr;
    t.pending_expected = 0;
    t.spurious_next = false;
    t.start_pending = false;
    t.accesses_in_call = 0;
    t.spurious_in_call = 0;
    t.fake_stack = nullptr;
  }
}

void scheduler::start_thread(int thread) {
  thread_state& t = threads_[thread];
#if defined(RINGMQ_INTERLEAVING_ASAN)
  // An abandoned execution leaves its frames' redzones poisoned on the reused stack.
  ASAN_UNPOISON_MEMORY_REGION(t.stack.get(), stack_size);
#endif
#if RINGMQ_INTERLEAVING_FAST_SWITCH
  // The first switch pops six zero registers and returns into fiber_main with the stack
  // aligned as after a call. The zero above it ends stack traces.
  auto top = reinterpret_cast<std::uintptr_t>(t.stack.get() + stack_size) & ~std::uintptr_t{15};
  auto* frame = reinterpret_cast<void**>(top) - 8;
  for (int i = 0; i < 6; ++i) frame[i] = nullptr;
  frame[6] = reinterpret_cast<void*>(&scheduler::fiber_main);
  frame[7] = nullptr;
  t.stack_pointer = frame;
#else
  getcontext(&t.context);
  t.context.uc_stack.ss_sp = t.stack.get();
  t.context.uc_stack.ss_size = stack_size;
  t.context.uc_link = nullptr;
  makecontext(&t.context, &scheduler::fiber_main, 0);
#endif
}

void scheduler::fiber_main() {
  scheduler& s = *current_;
  finish_switch(nullptr, &s.main_stack_bottom_, &s.main_stack_size_);
  const int thread = s.running_;
  s.body_(s.model_, thread);
  s.threads_[thread].finished = true;
  s.suspend(true);
  std::abort();  // a finished thread is never resumed
}

void scheduler::resume(int thread) {
  running_ = thread;
  thread_state& t = threads_[thread];
  start_switch(&main_fake_stack_, t.stack.get(), stack_size);
#if RINGMQ_INTERLEAVING_FAST_SWITCH
  ringmq_interleaving_switch(&main_stack_pointer_, t.stack_pointer);
#else
  swapcontext(&main_context_, &t.context);
#endif
  finish_switch(main_fake_stack_, nullptr, nullptr);
  running_ = -1;
}

void scheduler::suspend(bool finished) {
  thread_state& t = threads_[running_];
  start_switch(finished ? nullptr : &t.fake_stack, main_stack_bottom_, main_stack_size_);
#if RINGMQ_INTERLEAVING_FAST_SWITCH
  ringmq_interleaving_switch(&t.stack_pointer, main_stack_pointer_);
#else
  swapcontext(&t.context, &main_context_);
#endif
  finish_switch(t.fake_stack, nullptr, nullptr);
}

void scheduler::collect_choices(std::vector<choice>& choices) const {
  choices.clear();
  for (int i = 0; i < thread_count_; ++i) {
    const thread_state& t = threads_[i];
    if (t.finished) continue;
    choices.push_back({i, false});
    if (t.pending == access_kind::cas_weak && t.pending_target->raw() == t.pending_expected &&
        t.spurious_in_call < limits_.spurious_per_call) {
      choices.push_back({i, true});
    }
  }
}

hasher scheduler::hash_state() const {
  hasher state;
  state.add(cells_.size());
  for (const cell* c : cells_) state.add(c->raw());
  hash_model_(model_, state);
  for (int i = 0; i < thread_count_; ++i) {
    state.add(threads_[i].history.low());
    state.add(threads_[i].history.high());
    state.add(threads_[i].finished ? 1 : 0);
  }
  return state;
}

template <class Pick>
execution_end scheduler::drive(Pick&& pick) {
  // Each thread runs its local code up to its first scheduling point.
  for (int i = 0; i < thread_count_; ++i) {
    start_thread(i);
    resume(i);
    if (failed()) return execution_end::failed;
  }
  for (std::size_t depth = 0;; ++depth) {
    collect_choices(choices_);
    if (choices_.empty()) return execution_end::complete;
    const int index = pick(depth);
    if (failed()) return execution_end::failed;
    if (index < 0) return execution_end::pruned;
    const choice c = choices_[static_cast<std::size_t>(index)];
    decisions_.push_back({index, static_cast<int>(choices_.size()), c});
    if (tracing_) {
      std::printf("  decision %zu: thread %d%s\n", depth, c.thread,
                  c.spurious ? " (compare_exchange_weak fails spuriously)" : "");
    }
    threads_[c.thread].spurious_next = c.spurious;
    resume(c.thread);
    if (failed()) return execution_end::failed;
  }
}

execution_end scheduler::run_execution(const std::vector<int>& prefix,
                                       std::unordered_set<hasher, hasher_hash>* visited) {
  return drive([&](std::size_t depth) -> int {
    if (depth < prefix.size()) {
      const int index = prefix[depth];
      if (index >= static_cast<int>(choices_.size())) {
        fail("internal: the replay of decision " + std::to_string(depth) +
             " found fewer choices than before; the threads' programs are not deterministic");
      }
      return index;
    }
    if (visited != nullptr && !visited->insert(hash_state()).second) return -1;
    return 0;
  });
}

execution_end scheduler::replay(const std::vector<choice>& schedule) {
  return drive([&](std::size_t depth) -> int {
    if (depth >= schedule.size()) return 0;
    for (std::size_t i = 0; i < choices_.size(); ++i) {
      if (choices_[i] == schedule[depth]) return static_cast<int>(i);
    }
    fail("schedule mismatch: decision " + std::to_string(depth) + " chooses thread " +
         std::to_string(schedule[depth].thread) + (schedule[depth].spurious ? "*" : "") +
         ", which cannot run then; check that the schedule belongs to this configuration");
    return -1;
  });
}

std::vector<choice> scheduler::schedule() const {
  std::vector<choice> result;
  result.reserve(decisions_.size());
  for (const decision& d : decisions_) result.push_back(d.picked);
  return result;
}

void scheduler::run_drain() {
  start_thread(drain_thread_);
  resume(drain_thread_);
}

}  // namespace ringmq_test::interleaving
