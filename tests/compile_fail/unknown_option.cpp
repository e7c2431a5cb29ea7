// expect: ringmq: unknown option
// A type that is not a ringmq option tag in the option list.
#include <ringmq/ring.hpp>

struct not_an_option {};

int main() {
  ringmq::ring<int, ringmq::capacity<8>, not_an_option> ring;
  return ring.try_push(1) ? 0 : 1;
}
