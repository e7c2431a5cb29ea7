// Detects the preempt build of the stress tests (tests/preempt), so that they can scale down.
#pragma once

namespace ringmq_test {

// True in the preempt build: the stress tests built with RINGMQ_TEST_HOOKS and run with every
// thread on one CPU, where each preemption point may yield it. There every blocked call waits
// for a time slice instead of for another core, so stress tests run a quarter of their items.
#if defined(RINGMQ_TEST_HOOKS)
inline constexpr bool preempt_build = true;
#else
inline constexpr bool preempt_build = false;
#endif

// Divides a stress test's item count for the preempt build; other builds keep `count`.
constexpr auto preempt_scaled(auto count) { return preempt_build ? count / 4 : count; }

}  // namespace ringmq_test
