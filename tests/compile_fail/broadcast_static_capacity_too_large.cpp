// expect: ringmq::broadcast_ring: capacity<N> is too large
// A compile-time capacity, a power of two below 2^61, whose inline slots cannot fit in one object.
#include <cstddef>

#include <ringmq/broadcast_ring.hpp>

int main() {
  static ringmq::broadcast_ring<int, ringmq::capacity<(std::size_t{1} << 58)>> ring;
  return ring.try_publish(1) ? 0 : 1;
}
