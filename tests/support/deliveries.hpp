// Items that name their producer and sequence number, and the check that what the consumers
// received is exactly what the producers sent.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringmq_test {

// An item carries its producer in the high 32 bits and its sequence number in the low 32.
inline std::uint64_t make_item(std::uint64_t producer, std::uint64_t sequence) {
  return producer << 32 | sequence;
}
inline std::uint64_t producer_of(std::uint64_t item) { return item >> 32; }
inline std::uint64_t sequence_of(std::uint64_t item) { return item & 0xFFFFFFFFu; }

// Checks the logs of several consumers, each in arrival order, against accepted, the count of
// pushes that returned true for each producer. Each producer p must have sent items
// 0 .. accepted[p] - 1, so every one of them must appear in exactly one log, and within one
// log the items of one producer must appear in increasing order. Returns a description of
// the first mismatch, or "" when there is none.
inline std::string check_deliveries(const std::vector<std::vector<std::uint64_t>>& logs,
                                    const std::vector<std::uint64_t>& accepted) {
  const std::size_t producers = accepted.size();
  std::vector<std::vector<std::uint8_t>> seen(producers);
  for (std::size_t p = 0; p < producers; ++p) seen[p].assign(accepted[p], 0);

  for (std::size_t log = 0; log < logs.size(); ++log) {
    std::vector<std::int64_t> last(producers, -1);
    for (const std::uint64_t item : logs[log]) {
      const std::uint64_t p = producer_of(item);
      const std::uint64_t s = sequence_of(item);
      const std::string name = "item " + std::to_string(p) + ":" + std::to_string(s);
      if (p >= producers) return name + " names an unknown producer";
      if (s >= accepted[p]) return name + " was never pushed successfully";
      if (static_cast<std::int64_t>(s) <= last[p]) {
        return name + " arrived in log " + std::to_string(log) + " after item " +
               std::to_string(p) + ":" + std::to_string(last[p]);
      }
      last[p] = static_cast<std::int64_t>(s);
      if (seen[p][s]++ != 0) return name + " arrived twice";
    }
  }

  for (std::size_t p = 0; p < producers; ++p) {
    const auto missing = std::find(seen[p].begin(), seen[p].end(), 0);
    if (missing != seen[p].end()) {
      return "item " + std::to_string(p) + ":" + std::to_string(missing - seen[p].begin()) +
             " was lost";
    }
  }
  return "";
}

}  // namespace ringmq_test
