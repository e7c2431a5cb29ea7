// expect: ringmq::capacity<N>: N is too large
// A compile-time capacity whose inline storage cannot fit in one object.
#include <cstddef>

#include <ringmq/ring.hpp>

int main() {
  static ringmq::ring<int, ringmq::capacity<(std::size_t{1} << 62)>> ring;
  return ring.try_push(1) ? 0 : 1;
}
