// ringmq internals: preemption points, the protocol steps where a test build can make a thread
// give up its core.
//
// RINGMQ_PREEMPTION_POINT() marks a step of a concurrent protocol where a thread that loses its
// core leaves the shared state half changed. Examples are the steps after a claim and before the
// publication that completes it, between two stores that a reader may observe apart, and between
// a sleeper's registration and its recheck. Without RINGMQ_TEST_HOOKS the macro expands to a
// no-op expression, so release builds compile to the same code as without the mark.
//
// With RINGMQ_TEST_HOOKS defined, each point calls the function installed with
// set_preemption_hook(), or does nothing while none is installed. The stress tests build a
// second executable this way, whose hook calls std::this_thread::yield() at random points while
// every thread runs on one core (docs/testing.md).
//
// Never define RINGMQ_TEST_HOOKS in a program that mixes translation units built with and
// without it. The library is header-only, so the two groups would compile different bodies for
// the same inline functions, which breaks the one-definition rule. The linker keeps one body of
// each function, and which points run then depends on which copy it kept.
#pragma once

#if defined(RINGMQ_TEST_HOOKS)

#include <atomic>

namespace ringmq::detail {

// A function that a preemption point calls. It runs inside noexcept functions of the library, so
// it must not throw.
using preemption_hook = void (*)() noexcept;

// The installed hook, or null. Loads are relaxed because the pointer names code, not data that
// another thread writes, so a point that loads an older value only misses one call.
inline std::atomic<preemption_hook> installed_preemption_hook{nullptr};

// Installs `hook` for every later preemption point of every thread; null uninstalls it.
inline void set_preemption_hook(preemption_hook hook) noexcept {
  installed_preemption_hook.store(hook, std::memory_order_relaxed);
}

inline void preemption_point() noexcept {
  if (const preemption_hook hook = installed_preemption_hook.load(std::memory_order_relaxed)) {
    hook();
  }
}

}  // namespace ringmq::detail

#define RINGMQ_PREEMPTION_POINT() ::ringmq::detail::preemption_point()

#else

#define RINGMQ_PREEMPTION_POINT() static_cast<void>(0)

#endif
