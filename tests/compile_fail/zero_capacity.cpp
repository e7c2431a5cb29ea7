// expect: ringmq::capacity<N>: N must be at least 1
// A compile-time capacity of zero.
#include <ringmq/ring.hpp>

int main() {
  ringmq::ring<int, ringmq::capacity<0>> ring;
  return ring.try_push(1) ? 0 : 1;
}
