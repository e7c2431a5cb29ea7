// ringmq::ring: a bounded lock-free ring buffer of T for one to many producers and consumers.
//
//   ringmq::ring<job> jobs(1024);                      // MPMC, blocking calls park
//   ringmq::ring<job, ringmq::capacity<256>,           // storage inline in the object,
//                ringmq::producers<ringmq::single>,    // one pushing thread at a time,
//                ringmq::consumers<ringmq::single>,    // one popping thread at a time,
//                ringmq::wait<ringmq::spin>> frames;   // blocking calls busy-wait
//
// Shapes. Every shape uses a turn counter per slot (Vyukov's bounded queue), so a waiting
// consumer watches the slot it will take and no line the other side writes on every call.
// producers<single|multi> and consumers<single|multi> pick how each side takes a position: a
// side with several threads claims it with one CAS, a single thread just stores its counter,
// so SPSC calls are wait-free and run no read-modify-write. detail/turn_ring.hpp has the
// protocol.
//
// Guarantees.
// - Exactly capacity() elements fit, for every capacity >= 1. No value of T is reserved.
// - try_ calls and size() are lock-free; SPSC calls are wait-free. No mutex on any path.
// - Memory order: a push happens before the pop that returns its element (push releases, pop
//   acquires). Elements pushed by one producer are popped in the order they were pushed.
// - size() is exact when no call is in progress, and otherwise between 0 and capacity().
// - close() wakes every blocked call. Pushes then fail; pops return what is left, then report
//   the ring drained. With producers<multi>, every push that returned true before or during
//   close() is returned by some pop. For a single producer, see the NOTE at close() in
//   detail/turn_ring.hpp.
// - Elements left in the ring are destroyed with it. A try_push that fails leaves its argument
//   untouched. A constructor that throws in try_emplace or emplace leaves the ring unchanged.
// - Blocking calls cost nothing extra when no thread waits. With wait<park>, each push and pop
//   also reads a count of sleeping threads, on a line that only sleepers write, and makes the
//   wake-up system call only when that count is not zero.
//
// Requirements on T: its move constructor and destructor are noexcept. Move-only,
// non-default-constructible and over-aligned types work.
//
// Misuse. With debug checks on (NDEBUG not defined, or RINGMQ_DEBUG_CHECKS=1), a call of a side
// declared single that finds another call of that side running prints what went wrong and calls
// std::abort(); detail/debug_check.hpp has the rule. Release builds compile the check away.
// docs/ring.md lists the result of each misuse: bad capacities, odd timeouts, overlapping calls.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "ringmq/detail/debug_check.hpp"
#include "ringmq/detail/turn_ring.hpp"
#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"

namespace ringmq {

// A type the ring can store: moving it in and out of a claimed slot cannot fail.
template <class T>
concept ring_element = std::is_object_v<T> && !std::is_array_v<T> && !std::is_const_v<T> &&
                       std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>;

template <class T, class... Options>
class ring {
  static_assert(ring_element<T>,
                "ringmq::ring<T>: T's move constructor and destructor must be noexcept, and T "
                "must be a non-const, non-array object type; the ring moves an element after "
                "it has claimed a slot and cannot undo the claim");

  using options = detail::ring_options<T, Options...>;
  static_assert(options::all_known && options::none_repeated);

  using wait_type = typename options::wait_policy;
  static constexpr bool can_sleep = wait_type::can_sleep;

  using core_type =
      detail::turn_ring<T, typename options::producer_role, typename options::consumer_role,
                        options::capacity_value, typename options::layout,
                        typename options::allocator_type>;

  static constexpr bool has_static_capacity = options::capacity_value != detail::runtime_capacity;
  // A slot contains T and a 64-bit turn counter, padded to at most max(cache line, alignof(T)).
  static_assert(!has_static_capacity ||
                    options::capacity_value <=
                        static_cast<std::size_t>(PTRDIFF_MAX) /
                            (sizeof(T) + 8 + std::max(detail::cache_line, alignof(T))),
                "ringmq::capacity<N>: N is too large: N slots of T do not fit in one object; "
                "pass a smaller N, or leave out capacity<N> and pass the capacity to the "
                "constructor, which allocates the slots");

  // With debug checks on, each side declared single catches a second thread inside its calls.
  struct producer_side {};
  struct consumer_side {};
  static constexpr bool check_producers =
      detail::debug_checks && std::is_same_v<typename options::producer_role, single>;
  static constexpr bool check_consumers =
      detail::debug_checks && std::is_same_v<typename options::consumer_role, single>;
  using producer_check = detail::single_caller_check<producer_side, check_producers>;
  using consumer_check = detail::single_caller_check<consumer_side, check_consumers>;

 public:
  using value_type = T;
  using size_type = std::size_t;
  using allocator_type = typename options::allocator_type;

  // Creates an empty ring that holds exactly `capacity` elements.
  // Throws std::invalid_argument for 0 and std::length_error when the storage size overflows.
  explicit ring(std::size_t capacity,
                const allocator_type& alloc = allocator_type()) requires(!has_static_capacity)
      : core_(capacity, alloc) {}

  // Creates an empty ring with the capacity given by the capacity<N> option, stored inline.
  ring() requires(has_static_capacity) : core_(options::capacity_value) {}

  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;

  // Non-blocking calls. Each returns false, leaving its argument untouched, when the ring is
  // full or closed.

  [[nodiscard]] bool try_push(T&& value) noexcept {
    [[maybe_unused]] const auto check = enter_producer();
    return finish_push(
        core_.try_push_with([&](void* at) noexcept { ::new (at) T(std::move(value)); }));
  }

  [[nodiscard]] bool try_push(const T& value) { return try_emplace(value); }

  // Constructs the element from args in place. With producers<multi> and a constructor that
  // may throw, the element is built before a slot is claimed, from copies of args so that a
  // failed call leaves them unchanged, and then moved in. Either way an exception from the
  // constructor leaves the ring unchanged.
  template <class... Args>
    requires std::constructible_from<T, Args...>
  [[nodiscard]] bool try_emplace(Args&&... args) {
    if constexpr (std::is_nothrow_constructible_v<T, Args...> || core_type::construct_may_throw) {
      [[maybe_unused]] const auto check = enter_producer();
      return finish_push(core_.try_push_with(
          [&](void* at) noexcept(std::is_nothrow_constructible_v<T, Args...>) {
            ::new (at) T(std::forward<Args>(args)...);
          }));
    } else if constexpr (std::is_constructible_v<T, const std::remove_reference_t<Args>&...>) {
      T element(std::as_const(args)...);
      return try_push(std::move(element));
    } else {
      // NOTE: T can only be built by moving from args and that may throw, so args are moved
      // from before the ring knows whether it has room, and a failed call leaves them empty.
      T element(std::forward<Args>(args)...);
      return try_push(std::move(element));
    }
  }

  // Pops the oldest ready element, or returns an empty optional when none is ready.
  [[nodiscard]] std::optional<T> try_pop() noexcept {
    [[maybe_unused]] const auto check = enter_consumer();
    std::optional<T> result;
    finish_pop(
        core_.try_pop_with([&](T& element) noexcept { result.emplace(std::move(element)); }));
    return result;
  }

  // Move-assigns the oldest ready element to out and returns true, or returns false.
  [[nodiscard]] bool try_pop(T& out) noexcept requires std::is_nothrow_move_assignable_v<T> {
    [[maybe_unused]] const auto check = enter_consumer();
    return finish_pop(core_.try_pop_with([&](T& element) noexcept { out = std::move(element); }));
  }

  // Moves elements from [first, last) in order until the ring is full or closed, and returns how
  // many it moved: the elements of [first, first + count) are in the ring.
  template <std::input_iterator It, std::sentinel_for<It> End>
  std::size_t try_push_bulk(It first, End last) noexcept {
    static_assert(std::is_nothrow_constructible_v<T, std::iter_rvalue_reference_t<It>>,
                  "ringmq::ring::try_push_bulk: constructing T from std::move(*first) must be "
                  "noexcept; pass iterators over T");
    [[maybe_unused]] const auto check = enter_producer();
    std::size_t count = 0;
    if constexpr (std::sized_sentinel_for<End, It>) {
      // The length is known, so the whole run is claimed at once.
      const auto length = static_cast<std::size_t>(std::max<std::iter_difference_t<It>>(last - first, 0));
      count = core_.try_push_run(length, [&](void* at) noexcept {
        ::new (at) T(std::ranges::iter_move(first));
        ++first;
      });
    } else {
      for (; first != last; ++first, ++count) {
        if (!core_.try_push_with(
                [&](void* at) noexcept { ::new (at) T(std::ranges::iter_move(first)); })) {
          break;
        }
      }
    }
    finish_push(count != 0);
    return count;
  }

  // Pops up to max elements in order, writing each to *out++, and returns how many it popped.
  template <class Out>
  std::size_t try_pop_bulk(Out out, std::size_t max) noexcept {
    static_assert(noexcept(*out = std::declval<T&&>())&& noexcept(++out),
                  "ringmq::ring::try_pop_bulk: writing to the output iterator must not throw, "
                  "or a popped element could be lost; write into storage with room for max "
                  "elements (a pointer, or vector::data() after resize) instead of an inserter");
    [[maybe_unused]] const auto check = enter_consumer();
    const std::size_t count = core_.try_pop_run(max, [&](T& element) noexcept {
      *out = std::move(element);
      ++out;
    });
    finish_pop(count != 0);
    return count;
  }

  // Blocking calls. They wait as the wait policy says; push returns false and pop returns an
  // empty optional once the ring is closed (pop after draining what is left). The _for forms
  // also give up when the timeout, measured on std::chrono::steady_clock, passes. A zero or
  // negative timeout makes one attempt; a timeout past the clock's range never expires.

  bool push(T&& value) { return push_until(std::move(value), detail::steady_time::max()); }
  bool push(const T& value) { return emplace(value); }

  template <class... Args>
    requires std::constructible_from<T, Args...>
  bool emplace(Args&&... args) {
    if constexpr (std::is_nothrow_constructible_v<T, Args...> || core_type::construct_may_throw) {
      return wait_until<side::producer>(
          [&] {
            return core_.try_push_with(
                [&](void* at) noexcept(std::is_nothrow_constructible_v<T, Args...>) {
                  ::new (at) T(std::forward<Args>(args)...);
                });
          },
          detail::steady_time::max());
    } else {
      return push(T(std::forward<Args>(args)...));
    }
  }

  template <class Rep, class Period>
  bool push_for(T&& value, std::chrono::duration<Rep, Period> timeout) {
    return push_until(std::move(value), detail::deadline_after(timeout));
  }

  template <class Rep, class Period>
  bool push_for(const T& value, std::chrono::duration<Rep, Period> timeout) {
    return push_until(T(value), detail::deadline_after(timeout));
  }

  std::optional<T> pop() { return pop_until(detail::steady_time::max()); }

  template <class Rep, class Period>
  std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout) {
    return pop_until(detail::deadline_after(timeout));
  }

  // Observers and close.

  // The number of elements in the ring: exact when no call is in progress, and never above
  // capacity(). While calls run it is a snapshot that may already be out of date.
  std::size_t size() const noexcept { return core_.size(); }
  bool empty() const noexcept { return size() == 0; }
  std::size_t capacity() const noexcept { return core_.capacity(); }

  // Closes the ring and wakes every blocked call. Idempotent.
  void close() noexcept {
    core_.close();
    sides_.wake_all_sides();
  }

  bool is_closed() const noexcept { return core_.is_closed(); }

 private:
  // Wake channels exist only for wait policies that sleep; each lives on its own cache line
  // because producers read one on every push and consumers the other on every pop.
  struct sleeping_sides {
    alignas(detail::cache_line) detail::wake_channel not_empty;
    alignas(detail::cache_line) detail::wake_channel not_full;

    void wake_all_sides() noexcept {
      not_empty.wake();
      not_full.wake();
    }
  };
  struct spinning_sides {
    void wake_all_sides() noexcept {}
  };

  bool finish_push(bool pushed) noexcept {
    if constexpr (can_sleep) {
      if (pushed) sides_.not_empty.wake();
    }
    return pushed;
  }

  bool finish_pop(bool popped) noexcept {
    if constexpr (can_sleep) {
      if (popped) sides_.not_full.wake();
    }
    return popped;
  }

  enum class side { producer, consumer };

  // Marks a call of one side as running until the returned scope ends. Each call that touches
  // core_ enters once, and calls of the same side never nest, so only a second thread (or a
  // call made from inside T's constructor) finds the side busy.
  typename producer_check::scope enter_producer() noexcept {
    return producer_check_.enter(
        "two threads called push functions of a ring with producers<single> at the same time, "
        "or a push was called from inside another; give the ring producers<multi>, or let one "
        "call return before the next begins, handing the producer role over with a mutex, a "
        "join or another synchronization");
  }
  typename consumer_check::scope enter_consumer() noexcept {
    return consumer_check_.enter(
        "two threads called pop functions of a ring with consumers<single> at the same time, "
        "or a pop was called from inside another; give the ring consumers<multi>, or let one "
        "call return before the next begins, handing the consumer role over with a mutex, a "
        "join or another synchronization");
  }

  bool push_until(T&& value, detail::steady_time deadline) {
    return wait_until<side::producer>(
        [&] {
          return core_.try_push_with([&](void* at) noexcept { ::new (at) T(std::move(value)); });
        },
        deadline);
  }

  std::optional<T> pop_until(detail::steady_time deadline) {
    std::optional<T> result;
    wait_until<side::consumer>(
        [&] {
          return core_.try_pop_with(
              [&](T& element) noexcept { result.emplace(std::move(element)); });
        },
        deadline);
    return result;
  }

  // Calls attempt() until it succeeds, the ring is closed (for a consumer: closed and drained),
  // or the deadline passes, waiting between attempts as the wait policy says. Returns whether
  // an attempt succeeded.
  // The closed check runs after every failed attempt, so it reads no line that the other side
  // writes while the ring is open. A waiting pop that read the producers' counter would make
  // every push pay one more cache-line transfer (see drained() in detail/turn_ring.hpp).
  template <side Side, class Attempt>
  bool wait_until(Attempt&& attempt, detail::steady_time deadline) {
    constexpr bool is_push = Side == side::producer;
    [[maybe_unused]] const auto check = [this] {
      if constexpr (is_push) {
        return enter_producer();
      } else {
        return enter_consumer();
      }
    }();
    const bool timed = deadline != detail::steady_time::max();
    for (std::uint32_t round = 0;; round += (round != UINT32_MAX) ? 1 : 0) {
      if (attempt()) {
        if constexpr (is_push) {
          finish_push(true);
        } else {
          finish_pop(true);
        }
        return true;
      }
      if (is_push ? core_.is_closed() : core_.drained()) return false;
      if (timed && std::chrono::steady_clock::now() >= deadline) return false;

      switch (wait_type::step(round)) {
        case wait_step::spin:
          detail::cpu_relax();
          break;
        case wait_step::yield:
          std::this_thread::yield();
          break;
        case wait_step::sleep:
          if constexpr (can_sleep && is_push) {
            sides_.not_full.sleep_unless([this] { return core_.push_ready_or_closed(); }, deadline);
          } else if constexpr (can_sleep) {
            sides_.not_empty.sleep_unless([this] { return core_.pop_ready_or_drained(); },
                                          deadline);
          } else {
            std::this_thread::yield();
          }
          break;
      }
    }
  }

  core_type core_;
  [[no_unique_address]] std::conditional_t<can_sleep, sleeping_sides, spinning_sides> sides_;
  [[no_unique_address]] producer_check producer_check_;
  [[no_unique_address]] consumer_check consumer_check_;
};

}  // namespace ringmq
