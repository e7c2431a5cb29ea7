// Allocation failure in ringmq. Every constructor that allocates throws std::bad_alloc when any
// one of its allocations fails, leaks nothing, and the next construction works. The calls that
// allocate after construction (subscribe, dead-letter texts) fail cleanly or lose only the text,
// as documented. The calls documented to allocate nothing do not allocate.
//
// This file replaces the global operator new and operator delete for the test executable. They
// call ringmq_test::allocation_faults (support/faults.hpp), which counts allocations and, when a
// test arms it, makes one of them throw.
//
// ThreadSanitizer's runtime, as clang links it, defines operator new and operator delete as
// well, so the replacements would be defined twice. Under ThreadSanitizer this file is empty,
// and the other builds run its tests.
#if defined(__SANITIZE_THREAD__)
#define RINGMQ_TEST_ALLOCATION_FAULTS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RINGMQ_TEST_ALLOCATION_FAULTS 0
#endif
#endif
#ifndef RINGMQ_TEST_ALLOCATION_FAULTS
#define RINGMQ_TEST_ALLOCATION_FAULTS 1
#endif

#if RINGMQ_TEST_ALLOCATION_FAULTS

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <ringmq/broadcast_ring.hpp>
#include <ringmq/clock.hpp>
#include <ringmq/dead_letter_queue.hpp>
#include <ringmq/request_reply.hpp>
#include <ringmq/ring.hpp>
#include <ringmq/topic.hpp>
#include <ringmq/work_queue.hpp>
#include <ringmq/worker_pool.hpp>

#include "support/counting_allocator.hpp"
#include "support/faults.hpp"

using namespace std::chrono_literals;
using ringmq_test::allocation_faults;
using ringmq_test::sweep_allocation_failures;

// ---- the test executable's operator new and operator delete ------------------------------------

namespace {

void* allocate(std::size_t size, std::size_t alignment) {
  allocation_faults::before_allocation();
  if (size == 0) size = 1;
  void* memory = nullptr;
  if (alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    memory = std::malloc(size);
  } else {
    memory = std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  }
  if (memory == nullptr) throw std::bad_alloc();
  allocation_faults::allocated();
  return memory;
}

void* allocate_or_null(std::size_t size, std::size_t alignment) noexcept {
  try {
    return allocate(size, alignment);
  } catch (...) {
    return nullptr;
  }
}

void deallocate(void* memory) noexcept {
  if (memory == nullptr) return;
  allocation_faults::deallocated();
  std::free(memory);
}

constexpr std::size_t default_alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

void* operator new(std::size_t size) { return allocate(size, default_alignment); }
void* operator new[](std::size_t size) { return allocate(size, default_alignment); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, default_alignment);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, default_alignment);
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, static_cast<std::size_t>(alignment));
}
void operator delete(void* memory) noexcept { deallocate(memory); }
void operator delete[](void* memory) noexcept { deallocate(memory); }
void operator delete(void* memory, std::size_t) noexcept { deallocate(memory); }
void operator delete[](void* memory, std::size_t) noexcept { deallocate(memory); }
void operator delete(void* memory, std::align_val_t) noexcept { deallocate(memory); }
void operator delete[](void* memory, std::align_val_t) noexcept { deallocate(memory); }
void operator delete(void* memory, std::size_t, std::align_val_t) noexcept { deallocate(memory); }
void operator delete[](void* memory, std::size_t, std::align_val_t) noexcept { deallocate(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { deallocate(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { deallocate(memory); }
void operator delete(void* memory, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(memory);
}
void operator delete[](void* memory, std::align_val_t, const std::nothrow_t&) noexcept {
  deallocate(memory);
}

// ---- constructors -----------------------------------------------------------------------------

namespace {

using int_queue = ringmq::work_queue<int>;

// The smallest count of allocations a sweep must have failed one by one: a constructor that
// allocates k times needs k failed tries and one that succeeds.
constexpr long at_least(long allocations) { return allocations + 1; }

}  // namespace

TEST_CASE("allocation fault: ring constructor fails cleanly", "[ring][fault]") {
  using counted_ring = ringmq::ring<int, ringmq::allocator<ringmq_test::counting_allocator<int>>>;
  ringmq_test::allocation_counters::reset();
  const long tries = sweep_allocation_failures<counted_ring>([](auto& ring) { ring.emplace(5); },
                                                             [](counted_ring& ring) {
                                                               CHECK(ring.try_push(1));
                                                               CHECK(ring.try_pop() == 1);
                                                             });
  CHECK(tries == at_least(1));  // the slot array, through the allocator
  CHECK(ringmq_test::allocation_counters::bytes_outstanding == 0);

  const long plain = sweep_allocation_failures<ringmq::ring<std::string>>(
      [](auto& ring) { ring.emplace(3); },
      [](ringmq::ring<std::string>& ring) { CHECK(ring.try_push(std::string(40, 'x'))); });
  CHECK(plain == at_least(1));
}

TEST_CASE("allocation fault: work_queue constructor fails cleanly", "[work_queue][fault]") {
  const ringmq::queue_config config{.capacity = 8, .dead_letter_capacity = 4};
  const long tries = sweep_allocation_failures<int_queue>(
      [&](auto& queue) { queue.emplace(config); },
      [](int_queue& queue) {
        REQUIRE(queue.try_send(3).ok());
        std::optional<int_queue::delivery_type> delivery = queue.try_receive();
        REQUIRE(delivery);
        CHECK(queue.ack(delivery->receipt()));
      });
  // Slots, three index rings, the timer heap and the dead-letter table.
  CHECK(tries >= at_least(6));

  using manual_queue = ringmq::work_queue<int, ringmq::clock<ringmq::manual_clock>>;
  ringmq::manual_clock clock;
  CHECK(sweep_allocation_failures<manual_queue>([&](auto& queue) { queue.emplace(config, clock); },
                                                [](manual_queue&) {}) == tries);
}

TEST_CASE("allocation fault: dead_letter_queue constructor fails cleanly", "[work_queue][fault]") {
  using letters = ringmq::dead_letter_queue<int>;
  const long tries = sweep_allocation_failures<letters>(
      [](auto& queue) { queue.emplace(4); }, [](letters& queue) { CHECK(queue.capacity() == 4); });
  CHECK(tries == at_least(1));
}

TEST_CASE("allocation fault: fan-out and request_reply constructors fail cleanly",
          "[topic][broadcast_ring][request_reply][fault]") {
  using topic_type = ringmq::topic<int>;
  CHECK(sweep_allocation_failures<topic_type>(
            [](auto& topic) { topic.emplace(ringmq::topic_config{.max_subscriptions = 4}); },
            [](topic_type& topic) {
              auto subscription = topic.subscribe("a.*");
              CHECK(topic.publish("a.b", 1).delivered == 1);
            }) >= at_least(2));

  using single_broadcast = ringmq::broadcast_ring<int>;
  CHECK(sweep_allocation_failures<single_broadcast>([](auto& ring) { ring.emplace(8, 2); },
                                                    [](single_broadcast& ring) {
                                                      auto reader = ring.try_join();
                                                      REQUIRE(reader);
                                                      CHECK(ring.try_publish(4));
                                                      CHECK(reader->try_read() == 4);
                                                    }) == at_least(2));  // slots and reader cursors
  using multi_broadcast = ringmq::broadcast_ring<int, ringmq::producers<ringmq::multi>>;
  CHECK(sweep_allocation_failures<multi_broadcast>([](auto& ring) { ring.emplace(8, 2); },
                                                   [](multi_broadcast&) {}) ==
        at_least(3));  // and the published markers

  using channel_type = ringmq::request_reply<int, int>;
  CHECK(sweep_allocation_failures<channel_type>(
            [](auto& channel) {
              channel.emplace(ringmq::request_reply_config{4, 8});
            },
            [](channel_type& channel) {
              channel_type::handle_type handle = channel.try_send(6);
              REQUIRE(handle.valid());
              CHECK(channel.try_serve([](int request) { return request + 1; }) ==
                    ringmq::serve_status::served);
              CHECK(handle.try_get().get() == 7);
            }) >= at_least(2));
}

TEST_CASE("allocation fault: worker_pool constructor joins started threads",
          "[worker_pool][fault]") {
  int_queue queue({.capacity = 8});
  using pool_type = ringmq::worker_pool<int_queue>;
  const std::function<ringmq::handler_result(int&)> handler = [](int&) {
    return ringmq::handler_result::ack;
  };
  const long tries = sweep_allocation_failures<pool_type>(
      [&](auto& pool) {
        pool.emplace(queue, handler, ringmq::worker_pool_config{.threads = 2, .poll = 1ms});
      },
      [&](pool_type& pool) {
        REQUIRE(queue.try_send(1).ok());
        pool.stop();
        CHECK(queue.size() + pool.stats().acked == 1);
      });
  // The handler, the worker slots, the thread vector, two workers and the keeper.
  CHECK(tries >= at_least(6));
  // Nothing the pool received is left leased.
  CHECK(queue.stats().in_flight == 0);
}

// ---- calls after construction ------------------------------------------------------------------

TEST_CASE("allocation fault: failed subscribe leaves topic unchanged", "[topic][fault]") {
  using topic_type = ringmq::topic<int>;
  topic_type topic({.max_subscriptions = 4});
  auto existing = topic.subscribe("a.#");
  const auto kinds = {0, 1, 2};
  for (const int kind : kinds) {
    INFO("subscribe kind " << kind);
    for (long n = 1;; ++n) {
      const long before = allocation_faults::outstanding();
      bool failed = false;
      std::optional<topic_type::ring_subscription> ring_sub;
      std::optional<topic_type::queue_subscription> queue_sub;
      allocation_faults::arm(n);
      try {
        if (kind == 0) ring_sub.emplace(topic.subscribe("a.b.*"));
        if (kind == 1)
          ring_sub.emplace(topic.subscribe([](std::string_view, int) { return true; }));
        if (kind == 2) queue_sub.emplace(topic.subscribe("a.#", ringmq::queue_inbox{}));
      } catch (const std::bad_alloc&) {
        failed = true;
      }
      allocation_faults::disarm();
      const long leaked = allocation_faults::outstanding() - before;  // before INFO allocates
      INFO("allocation " << n << " fails");
      if (failed) {
        CHECK(leaked == 0);
        // The topic is unchanged: a publish reaches only the existing subscription.
        CHECK(topic.publish("a.b.c", 1).delivered == 1);
        CHECK(existing.inbox().try_pop() == 1);
        continue;
      }
      CHECK(topic.publish("a.b.c", 2).delivered == 2);
      CHECK(existing.inbox().try_pop() == 2);
      ring_sub.reset();
      queue_sub.reset();
      CHECK(n > 1);  // a subscribe allocates its inbox, so the first failure must have thrown
      break;
    }
  }
}

TEST_CASE("allocation fault: dead letter keeps reason without text", "[work_queue][fault]") {
  const std::string text(64, 'e');  // longer than any short-string buffer
  const auto settle = GENERATE(as<std::string>{}, "nack", "reject", "evict");
  INFO("dead-lettered by " << settle);
  for (long n = 1;; ++n) {
    INFO("allocation " << n << " fails");
    int_queue queue({.capacity = 2, .max_receive_count = 1, .dead_letter_capacity = 2});
    REQUIRE(queue.try_send(8).ok());
    std::optional<int_queue::delivery_type> delivery;
    if (settle != "evict") {
      delivery = queue.try_receive();
      REQUIRE(delivery);
    }
    bool settled = false;
    allocation_faults::arm(n);
    if (settle == "nack") settled = queue.nack(delivery->receipt(), text);
    if (settle == "reject") settled = queue.reject(delivery->receipt(), text);
    if (settle == "evict") settled = queue.try_evict_oldest(text);
    const bool fired = allocation_faults::fired();
    allocation_faults::disarm();
    CHECK(settled);
    std::optional<ringmq::dead_letter<int>> letter = queue.dead_letters().try_receive();
    REQUIRE(letter);
    CHECK(letter->body == 8);
    CHECK(letter->detail == (fired ? std::string() : text));
    CHECK(queue.size() == 0);
    if (!fired) break;
  }
}

TEST_CASE("allocation fault: hot-path calls allocate nothing",
          "[ring][work_queue][broadcast_ring][request_reply][fault]") {
  ringmq::ring<int> ring(4);
  int_queue queue({.capacity = 4, .max_receive_count = 3});
  ringmq::broadcast_ring<int> broadcast(4, 2);
  ringmq::request_reply<int, int> channel({.capacity = 2, .max_outstanding = 2});
  std::optional<int_queue::delivery_type> batch[4];  // try_receive_batch assigns to *out++

  allocation_faults::arm(1);  // the first allocation on this thread would throw
  const bool pushed = ring.try_push(1);
  const std::optional<int> popped = ring.try_pop();
  const bool sent = queue.try_send(2).ok();
  std::optional<int_queue::delivery_type> delivery = queue.try_receive();
  const bool nacked = delivery && queue.nack(delivery->receipt());  // not yet a dead letter
  const std::size_t received = queue.try_receive_batch(batch, 4);
  const bool extended = received == 1 && queue.extend(batch[0]->receipt(), 5s);
  const bool acked = received == 1 && queue.ack(batch[0]->receipt());
  std::optional<ringmq::broadcast_ring<int>::reader> reader = broadcast.try_join();
  const bool published = broadcast.try_publish(3);
  const std::optional<int> read = reader ? reader->try_read() : std::nullopt;
  auto handle = channel.try_send(4);
  const ringmq::serve_status served = channel.try_serve([](int request) { return request * 2; });
  const ringmq::reply_result<int> result = handle.try_get();
  const bool fired = allocation_faults::fired();
  allocation_faults::disarm();

  CHECK_FALSE(fired);
  CHECK(pushed);
  CHECK(popped == 1);
  CHECK(sent);
  CHECK(nacked);
  CHECK(received == 1);
  CHECK(extended);
  CHECK(acked);
  CHECK(published);
  CHECK(read == 3);
  CHECK(served == ringmq::serve_status::served);
  CHECK(result.ok());
}

#endif  // RINGMQ_TEST_ALLOCATION_FAULTS
