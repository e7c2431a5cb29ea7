// Fault injection into ringmq::request_reply. A request copy that throws sends nothing. A reply
// copy that throws leaves the request unanswered, so another reply can still reach it. A copy
// that throws inside a serve call fails the request with that exception. Every request sent
// ends in exactly one outcome, nothing leaks, and the channel keeps working.
#include <catch2/catch.hpp>

#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <ringmq/request_reply.hpp>

#include "support/counted.hpp"
#include "support/faults.hpp"

using ringmq::request_status;
using ringmq_test::counted;
using ringmq_test::fault_countdown;
using ringmq_test::faulty;
using ringmq_test::sweep_faults;
using ringmq_test::throws_fault;

namespace {

using channel_type = ringmq::request_reply<faulty, faulty>;

bool is_injected(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ringmq_test::injected_fault&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

TEST_CASE("request_reply fault: throwing copies leave one outcome each", "[request_reply][fault]") {
  const long runs = sweep_faults([](long n) {
    INFO("fault at point " << n);
    std::optional<faulty> stored;  // the reply the serve call copies
    if (throws_fault([&] { stored.emplace(200); })) return;
    channel_type channel({.capacity = 4, .max_outstanding = 4});
    std::map<std::uint64_t, channel_type::handle_type> handles;  // by request value
    std::map<std::uint64_t, request_status> expected;

    for (std::uint64_t value = 1; value <= 3; ++value) {
      (void)throws_fault([&] {
        const faulty request(value);
        channel_type::handle_type handle =
            value == 2 ? channel.send(request) : channel.try_send(request);
        REQUIRE(handle.valid());
        handles.emplace(value, std::move(handle));
      });
    }
    CHECK(channel.stats().sent == handles.size());

    // Answer all but the last request received with a copy of a reply; serve the last one.
    for (std::size_t answered = 0; answered + 1 < handles.size(); ++answered) {
      std::optional<channel_type::incoming_type> incoming = channel.try_receive();
      REQUIRE(incoming);
      const std::uint64_t value = incoming->body().value();
      const bool threw = throws_fault([&] {
        const faulty reply(value + 100);
        const bool delivered = incoming->reply(reply);  // outside CHECK, which catches
        CHECK(delivered);
      });
      CHECK(incoming->answered() == !threw);
      bool answered_again = false;
      if (threw && value % 2 == 0) {
        // The request is still unanswered, so a second reply reaches the requester. (The fault
        // has fired, so building this reply cannot throw.)
        answered_again = incoming->reply(faulty(value + 100));
        CHECK(answered_again);
      }
      // A request whose reply copy threw and was not answered again is destroyed unanswered.
      expected[value] = threw && !answered_again ? request_status::unanswered : request_status::ok;
    }
    if (!handles.empty()) {
      std::uint64_t value = 0;
      const long before = fault_countdown::hits();
      CHECK(channel.try_serve([&](const faulty& request) -> const faulty& {
        value = request.value();
        return *stored;  // the serve call copies it into the reply
      }) == ringmq::serve_status::served);
      const bool threw = fault_countdown::fired() && n > before;
      expected[value] = threw ? request_status::responder_error : request_status::ok;
    }

    fault_countdown::disarm();
    for (auto& [value, handle] : handles) {
      INFO("request " << value);
      ringmq::reply_result<faulty> result = handle.try_get();
      REQUIRE(expected.count(value) == 1);
      CHECK(result.status() == expected[value]);
      if (result.status() == request_status::ok) {
        CHECK((result.get().value() == value + 100 || result.get().value() == 200));
      }
      if (result.status() == request_status::responder_error) CHECK(is_injected(result.error()));
    }
    const ringmq::request_reply_stats stats = channel.stats();
    CHECK(stats.sent == handles.size());
    CHECK(stats.sent == stats.replied + stats.failed + stats.unanswered);
    CHECK(stats.outstanding == 0);
    CHECK(stats.queued == 0);

    // Still usable: a round trip.
    channel_type::handle_type handle = channel.try_send(faulty(7));
    REQUIRE(handle.valid());
    CHECK(channel.try_serve([](const faulty& request) { return faulty(request.value() * 2); }) ==
          ringmq::serve_status::served);
    ringmq::reply_result<faulty> result = handle.try_get();
    REQUIRE(result.ok());
    CHECK(result.get().value() == 14);
  });
  // The stored reply, three requests built by the test and copied, two replies built and
  // copied, and one copy in the serve call: 12 fault points, and one run past them.
  CHECK(runs >= 13);
}
