// Element types with awkward properties, for checking what a container demands of its elements.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace ringmq_test {

// Move-only element that owns a heap int, so a value lost in a move shows up as a null pointer.
struct move_only {
  explicit move_only(int v) : value(std::make_unique<int>(v)) {}
  explicit move_only(std::unique_ptr<int> p) noexcept : value(std::move(p)) {}
  move_only(move_only&&) noexcept = default;
  move_only& operator=(move_only&&) noexcept = default;

  std::unique_ptr<int> value;
};

// Element without a default constructor. It takes two arguments, so emplace has to forward them.
class no_default {
 public:
  no_default(int number, std::string text) : number_(number), text_(std::move(text)) {}

  int number() const noexcept { return number_; }
  const std::string& text() const noexcept { return text_; }

 private:
  int number_;
  std::string text_;
};

// Over-aligned element whose constructors count every object built at a misaligned address.
// Objects reach a slot only through a constructor, so a ring that places slots badly raises
// misaligned_constructions() above zero.
template <std::size_t Alignment>
struct alignas(Alignment) over_aligned {
  explicit over_aligned(std::uint64_t v) noexcept : value(v) { check_address(); }
  over_aligned(const over_aligned& other) noexcept : value(other.value) { check_address(); }
  over_aligned(over_aligned&& other) noexcept : value(other.value) { check_address(); }
  over_aligned& operator=(const over_aligned&) noexcept = default;
  over_aligned& operator=(over_aligned&&) noexcept = default;

  static long misaligned_constructions() noexcept {
    return misaligned_.load(std::memory_order_relaxed);
  }

  std::uint64_t value;

 private:
  void check_address() const noexcept {
    if (reinterpret_cast<std::uintptr_t>(this) % Alignment != 0) {
      misaligned_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Only tallied; tests read it after joining their threads.
  static inline std::atomic<long> misaligned_{0};
};

}  // namespace ringmq_test
