// Output iterator for ring::try_pop_bulk that constructs each element into a std::optional.
//
// try_pop_bulk requires writes through its output iterator to be noexcept, so that a popped
// element cannot be lost half-way. This writer qualifies for any T with a noexcept move
// constructor, including types without a default constructor, which rules out a plain
// pointer into an array of T.
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>
#include <utility>

namespace ringmq_test {

template <class T>
class optional_writer {
 public:
  using iterator_category = std::output_iterator_tag;
  using value_type = void;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = void;

  explicit optional_writer(std::optional<T>* position) noexcept : position_(position) {}

  optional_writer& operator*() noexcept { return *this; }
  optional_writer& operator=(T&& value) noexcept {
    position_->emplace(std::move(value));
    return *this;
  }
  optional_writer& operator++() noexcept {
    ++position_;
    return *this;
  }
  optional_writer operator++(int) noexcept {
    optional_writer before = *this;
    ++position_;
    return before;
  }

 private:
  std::optional<T>* position_;
};

}  // namespace ringmq_test
