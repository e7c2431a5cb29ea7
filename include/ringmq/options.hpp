// ringmq: option tags and policy concepts shared by every layer.
//
// Behaviour is chosen with types passed as a variadic list in any order:
//
//   ringmq::ring<job, ringmq::capacity<1024>, ringmq::producers<ringmq::single>>
//
// Each option kind may appear once. An unknown or repeated option fails to compile with a
// static_assert whose message names the problem; the compiler's "in instantiation of" note
// shows the offending type.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace ringmq {

// ---------------------------------------------------------------------------------------------
// Roles of the two sides of a ring.

// Exactly one thread at a time calls the calls of this side.
struct single {};
// Any number of threads call the calls of this side concurrently.
struct multi {};

template <class Role>
concept side_role = std::same_as<Role, single> || std::same_as<Role, multi>;

// ---------------------------------------------------------------------------------------------
// Wait policies: how a blocking call (push, pop, push_for, pop_for) waits.

// One step of a waiting loop, chosen by a wait policy for the given round.
enum class wait_step : std::uint8_t {
  spin,   // execute a CPU pause instruction and try again
  yield,  // give up the time slice (std::this_thread::yield) and try again
  sleep,  // sleep in the kernel until the other side signals progress, close() or the deadline
};

// A wait policy maps the round of a waiting loop (0, 1, 2, ...) to a step. A policy that never
// returns wait_step::sleep declares `can_sleep = false`, and the ring then skips the
// bookkeeping that wakes sleepers on every push and pop.
// clang-format 14 mangles a noexcept compound requirement, so it skips this concept.
// clang-format off
template <class P>
concept wait_policy = requires(std::uint32_t round) {
  { P::step(round) } noexcept -> std::same_as<wait_step>;
  { P::can_sleep } -> std::convertible_to<bool>;
};
// clang-format on

// Busy-waits with the CPU's pause instruction. Lowest latency, burns a core while waiting.
struct spin {
  static constexpr bool can_sleep = false;
  static constexpr wait_step step(std::uint32_t) noexcept { return wait_step::spin; }
};

// Spins briefly, then yields the time slice on every round. For oversubscribed machines where
// the thread being waited for may need this core.
struct yield {
  static constexpr bool can_sleep = false;
  static constexpr wait_step step(std::uint32_t round) noexcept {
    return round < 64 ? wait_step::spin : wait_step::yield;
  }
};

// Spins, then yields a few times, then sleeps in the kernel. Waking a sleeping thread costs tens
// of microseconds on a virtual machine, while a spinning handoff costs well under one, so park
// spins long enough to cover a typical cross-core handoff before it sleeps.
struct park {
  static constexpr bool can_sleep = true;
  static constexpr std::uint32_t spin_rounds = 2048;
  static constexpr std::uint32_t yield_rounds = 16;
  static constexpr wait_step step(std::uint32_t round) noexcept {
    if (round < spin_rounds) return wait_step::spin;
    if (round < spin_rounds + yield_rounds) return wait_step::yield;
    return wait_step::sleep;
  }
};

// ---------------------------------------------------------------------------------------------
// Slot layouts of the ring's storage.

// Every slot starts on its own cache line, so threads working on neighbouring slots never
// invalidate each other's lines. Costs up to a cache line per slot for small elements.
struct padded {};
// Slots are stored back to back. Densest; neighbouring slots share cache lines.
struct packed {};

template <class L>
concept slot_layout_kind = std::same_as<L, padded> || std::same_as<L, packed>;

// ---------------------------------------------------------------------------------------------
// Option tags.

// Fixes the capacity at compile time and stores the slots inline in the ring object.
template <std::size_t N>
struct capacity {
  static_assert(N > 0, "ringmq::capacity<N>: N must be at least 1");
  static constexpr std::size_t value = N;
};

// How many threads may push at the same time: producers<single> or producers<multi>.
template <class Role>
struct producers {
  static_assert(side_role<Role>,
                "ringmq::producers<Role>: Role must be ringmq::single or ringmq::multi");
  using type = Role;
};

// How many threads may pop at the same time: consumers<single> or consumers<multi>.
template <class Role>
struct consumers {
  static_assert(side_role<Role>,
                "ringmq::consumers<Role>: Role must be ringmq::single or ringmq::multi");
  using type = Role;
};

// How blocking calls wait: wait<spin>, wait<yield>, wait<park> or a type that fits wait_policy.
template <class Policy>
struct wait {
  static_assert(wait_policy<Policy>,
                "ringmq::wait<Policy>: Policy must fit ringmq::wait_policy: a static noexcept "
                "step(std::uint32_t) returning ringmq::wait_step and a static bool can_sleep");
  using type = Policy;
};

// The allocator for runtime-capacity storage; it is rebound to the ring's slot type.
template <class Alloc>
struct allocator {
  using type = Alloc;
};

// How slots are laid out in memory: slot_layout<padded> or slot_layout<packed>.
template <class Layout>
struct slot_layout {
  static_assert(slot_layout_kind<Layout>,
                "ringmq::slot_layout<Layout>: Layout must be ringmq::padded or ringmq::packed");
  using type = Layout;
};

namespace detail {

// Capacity value meaning "given to the constructor".
inline constexpr std::size_t runtime_capacity = 0;

template <class T>
inline constexpr bool always_false = false;

// Classifies one option; every kind has its own tag so that repeats can be counted.
struct capacity_kind {};
struct producers_kind {};
struct consumers_kind {};
struct wait_kind {};
struct allocator_kind {};
struct layout_kind {};
struct unknown_kind {};

template <class O>
struct option_kind {
  using type = unknown_kind;
};
template <std::size_t N>
struct option_kind<capacity<N>> {
  using type = capacity_kind;
};
template <class R>
struct option_kind<producers<R>> {
  using type = producers_kind;
};
template <class R>
struct option_kind<consumers<R>> {
  using type = consumers_kind;
};
template <class P>
struct option_kind<wait<P>> {
  using type = wait_kind;
};
template <class A>
struct option_kind<allocator<A>> {
  using type = allocator_kind;
};
template <class L>
struct option_kind<slot_layout<L>> {
  using type = layout_kind;
};

template <class Kind, class... Options>
inline constexpr std::size_t count_of_kind =
    (std::size_t{0} + ... + (std::is_same_v<typename option_kind<Options>::type, Kind> ? 1 : 0));

// Fails to compile for an option that is not a ringmq option tag. The instantiation note names O.
template <class O>
constexpr bool check_known_option() {
  static_assert(!std::is_same_v<typename option_kind<O>::type, unknown_kind>,
                "ringmq: unknown option; expected capacity<N>, producers<R>, consumers<R>, "
                "wait<P>, allocator<A> or slot_layout<L>");
  return true;
}

// Fails to compile when an option kind appears more than once in the list.
template <class Kind, class... Options>
constexpr bool check_not_repeated() {
  static_assert(count_of_kind<Kind, Options...> <= 1,
                "ringmq: an option kind is given more than once; give each of capacity, "
                "producers, consumers, wait, allocator and slot_layout at most once");
  return true;
}

// The option of kind Kind in Options, or Default when there is none.
template <class Kind, class Default, class... Options>
struct find_option {
  using type = Default;
};
template <class Kind, class Default, class First, class... Rest>
struct find_option<Kind, Default, First, Rest...> {
  using type = std::conditional_t<std::is_same_v<typename option_kind<First>::type, Kind>, First,
                                  typename find_option<Kind, Default, Rest...>::type>;
};

// The parsed option list of a ring: every slot filled with the given option or its default.
template <class T, class... Options>
struct ring_options {
  static constexpr bool all_known = (check_known_option<Options>() && ...);
  static constexpr bool none_repeated = check_not_repeated<capacity_kind, Options...>() &&
                                        check_not_repeated<producers_kind, Options...>() &&
                                        check_not_repeated<consumers_kind, Options...>() &&
                                        check_not_repeated<wait_kind, Options...>() &&
                                        check_not_repeated<allocator_kind, Options...>() &&
                                        check_not_repeated<layout_kind, Options...>();

  static constexpr std::size_t capacity_value =
      find_option<capacity_kind, capacity<1>, Options...>::type::value *
      (count_of_kind<capacity_kind, Options...> == 1 ? 1 : runtime_capacity);
  using producer_role =
      typename find_option<producers_kind, producers<multi>, Options...>::type::type;
  using consumer_role =
      typename find_option<consumers_kind, consumers<multi>, Options...>::type::type;
  using wait_policy = typename find_option<wait_kind, wait<park>, Options...>::type::type;
  using allocator_type =
      typename find_option<allocator_kind, allocator<std::allocator<T>>, Options...>::type::type;
  using layout = typename find_option<layout_kind, slot_layout<padded>, Options...>::type::type;
};

}  // namespace detail
}  // namespace ringmq
