// Test support: the fields of a work-queue receipt, for tests that read a receipt's parts or
// forge receipts that no queue issued.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

#include <ringmq/work_queue_types.hpp>

namespace ringmq_test {

// A receipt's fields in the order the library declares them. receipt is standard-layout and
// trivially copyable, so std::bit_cast reads and writes them.
struct receipt_fields {
  std::uint64_t queue;
  std::uint64_t message;
  std::uint32_t slot;
  std::uint32_t delivery;
};
static_assert(std::is_standard_layout_v<ringmq::receipt> &&
                  std::is_trivially_copyable_v<ringmq::receipt> &&
                  sizeof(ringmq::receipt) == sizeof(receipt_fields),
              "receipt's layout changed; update receipt_fields");

inline receipt_fields fields_of(const ringmq::receipt& r) {
  return std::bit_cast<receipt_fields>(r);
}

inline ringmq::receipt forge(const receipt_fields& fields) {
  return std::bit_cast<ringmq::receipt>(fields);
}

}  // namespace ringmq_test
