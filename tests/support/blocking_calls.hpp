// Every way to push or pop that may wait, so that one test can run over all of them.
#pragma once

#include <chrono>
#include <initializer_list>
#include <optional>
#include <utility>

namespace ringmq_test {

// The blocking push calls. The timed ones use timeouts far longer than any test runs, one
// finite, which the ring turns into a deadline, and duration::max(), which never expires.
enum class push_call { push_move, push_copy, emplace, push_for_minute, push_for_max };
inline constexpr std::initializer_list<push_call> all_push_calls = {
    push_call::push_move, push_call::push_copy, push_call::emplace, push_call::push_for_minute,
    push_call::push_for_max};

enum class pop_call { pop, pop_for_minute, pop_for_max };
inline constexpr std::initializer_list<pop_call> all_pop_calls = {
    pop_call::pop, pop_call::pop_for_minute, pop_call::pop_for_max};

inline const char* call_name(push_call call) noexcept {
  switch (call) {
    case push_call::push_move:
      return "push(T&&)";
    case push_call::push_copy:
      return "push(const T&)";
    case push_call::emplace:
      return "emplace";
    case push_call::push_for_minute:
      return "push_for(1 min)";
    case push_call::push_for_max:
      return "push_for(hours::max())";
  }
  return "unknown push call";
}

inline const char* call_name(pop_call call) noexcept {
  switch (call) {
    case pop_call::pop:
      return "pop()";
    case pop_call::pop_for_minute:
      return "pop_for(1 min)";
    case pop_call::pop_for_max:
      return "pop_for(hours::max())";
  }
  return "unknown pop call";
}

// Pushes value with the given call and returns what the call returned.
template <class Ring>
bool push_with(Ring& ring, push_call call, typename Ring::value_type value) {
  switch (call) {
    case push_call::push_move:
      return ring.push(std::move(value));
    case push_call::push_copy:
      return ring.push(std::as_const(value));
    case push_call::emplace:
      return ring.emplace(std::move(value));
    case push_call::push_for_minute:
      return ring.push_for(std::move(value), std::chrono::minutes(1));
    case push_call::push_for_max:
      return ring.push_for(std::move(value), std::chrono::hours::max());
  }
  return false;
}

// Pops with the given call and returns what the call returned.
template <class Ring>
std::optional<typename Ring::value_type> pop_with(Ring& ring, pop_call call) {
  switch (call) {
    case pop_call::pop:
      return ring.pop();
    case pop_call::pop_for_minute:
      return ring.pop_for(std::chrono::minutes(1));
    case pop_call::pop_for_max:
      return ring.pop_for(std::chrono::hours::max());
  }
  return std::nullopt;
}

}  // namespace ringmq_test
