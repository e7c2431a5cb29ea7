// Pushes and pops a few ints through ringmq::ring. Exits non-zero on a wrong result.
#include <ringmq/ring.hpp>

#include <cstdio>
#include <optional>

int main() {
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
