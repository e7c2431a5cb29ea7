// Allocator that counts its allocations and the bytes it has handed out and not yet taken back.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>

namespace ringmq_test {

// Process-wide tallies shared by every counting_allocator<T>, which tests read after their
// threads have joined.
struct allocation_counters {
  static inline std::atomic<long> allocations{0};
  static inline std::atomic<long> deallocations{0};
  static inline std::atomic<long> bytes_outstanding{0};

  static void reset() noexcept {
    allocations = 0;
    deallocations = 0;
    bytes_outstanding = 0;
  }
};

template <class T>
struct counting_allocator {
  using value_type = T;

  counting_allocator() noexcept = default;
  template <class U>
  counting_allocator(const counting_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    void* p = ::operator new (n * sizeof(T), std::align_val_t{alignof(T)});
    allocation_counters::allocations.fetch_add(1, std::memory_order_relaxed);
    allocation_counters::bytes_outstanding.fetch_add(static_cast<long>(n * sizeof(T)),
                                                     std::memory_order_relaxed);
    return static_cast<T*>(p);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    allocation_counters::deallocations.fetch_add(1, std::memory_order_relaxed);
    allocation_counters::bytes_outstanding.fetch_sub(static_cast<long>(n * sizeof(T)),
                                                     std::memory_order_relaxed);
    ::operator delete (p, std::align_val_t{alignof(T)});
  }

  template <class U>
  bool operator==(const counting_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace ringmq_test
