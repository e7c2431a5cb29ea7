// The allocation counter of bench_support.hpp and the replacements of the global operator new
// and operator delete that feed it. benchmarks/CMakeLists.txt links it into each benchmark
// program.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "bench_support.hpp"

namespace {

// Number of allocations since the program started: every call of the global operator new
// (replaced below) and every count_allocation() call from a library's allocator hook.
std::atomic<std::uint64_t> allocation_count{0};

}  // namespace

namespace ringmq_bench {

void count_allocation() noexcept { allocation_count.fetch_add(1, std::memory_order_relaxed); }

std::uint64_t allocations_so_far() noexcept {
  return allocation_count.load(std::memory_order_relaxed);
}

}  // namespace ringmq_bench

// Replacements of the global allocation functions that count each allocation. The nothrow and
// array forms are left to the standard library, which implements them by calling the forms
// replaced here. None of them is inlined, because g++ 12 warns about an inlined std::malloc or
// std::free that it pairs with operator new or delete at the call site
// (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t size) {
  ringmq_bench::count_allocation();
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}

[[gnu::noinline]] void* operator new(std::size_t size, std::align_val_t alignment) {
  ringmq_bench::count_allocation();
  const auto bytes = static_cast<std::size_t>(alignment);
  // std::aligned_alloc requires the size to be a nonzero multiple of the alignment.
  const std::size_t rounded = size == 0 ? bytes : (size + bytes - 1) / bytes * bytes;
  if (void* memory = std::aligned_alloc(bytes, rounded)) return memory;
  throw std::bad_alloc();
}

[[gnu::noinline]] void operator delete(void* memory) noexcept { std::free(memory); }

[[gnu::noinline]] void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }

[[gnu::noinline]] void operator delete(void* memory, std::align_val_t) noexcept {
  std::free(memory);
}

[[gnu::noinline]] void operator delete(void* memory, std::size_t, std::align_val_t) noexcept {
  std::free(memory);
}
