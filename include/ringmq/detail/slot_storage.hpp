// ringmq internals: capacity checks, position-to-index mapping and slot arrays.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ringmq/detail/wait.hpp"
#include "ringmq/options.hpp"

namespace ringmq::detail {

// Uninitialized, correctly aligned room for one T. The owner tracks whether it holds an object.
template <class T>
struct element_storage {
  alignas(T) unsigned char bytes[sizeof(T)];

  T* get() noexcept { return std::launder(reinterpret_cast<T*>(bytes)); }
  void* raw() noexcept { return bytes; }
};

// Rejects capacities that cannot be represented: zero, or a slot array whose size in bytes or
// whose position arithmetic (two positions per element per lap) overflows.
inline void check_capacity(std::size_t requested, std::size_t slot_size) {
  if (requested == 0) {
    throw std::invalid_argument(
        "ringmq::ring: capacity 0 is invalid; pass a capacity of at least 1");
  }
  constexpr std::size_t max_by_turns = std::numeric_limits<std::size_t>::max() / 4;
  if (requested > std::numeric_limits<std::size_t>::max() / slot_size || requested > max_by_turns) {
    throw std::length_error("ringmq::ring: capacity " + std::to_string(requested) +
                            " is too large: its storage of " + std::to_string(slot_size) +
                            " bytes per slot overflows std::size_t; pass a smaller capacity");
  }
}

// Maps a position (a count of pushes or pops since construction) to a slot index.
// Capacities fixed at compile time compile to a mask or a multiply; a power-of-two runtime
// capacity takes a mask; any other runtime capacity takes one division.
template <std::size_t StaticCapacity>
class index_map {
 public:
  explicit index_map(std::size_t capacity) noexcept
      : capacity_(capacity),
        mask_((capacity & (capacity - 1)) == 0 ? capacity - 1 : not_power_of_two) {}

  std::size_t capacity() const noexcept {
    if constexpr (StaticCapacity != runtime_capacity) return StaticCapacity;
    return capacity_;
  }

  std::size_t operator()(std::uint64_t position) const noexcept {
    if constexpr (StaticCapacity != runtime_capacity) {
      return static_cast<std::size_t>(position % StaticCapacity);
    } else {
      if (mask_ != not_power_of_two) return static_cast<std::size_t>(position & mask_);
      return static_cast<std::size_t>(position % capacity_);
    }
  }

 private:
  static constexpr std::uint64_t not_power_of_two = ~std::uint64_t{0};
  std::size_t capacity_;
  std::uint64_t mask_;
};

// An array of Slot, either inline (capacity fixed at compile time) or from an allocator.
template <class Slot, std::size_t StaticCapacity, class Alloc>
class slot_array;

template <class Slot, std::size_t StaticCapacity, class Alloc>
  requires(StaticCapacity != runtime_capacity)
class slot_array<Slot, StaticCapacity, Alloc> {
 public:
  slot_array(std::size_t, const Alloc&) noexcept {}
  Slot& operator[](std::size_t i) noexcept { return slots_[i]; }
  const Slot& operator[](std::size_t i) const noexcept { return slots_[i]; }

 private:
  std::array<Slot, StaticCapacity> slots_;
};

template <class Slot, class Alloc>
class slot_array<Slot, runtime_capacity, Alloc> {
  using allocator_type = typename std::allocator_traits<Alloc>::template rebind_alloc<Slot>;
  using traits = std::allocator_traits<allocator_type>;

 public:
  explicit slot_array(std::size_t capacity, const Alloc& alloc = Alloc())
      : allocator_(alloc), count_(capacity) {
    check_capacity(capacity, sizeof(Slot));
    slots_ = traits::allocate(allocator_, capacity);
    for (std::size_t i = 0; i < count_; ++i) traits::construct(allocator_, slots_ + i);
  }
  slot_array(const slot_array&) = delete;
  slot_array& operator=(const slot_array&) = delete;
  ~slot_array() {
    for (std::size_t i = 0; i < count_; ++i) traits::destroy(allocator_, slots_ + i);
    traits::deallocate(allocator_, slots_, count_);
  }

  Slot& operator[](std::size_t i) noexcept { return slots_[i]; }
  const Slot& operator[](std::size_t i) const noexcept { return slots_[i]; }

 private:
  [[no_unique_address]] allocator_type allocator_;
  std::size_t count_;
  typename traits::pointer slots_ = nullptr;
};

}  // namespace ringmq::detail
