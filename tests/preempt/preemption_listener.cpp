// Installs the preemption hook for the stress tests of the preempt executable, which is built
// with RINGMQ_TEST_HOOKS and runs with every thread pinned to one core (docs/testing.md).
//
// At each RINGMQ_PREEMPTION_POINT() the hook yields the core with probability 1/4, so another
// thread runs while this one is between two steps of a protocol. Each thread draws from its own
// generator, seeded from the run's seed and the order in which threads first reach a point. The
// seed comes from RINGMQ_PREEMPT_SEED, or from std::random_device when that is unset, and is
// printed at the start. The kernel still decides which thread runs after a yield, so a seed
// reproduces the yields of a run, not its whole schedule: rerun a failing seed several times.
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

// Declares Catch::TestEventListenerBase and CATCH_REGISTER_LISTENER.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>
#include <ringmq/detail/preemption.hpp>

namespace {

// The run's seed, and the count of threads that have drawn a number, which numbers them.
std::uint64_t run_seed = 0;
std::atomic<std::uint64_t> threads_seeded{0};

// SplitMix64: a fast generator with a 64-bit state, whose outputs also seed well.
std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  state += 0x9e3779b97f4a7c15;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

std::uint64_t thread_state() noexcept {
  // Relaxed: the counter only has to give each thread a different number.
  std::uint64_t state = run_seed ^ (threads_seeded.fetch_add(1, std::memory_order_relaxed) *
                                    0xd1b54a32d192ed03);
  splitmix64(state);
  return state;
}

void yield_sometimes() noexcept {
  thread_local std::uint64_t state = thread_state();
  if ((splitmix64(state) & 3) == 0) std::this_thread::yield();
}

// Reads RINGMQ_PREEMPT_SEED, or draws a seed when it is unset. Exits on a value that is not a
// decimal unsigned 64-bit number.
std::uint64_t seed_from_environment() {
  const char* text = std::getenv("RINGMQ_PREEMPT_SEED");
  if (text == nullptr || *text == '\0') {
    std::random_device device;
    return (std::uint64_t{device()} << 32) | device();
  }
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || *text == '-') {
    std::fprintf(stderr,
                 "invalid RINGMQ_PREEMPT_SEED '%s': expected a decimal number below 2^64, such "
                 "as the seed that a failed run printed\n",
                 text);
    std::exit(EXIT_FAILURE);
  }
  return value;
}

int allowed_cpu_count() noexcept {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 0;
  return CPU_COUNT(&allowed);
}

struct preemption_listener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;

  void testRunStarting(const Catch::TestRunInfo& info) override {
    run_seed = seed_from_environment();
    std::fprintf(stderr,
                 "preemption points yield 1 time in 4; seed %llu (rerun with "
                 "RINGMQ_PREEMPT_SEED=%llu); threads may run on %d CPU(s)\n",
                 static_cast<unsigned long long>(run_seed),
                 static_cast<unsigned long long>(run_seed), allowed_cpu_count());
    ringmq::detail::set_preemption_hook(&yield_sometimes);
    TestEventListenerBase::testRunStarting(info);
  }

  void testRunEnded(const Catch::TestRunStats& stats) override {
    ringmq::detail::set_preemption_hook(nullptr);
    TestEventListenerBase::testRunEnded(stats);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(preemption_listener)
