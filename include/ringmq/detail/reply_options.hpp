// ringmq internals: the option list of a request_reply channel, the check of its numbers, and
// the envelope that carries a request and its reply token through the request queue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "ringmq/options.hpp"

namespace ringmq::detail {

// Fails to compile for an option that a request_reply channel does not take. The instantiation
// note names O.
template <class O>
constexpr bool check_reply_option() {
  using kind = typename option_kind<O>::type;
  static_assert(std::is_same_v<kind, wait_kind> || std::is_same_v<kind, producers_kind> ||
                    std::is_same_v<kind, consumers_kind> || std::is_same_v<kind, layout_kind>,
                "ringmq::request_reply: unsupported option; expected wait<P>, producers<R>, "
                "consumers<R> or slot_layout<L>. The queue's capacity is a runtime value: set "
                "request_reply_config::capacity");
  return true;
}

// The parsed option list of a request_reply channel: every slot filled with the given option or
// its default. Requesters are the request queue's producers and responders its consumers.
template <class... Options>
struct reply_options {
  static constexpr bool all_supported = (check_reply_option<Options>() && ...);
  static_assert(count_of_kind<wait_kind, Options...> <= 1 &&
                    count_of_kind<producers_kind, Options...> <= 1 &&
                    count_of_kind<consumers_kind, Options...> <= 1 &&
                    count_of_kind<layout_kind, Options...> <= 1,
                "ringmq::request_reply: an option kind is given more than once; give each of "
                "wait, producers, consumers and slot_layout at most once");

  using wait_policy = typename find_option<wait_kind, wait<park>, Options...>::type::type;
  using requester_role =
      typename find_option<producers_kind, producers<multi>, Options...>::type::type;
  using responder_role =
      typename find_option<consumers_kind, consumers<multi>, Options...>::type::type;
  using layout = typename find_option<layout_kind, slot_layout<padded>, Options...>::type::type;
};

// Throws std::invalid_argument (std::length_error for a table too large to index) naming the
// first number of a request_reply config that cannot work.
inline void check_reply_config(std::size_t capacity, std::size_t max_outstanding) {
  const std::string prefix = "ringmq::request_reply: ";
  if (capacity == 0) {
    throw std::invalid_argument(prefix + "capacity 0 is invalid; pass a capacity of at least 1");
  }
  if (capacity >= std::numeric_limits<std::uint32_t>::max()) {
    throw std::length_error(prefix + "capacity " + std::to_string(capacity) +
                            " is too large; pass a capacity below 4294967295");
  }
  if (max_outstanding == 0) {
    throw std::invalid_argument(prefix +
                                "max_outstanding 0 is invalid; pass at least the capacity");
  }
  if (max_outstanding >= std::numeric_limits<std::uint32_t>::max()) {
    throw std::length_error(prefix + "max_outstanding " + std::to_string(max_outstanding) +
                            " is too large; pass a value below 4294967295");
  }
  if (max_outstanding < capacity) {
    throw std::invalid_argument(
        prefix + "max_outstanding " + std::to_string(max_outstanding) + " is below capacity " +
        std::to_string(capacity) +
        "; every queued request uses a reply cell, so raise max_outstanding to at least the "
        "capacity");
  }
}

// Names one request for its whole life: the index of its reply cell and the cell's generation
// when the request was sent. The generation changes each time the cell is freed.
struct reply_token {
  std::uint64_t generation = 0;
  std::uint32_t cell = 0;
};

// A request on its way from a requester to a responder.
template <class Request>
struct request_envelope {
  template <class Body>
  request_envelope(reply_token t, Body&& b) noexcept(std::is_nothrow_constructible_v<Request, Body>)
      : body(std::forward<Body>(b)), token(t) {}

  Request body;
  reply_token token;
};

}  // namespace ringmq::detail
