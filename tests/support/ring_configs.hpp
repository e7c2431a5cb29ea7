// Ring configurations for TEMPLATE_TEST_CASE: every shape, wait policy, capacity mode and slot
// layout, with lists of them for the test cases to run over.
//
// A configuration builds rings of any element type and capacity through make<T, N>(), which
// passes N to the constructor (runtime capacity) or as ringmq::capacity<N> (inline storage).
// make<T, 1>(n) builds a runtime-capacity ring of capacity n.
// Rings are neither copyable nor movable, so make() returns them in a unique_ptr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include <ringmq/ring.hpp>

namespace ringmq_test {

// Which sides of the ring several threads may use at once.
template <class ProducerRole, class ConsumerRole>
struct shape {
  using producers = ringmq::producers<ProducerRole>;
  using consumers = ringmq::consumers<ConsumerRole>;
  static constexpr bool multi_producer = std::is_same_v<ProducerRole, ringmq::multi>;
  static constexpr bool multi_consumer = std::is_same_v<ConsumerRole, ringmq::multi>;
};

using mpmc = shape<ringmq::multi, ringmq::multi>;
using mpsc = shape<ringmq::multi, ringmq::single>;
using spmc = shape<ringmq::single, ringmq::multi>;
using spsc = shape<ringmq::single, ringmq::single>;

// Capacity modes: given to the constructor, or fixed by ringmq::capacity<N>.
struct runtime_capacity {};
struct static_capacity {};

// A wait policy that goes to sleep on the first round, so every blocking call that has to wait
// takes the kernel sleep and wake path instead of spinning past the race.
struct sleep_only {
  static constexpr bool can_sleep = true;
  static constexpr ringmq::wait_step step(std::uint32_t) noexcept {
    return ringmq::wait_step::sleep;
  }
};

template <class Shape, class WaitPolicy, class CapacityMode, class Layout>
struct ring_config {
  static constexpr bool multi_producer = Shape::multi_producer;
  static constexpr bool multi_consumer = Shape::multi_consumer;
  static constexpr bool runtime = std::is_same_v<CapacityMode, runtime_capacity>;
  using wait_policy = WaitPolicy;
  // Whether blocking calls busy-wait without ever giving up the core. Tests that block often
  // run fewer rounds with these, because on a machine with fewer free cores than test threads
  // each wait can cost a whole time slice.
  static constexpr bool spins = std::is_same_v<WaitPolicy, ringmq::spin>;

  template <class T, std::size_t N>
  using ring_type = std::conditional_t<
      runtime,
      ringmq::ring<T, typename Shape::producers, typename Shape::consumers,
                   ringmq::wait<WaitPolicy>, ringmq::slot_layout<Layout>>,
      ringmq::ring<T, ringmq::capacity<N>, typename Shape::producers, typename Shape::consumers,
                   ringmq::wait<WaitPolicy>, ringmq::slot_layout<Layout>>>;

  template <class T, std::size_t N>
  static std::unique_ptr<ring_type<T, N>> make([[maybe_unused]] std::size_t capacity = N) {
    if constexpr (runtime) {
      return std::make_unique<ring_type<T, N>>(capacity);
    } else {
      return std::make_unique<ring_type<T, N>>();
    }
  }
};

// Calls f(ring, n) with a new, empty ring of T for each capacity n in Ns. With runtime
// capacity all rings share one type, so f is compiled once instead of once per capacity.
template <class Config, class T, std::size_t... Ns, class F>
void for_each_capacity(F&& f) {
  if constexpr (Config::runtime) {
    for (const std::size_t n : {Ns...}) {
      f(*Config::template make<T, 1>(n), n);
    }
  } else {
    (f(*Config::template make<T, Ns>(), Ns), ...);
  }
}

}  // namespace ringmq_test

// One alias per configuration, named shape_policy_mode_layout, so that Catch2 shows the name.
#define RINGMQ_TEST_CONFIG(shape_name, policy, mode, layout)                    \
  namespace ringmq_test {                                                       \
  using shape_name##_##policy##_##mode##_##layout =                             \
      ring_config<shape_name, ringmq::policy, mode##_capacity, ringmq::layout>; \
  }

#define RINGMQ_TEST_CONFIGS_FOR_POLICY(policy)      \
  RINGMQ_TEST_CONFIG(mpmc, policy, runtime, padded) \
  RINGMQ_TEST_CONFIG(mpmc, policy, static, padded)  \
  RINGMQ_TEST_CONFIG(mpmc, policy, runtime, packed) \
  RINGMQ_TEST_CONFIG(mpmc, policy, static, packed)  \
  RINGMQ_TEST_CONFIG(mpsc, policy, runtime, padded) \
  RINGMQ_TEST_CONFIG(mpsc, policy, static, padded)  \
  RINGMQ_TEST_CONFIG(mpsc, policy, runtime, packed) \
  RINGMQ_TEST_CONFIG(mpsc, policy, static, packed)  \
  RINGMQ_TEST_CONFIG(spmc, policy, runtime, padded) \
  RINGMQ_TEST_CONFIG(spmc, policy, static, padded)  \
  RINGMQ_TEST_CONFIG(spmc, policy, runtime, packed) \
  RINGMQ_TEST_CONFIG(spmc, policy, static, packed)  \
  RINGMQ_TEST_CONFIG(spsc, policy, runtime, padded) \
  RINGMQ_TEST_CONFIG(spsc, policy, static, padded)  \
  RINGMQ_TEST_CONFIG(spsc, policy, runtime, packed) \
  RINGMQ_TEST_CONFIG(spsc, policy, static, packed)

RINGMQ_TEST_CONFIGS_FOR_POLICY(spin)
RINGMQ_TEST_CONFIGS_FOR_POLICY(yield)
RINGMQ_TEST_CONFIGS_FOR_POLICY(park)

namespace ringmq_test {
using mpmc_sleep_only_runtime_padded =
    ring_config<mpmc, sleep_only, runtime_capacity, ringmq::padded>;
using mpsc_sleep_only_runtime_padded =
    ring_config<mpsc, sleep_only, runtime_capacity, ringmq::padded>;
using spmc_sleep_only_runtime_padded =
    ring_config<spmc, sleep_only, runtime_capacity, ringmq::padded>;
using spsc_sleep_only_runtime_padded =
    ring_config<spsc, sleep_only, runtime_capacity, ringmq::padded>;
}  // namespace ringmq_test

#define RINGMQ_TEST_LAYOUTS_FOR(shape_name, policy, mode) \
  ringmq_test::shape_name##_##policy##_##mode##_padded,   \
      ringmq_test::shape_name##_##policy##_##mode##_packed

#define RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(shape_name, policy) \
  RINGMQ_TEST_LAYOUTS_FOR(shape_name, policy, runtime),       \
      RINGMQ_TEST_LAYOUTS_FOR(shape_name, policy, static)

#define RINGMQ_TEST_SHAPES_PADDED_FOR(policy)                                                  \
  ringmq_test::mpmc_##policy##_runtime_padded, ringmq_test::mpmc_##policy##_static_padded,     \
      ringmq_test::mpsc_##policy##_runtime_padded, ringmq_test::mpsc_##policy##_static_padded, \
      ringmq_test::spmc_##policy##_runtime_padded, ringmq_test::spmc_##policy##_static_padded, \
      ringmq_test::spsc_##policy##_runtime_padded, ringmq_test::spsc_##policy##_static_padded

#define RINGMQ_TEST_ALL_FOR(policy)                    \
  RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(mpmc, policy),     \
      RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(mpsc, policy), \
      RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(spmc, policy), \
      RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(spsc, policy)

#define RINGMQ_TEST_SLEEP_ONLY_SHAPES                                                       \
  ringmq_test::mpmc_sleep_only_runtime_padded, ringmq_test::mpsc_sleep_only_runtime_padded, \
      ringmq_test::spmc_sleep_only_runtime_padded, ringmq_test::spsc_sleep_only_runtime_padded

// The sanitizer builds define RINGMQ_TEST_REDUCED_MATRIX. They run every shape, capacity mode
// and slot layout, but only the wait policies that sleep (park and sleep_only), whose wake-up
// protocol is what the sanitizers add to the dev builds' checks. spin and yield differ from
// park only in how a waiting thread passes its time, which the dev builds test in full.
#ifndef RINGMQ_TEST_REDUCED_MATRIX

// Every shape, wait policy, capacity mode and slot layout: 48 configurations.
#define RINGMQ_ALL_CONFIGS \
  RINGMQ_TEST_ALL_FOR(spin), RINGMQ_TEST_ALL_FOR(yield), RINGMQ_TEST_ALL_FOR(park)

// Every shape, wait policy and capacity mode with padded slots, plus every shape with the
// sleep_only policy: 28 configurations for behaviour where the slot layout plays no part.
#define RINGMQ_WAITING_CONFIGS                                               \
  RINGMQ_TEST_SHAPES_PADDED_FOR(spin), RINGMQ_TEST_SHAPES_PADDED_FOR(yield), \
      RINGMQ_TEST_SHAPES_PADDED_FOR(park), RINGMQ_TEST_SLEEP_ONLY_SHAPES

#else

// Every shape, capacity mode and slot layout with wait<park>: 16 configurations.
#define RINGMQ_ALL_CONFIGS RINGMQ_TEST_ALL_FOR(park)

// Every shape and capacity mode with padded slots and wait<park>, plus every shape with the
// sleep_only policy: 12 configurations.
#define RINGMQ_WAITING_CONFIGS RINGMQ_TEST_SHAPES_PADDED_FOR(park), RINGMQ_TEST_SLEEP_ONLY_SHAPES

#endif

// Every shape, capacity mode and slot layout with wait<park>: 16 configurations for element
// handling, where the wait policy plays no part.
#define RINGMQ_STORAGE_CONFIGS                                                                  \
  RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(mpmc, park), RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(mpsc, park), \
      RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(spmc, park), RINGMQ_TEST_MODES_AND_LAYOUTS_FOR(spsc, park)

// Every shape and slot layout with runtime capacity and wait<park>: 8 configurations for the
// constructor's argument checks.
#define RINGMQ_RUNTIME_CONFIGS                                                                \
  RINGMQ_TEST_LAYOUTS_FOR(mpmc, park, runtime), RINGMQ_TEST_LAYOUTS_FOR(mpsc, park, runtime), \
      RINGMQ_TEST_LAYOUTS_FOR(spmc, park, runtime), RINGMQ_TEST_LAYOUTS_FOR(spsc, park, runtime)
