// expect: Policy must fit ringmq::backoff_policy
// A backoff policy without a constructor from backoff_config.
#include <ringmq/work_queue.hpp>

#include <chrono>
#include <cstdint>

struct constant_backoff {
  std::chrono::nanoseconds delay(std::uint32_t, std::uint64_t) const { return {}; }
};

int main() {
  ringmq::work_queue<int, ringmq::backoff<constant_backoff>> queue;
  return queue.try_send(1) ? 0 : 1;
}
