// Pushes and pops a few ints through ringmq::ring, and sends, receives and acknowledges one
// through ringmq::work_queue, so that every installed header is used. Exits non-zero on a wrong
// result.
#include <ringmq/ring.hpp>
#include <ringmq/work_queue.hpp>

#include <cstdio>
#include <optional>

namespace {

int check_work_queue() {
  ringmq::manual_clock clock;
  ringmq::work_queue<int, ringmq::clock<ringmq::manual_clock>> queue{{.capacity = 2}, clock};
  if (!queue.try_send(42)) {
    std::fprintf(stderr, "work_queue: try_send failed on an empty queue\n");
    return 1;
  }
  const auto delivery = queue.try_receive();
  if (!delivery || delivery->body() != 42) {
    std::fprintf(stderr, "work_queue: try_receive did not return the message sent\n");
    return 1;
  }
  if (!queue.ack(delivery->receipt()) || queue.size() != 0) {
    std::fprintf(stderr, "work_queue: ack of a fresh receipt failed\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main() {
  if (check_work_queue() != 0) return 1;

  ringmq::ring<int> ring(4);

  for (int value = 1; value <= 4; ++value) {
    if (!ring.try_push(value)) {
      std::fprintf(stderr, "try_push(%d) failed on a ring with free slots\n", value);
      return 1;
    }
  }
  if (ring.try_push(5)) {
    std::fprintf(stderr, "try_push(5) succeeded on a full ring of capacity 4\n");
    return 1;
  }

  for (int expected = 1; expected <= 4; ++expected) {
    const std::optional<int> popped = ring.try_pop();
    if (!popped) {
      std::fprintf(stderr, "try_pop returned nothing, expected %d\n", expected);
      return 1;
    }
    if (*popped != expected) {
      std::fprintf(stderr, "try_pop returned %d, expected %d\n", *popped, expected);
      return 1;
    }
  }
  if (ring.try_pop()) {
    std::fprintf(stderr, "try_pop returned a value from an empty ring\n");
    return 1;
  }
  return 0;
}
