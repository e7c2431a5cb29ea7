// expect: ringmq: an option kind is given more than once
// The same option kind twice, with different values.
#include <ringmq/ring.hpp>

int main() {
  ringmq::ring<int, ringmq::producers<ringmq::single>, ringmq::producers<ringmq::multi>> ring(8);
  return ring.try_push(1) ? 0 : 1;
}
