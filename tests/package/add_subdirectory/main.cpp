// Moves ints through a single-producer, single-consumer ring of fixed capacity on two threads.
// Exits non-zero when an int is lost, repeated or out of order.
#include <ringmq/ring.hpp>

#include <cstdio>
#include <optional>
#include <thread>

int main() {
  using spsc_ring = ringmq::ring<int, ringmq::capacity<8>, ringmq::producers<ringmq::single>,
                                 ringmq::consumers<ringmq::single>>;
  constexpr int count = 10000;
  spsc_ring ring;

  std::thread producer([&ring] {
    for (int value = 0; value < count; ++value) {
      if (!ring.push(value)) return;  // the consumer closed the ring after a wrong value
    }
    ring.close();
  });

  int expected = 0;
  while (const std::optional<int> popped = ring.pop()) {
    if (*popped != expected) {
      std::fprintf(stderr, "pop returned %d, expected %d\n", *popped, expected);
      ring.close();
      producer.join();
      return 1;
    }
    ++expected;
  }
  producer.join();

  if (expected != count) {
    std::fprintf(stderr, "popped %d ints before the ring closed, expected %d\n", expected, count);
    return 1;
  }
  return 0;
}
