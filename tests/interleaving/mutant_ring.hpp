// A small bounded ring with the same turn protocol as ringmq's ring core, in a correct version
// and in deliberately broken versions. The broken ones show that the interleaving check rejects
// a protocol error; each must make the search fail with the violation its scenario names.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

namespace ringmq_test::interleaving {

enum class mutation {
  none,                        // the protocol as it should be
  publish_before_construct,    // push stores the turn (A) before it constructs the element
  claim_without_cas,           // push claims its position with a load and a store, not a CAS
  pop_gives_up_on_contention,  // pop returns false when its claim CAS fails
  try_pop_waits,               // pop waits for the slot's push instead of returning false
};

// Positions, turns and slots as in turn_ring: turn 2p means the slot waits for the push of p,
// 2p + 1 for its pop. Multi-producer and multi-consumer, at most four slots.
template <class T, mutation Mutation, template <class> class Atomic>
class mutant_ring {
  static constexpr std::size_t max_capacity = 4;

 public:
  explicit mutant_ring(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0 || capacity > max_capacity) {
      throw std::invalid_argument("mutant_ring: capacity " + std::to_string(capacity) +
                                  " is invalid; pass 1 to 4");
    }
    for (std::size_t i = 0; i < capacity; ++i) slots_[i].turn.store(2 * std::uint64_t{i});
  }

  mutant_ring(const mutant_ring&) = delete;
  mutant_ring& operator=(const mutant_ring&) = delete;

  ~mutant_ring() {
    for (std::uint64_t p = head_.load(); p < tail_.load(); ++p) element(slot_of(p))->~T();
  }

  template <class Construct>
  bool try_push_with(Construct&& construct) noexcept {
    std::uint64_t tail = tail_.load();
    for (;;) {
      const auto lag = static_cast<std::int64_t>(slot_of(tail).turn.load() - 2 * tail);
      if (lag == 0) {
        if constexpr (Mutation == mutation::claim_without_cas) {
          tail_.store(tail + 1);
          break;
        } else {
          if (tail_.compare_exchange_weak(tail, tail + 1)) break;
        }
      } else if (lag < 0) {
        return false;
      } else {
        tail = tail_.load();
      }
    }
    slot& target = slot_of(tail);
    if constexpr (Mutation == mutation::publish_before_construct) {
      target.turn.store(2 * tail + 1);
      construct(static_cast<void*>(target.bytes));
    } else {
      construct(static_cast<void*>(target.bytes));
      target.turn.store(2 * tail + 1);
    }
    return true;
  }

  template <class Consume>
  bool try_pop_with(Consume&& consume) noexcept {
    std::uint64_t head = head_.load();
    for (;;) {
      const auto lag = static_cast<std::int64_t>(slot_of(head).turn.load() - (2 * head + 1));
      if (lag == 0) {
        if (head_.compare_exchange_weak(head, head + 1)) break;
        if constexpr (Mutation == mutation::pop_gives_up_on_contention) return false;
      } else if (lag < 0) {
        if constexpr (Mutation != mutation::try_pop_waits) return false;
      } else {
        head = head_.load();
      }
    }
    slot& source = slot_of(head);
    T* e = element(source);
    consume(*e);
    e->~T();
    source.turn.store(2 * (head + capacity_));
    return true;
  }

 private:
  struct slot {
    Atomic<std::uint64_t> turn{0};
    alignas(T) unsigned char bytes[sizeof(T)];
  };

  slot& slot_of(std::uint64_t position) noexcept { return slots_[position % capacity_]; }
  static T* element(slot& s) noexcept { return std::launder(reinterpret_cast<T*>(s.bytes)); }

  Atomic<std::uint64_t> tail_{0};
  Atomic<std::uint64_t> head_{0};
  std::array<slot, max_capacity> slots_;
  std::size_t capacity_;
};

}  // namespace ringmq_test::interleaving
